"""A log directory offline for want of space is reloaded on a timer while the
broker serves: whatever goes wrong there keeps that directory offline, never
stops the broker."""

from __future__ import annotations

import errno
import os

import pytest
import trio

from riverlog.broker.config import BrokerConfig
from riverlog.broker.server import Broker
from riverlog.broker.storage.faults import injected
from riverlog.client.protocol import ErrorCode
from riverlog.client.records import build_batch

from .test_connection import _call, _connect


@pytest.fixture
async def broker(tmp_path, nursery):
    dirs = f"{tmp_path / 'a'},{tmp_path / 'b'}"
    config = BrokerConfig.from_properties({"listeners": "127.0.0.1:0", "log.dirs": dirs})
    return await nursery.start(Broker(config).serve)


async def _produce(peer, partition: int) -> int:
    batch = build_batch([(None, b"v", 1_700_000_000_000, ())])
    request = {"acks": -1, "timeout_ms": 1000,
               "topic_data": [{"name": "t", "partition_data": [{"index": partition, "records": batch}]}]}  # fmt: skip
    _, body = await _call(peer, 0, 7, request)
    return body["responses"][0]["partition_responses"][0]["error_code"]


async def _connect_with_topic(broker):
    """A connection to the broker, once topic "t" (2 partitions) has both logs."""
    peer = await _connect(broker)
    _, body = await _call(peer, 19, 4, {"topics": [{"name": "t", "num_partitions": 2, "replication_factor": 1}]})
    assert body["topics"][0]["error_code"] == 0
    with trio.fail_after(10):
        while broker.log_manager.get_log("t", 1) is None:
            await trio.sleep(0.01)
    return peer


async def test_a_directory_that_cannot_be_reloaded_stays_offline_and_the_broker_serves_on(broker):
    peer = await _connect_with_topic(broker)
    logs = [broker.log_manager.get_log("t", p) for p in (0, 1)]
    full, other = logs[0].dir.parent, logs[1].dir.parent
    assert full != other
    with injected("write", errno.ENOSPC, when=lambda path: full in path.parents):
        assert await _produce(peer, 0) == ErrorCode.KAFKA_STORAGE_ERROR
    # A layout no reload accepts: partition 1 found in both directories.
    (full / logs[1].dir.name).mkdir()
    failures = broker.log_manager.failures
    with trio.fail_after(30):  # the retry runs every second
        while failures.waits_for_space(full):
            await trio.sleep(0.05)
    assert failures.is_offline(full)
    assert await _produce(peer, 0) == ErrorCode.KAFKA_STORAGE_ERROR
    assert await _produce(peer, 1) == ErrorCode.NONE


async def test_partitions_made_while_every_directory_was_offline_are_made_when_one_is_back(broker, monkeypatch):
    """Back from a want of space, the directory's logs are checked against the
    metadata and the missing ones made. Out of descriptors reading a topic id
    there, that check raised out of the retry, and a partition created while
    the directories were offline was never made (NOT_LEADER_OR_FOLLOWER for good)."""
    import riverlog.broker.partitions as partitions

    peer = await _connect_with_topic(broker)
    real_read_topic_id, shortages = partitions.read_topic_id, [1]

    def read_topic_id(partition_dir):
        if shortages:
            shortages.pop()
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), str(partition_dir))
        return real_read_topic_id(partition_dir)

    # Both directories full for the partitions (the metadata log has its reserve).
    with injected("write", errno.ENOSPC, when=lambda path: "__cluster_metadata" not in str(path)):
        assert await _produce(peer, 0) == ErrorCode.KAFKA_STORAGE_ERROR
        assert await _produce(peer, 1) == ErrorCode.KAFKA_STORAGE_ERROR
        _, body = await _call(peer, 19, 4, {"topics": [{"name": "u", "num_partitions": 1,
                                                       "replication_factor": 1}]})  # fmt: skip
        assert body["topics"][0]["error_code"] == 0
        monkeypatch.setattr(partitions, "read_topic_id", read_topic_id)
    with trio.fail_after(30):
        while broker.log_manager.get_log("u", 0) is None:
            await trio.sleep(0.05)
    assert not shortages
