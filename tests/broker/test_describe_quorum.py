"""DescribeQuorum (55) on the client listener of a real single broker: the
one-voter quorum it leads, as Kafka's kafka-metadata-quorum.sh would see it."""

from __future__ import annotations

import time
import uuid

import pytest

from riverlog.broker.config import BrokerConfig
from riverlog.broker.server import Broker
from riverlog.client.protocol import ErrorCode

from .test_connection import _call, _connect

METADATA = [{"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 0}]}]


@pytest.fixture
async def broker(tmp_path, nursery):
    config = BrokerConfig.from_properties({"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "data")})
    return await nursery.start(Broker(config).serve)


async def test_describe_quorum_is_advertised_but_the_lifecycle_apis_are_not(broker):
    _, body = await _call(await _connect(broker), 18, 3, {})
    keys = {k["api_key"]: (k["min_version"], k["max_version"]) for k in body["api_keys"]}
    assert keys[55] == (0, 2)
    assert 62 not in keys and 63 not in keys  # BrokerRegistration, BrokerHeartbeat: controller listener only


@pytest.mark.parametrize("version", [0, 1, 2])
async def test_a_single_broker_leads_its_one_voter_quorum(broker, version):
    before_ms = int(time.time() * 1000)
    _, body = await _call(await _connect(broker), 55, version, {"topics": METADATA})
    assert body["error_code"] == 0
    [topic] = body["topics"]
    assert topic["topic_name"] == "__cluster_metadata"
    [partition] = topic["partitions"]
    assert partition["error_code"] == 0 and partition["partition_index"] == 0
    assert partition["leader_id"] == 1 and partition["leader_epoch"] >= 1
    assert partition["high_watermark"] >= 1  # at least the broker's registration is committed
    [voter] = partition["current_voters"]
    assert voter["replica_id"] == 1 and voter["log_end_offset"] >= partition["high_watermark"]
    assert partition["observers"] == []
    if version >= 1:
        assert voter["last_fetch_timestamp"] >= before_ms  # the leader itself: "now"
    if version >= 2:
        assert voter["replica_directory_id"] == uuid.UUID(int=0)
        assert body["nodes"] == []  # no controller listener in a one-voter quorum


async def test_the_high_watermark_follows_metadata_changes(broker):
    peer = await _connect(broker)
    _, before = await _call(peer, 55, 1, {"topics": METADATA})
    _, created = await _call(peer, 19, 4, {"topics": [{"name": "q", "num_partitions": 1, "replication_factor": 1}]})
    assert created["topics"][0]["error_code"] == 0
    _, after = await _call(peer, 55, 1, {"topics": METADATA})
    hw = [b["topics"][0]["partitions"][0]["high_watermark"] for b in (before, after)]
    assert hw[1] > hw[0]


@pytest.mark.parametrize("topics", [
    [{"topic_name": "orders", "partitions": [{"partition_index": 0}]}],
    [{"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 1}]}],
    [],
])  # fmt: skip
async def test_anything_but_the_metadata_partition_is_unknown(broker, topics):
    _, body = await _call(await _connect(broker), 55, 2, {"topics": topics})
    assert body["error_code"] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION and body["topics"] == []
