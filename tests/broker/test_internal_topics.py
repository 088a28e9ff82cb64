"""__consumer_offsets is protected from clients: no Produce, no DeleteTopics,
no DeleteRecords, no CreatePartitions, no configs under which its records
could go. Each refusal carries Kafka's error code (and a message where the
response has one), and the group's committed offsets are intact after it."""

from __future__ import annotations

import pytest

from riverlog.broker.config import BrokerConfig
from riverlog.broker.group.record_codec import OFFSETS_TOPIC
from riverlog.broker.server import Broker
from riverlog.broker.storage.log_config import LogConfig
from riverlog.client.protocol import ErrorCode

from .test_connection import _call, _connect
from .test_produce_fetch import _batch

PRODUCE, METADATA, COMMIT, FETCH_OFFSETS, FIND_COORDINATOR = 0, 3, 8, 9, 10
CREATE_TOPICS, DELETE_TOPICS, DELETE_RECORDS, ALTER_CONFIGS, CREATE_PARTITIONS, INCREMENTAL = 19, 20, 21, 33, 37, 44
TOPIC_RESOURCE = 2
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


@pytest.fixture
async def broker(tmp_path, nursery):
    config = BrokerConfig.from_properties({
        "listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "data"), "offsets.topic.num.partitions": "3",
        "group.initial.rebalance.delay.ms": "0",
    })  # fmt: skip
    b = await nursery.start(Broker(config).serve)
    peer = await _connect(b)
    topics = [{"name": "t", "num_partitions": 1, "replication_factor": 1}]
    _, created = await _call(peer, CREATE_TOPICS, 4, {"topics": topics})
    assert created["topics"][0]["error_code"] == 0
    commit = {"group_id": "g", "generation_id_or_member_epoch": -1, "member_id": "", "group_instance_id": None,
              "retention_time_ms": -1, "topics": [{"name": "t", "partitions": [
                  {"partition_index": 0, "committed_offset": 42, "committed_leader_epoch": -1,
                   "committed_metadata": "kept"}]}]}  # fmt: skip
    _, found = await _call(peer, FIND_COORDINATOR, 1, {"key": "g", "key_type": 0})  # creates __consumer_offsets
    assert found["error_code"] == 0
    _, committed = await _call(peer, COMMIT, 7, commit)
    assert committed["topics"][0]["partitions"][0]["error_code"] == 0
    return b


async def _committed(peer) -> dict:
    _, fetched = await _call(peer, FETCH_OFFSETS, 7, {"group_id": "g", "topics": None, "require_stable": False})
    assert fetched["error_code"] == 0
    return {(t["name"], p["partition_index"]): (p["committed_offset"], p["metadata"])
            for t in fetched["topics"] for p in t["partitions"]}  # fmt: skip


async def _intact(broker, peer, partitions: int = 3, configs: dict | None = None) -> None:
    """The group's offset is where it was committed, the topic as it was made."""
    assert await _committed(peer) == {("t", 0): (42, "kept")}
    topic = broker.image.topics[OFFSETS_TOPIC]
    assert len(topic.partitions) == partitions
    assert dict(topic.configs) == (configs or {"cleanup.policy": "compact", "segment.bytes": str(100 * 1024 * 1024)})


async def test_metadata_says_consumer_offsets_is_internal(broker):
    peer = await _connect(broker)
    _, md = await _call(peer, METADATA, 6, {"topics": [{"name": OFFSETS_TOPIC}, {"name": "t"}],
                                           "allow_auto_topic_creation": False})  # fmt: skip
    assert [(t["name"], t["is_internal"]) for t in md["topics"]] == [(OFFSETS_TOPIC, True), ("t", False)]


@pytest.mark.parametrize("version", [3, 7])
async def test_produce_to_consumer_offsets_is_refused(broker, version):
    peer = await _connect(broker)
    ends = {i: broker.partitions.partition(OFFSETS_TOPIC, i)[1].log_end_offset for i in range(3)}
    request = {"acks": -1, "timeout_ms": 1000, "topic_data": [
        {"name": OFFSETS_TOPIC, "partition_data": [{"index": i, "records": _batch(2)} for i in range(3)]},
        {"name": "t", "partition_data": [{"index": 0, "records": _batch(2)}]}]}  # fmt: skip
    _, body = await _call(peer, PRODUCE, version, request)
    codes = {(t["name"], p["index"]): p["error_code"] for t in body["responses"] for p in t["partition_responses"]}
    refused = {(OFFSETS_TOPIC, i): ErrorCode.INVALID_TOPIC_EXCEPTION for i in range(3)}
    assert codes == {**refused, ("t", 0): 0}  # the other topic in the same request is written
    assert {i: broker.partitions.partition(OFFSETS_TOPIC, i)[1].log_end_offset for i in range(3)} == ends
    await _intact(broker, peer)


async def test_produce_to_a_missing_partition_of_consumer_offsets_is_refused_the_same_way(broker):
    peer = await _connect(broker)
    request = {"acks": 1, "timeout_ms": 1000, "topic_data": [
        {"name": OFFSETS_TOPIC, "partition_data": [{"index": 99, "records": _batch(1)}]}]}  # fmt: skip
    _, body = await _call(peer, PRODUCE, 7, request)
    assert body["responses"][0]["partition_responses"][0]["error_code"] == ErrorCode.INVALID_TOPIC_EXCEPTION


@pytest.mark.parametrize("version", [3, 5])  # v5 carries the reason
async def test_delete_topics_refuses_consumer_offsets(broker, version):
    peer = await _connect(broker)
    _, body = await _call(peer, DELETE_TOPICS, version, {"topic_names": [OFFSETS_TOPIC, "t"], "timeout_ms": 1000})
    results = {r["name"]: (r["error_code"], r.get("error_message")) for r in body["responses"]}
    reason = f"Cannot delete internal topic {OFFSETS_TOPIC}" if version >= 5 else None
    assert results[OFFSETS_TOPIC] == (ErrorCode.INVALID_TOPIC_EXCEPTION, reason)
    assert results["t"] == (0, None)  # the other one in the same request goes
    assert "t" not in broker.image.topics
    topic = broker.image.topics[OFFSETS_TOPIC]
    assert len(topic.partitions) == 3 and all(broker.partitions.partition(OFFSETS_TOPIC, i) is not None for i in range(3))
    _, fetched = await _call(peer, FETCH_OFFSETS, 7, {"group_id": "g", "topics": None, "require_stable": False})
    # The group and its offset survive (the offset's topic is gone, as in Kafka the commit stays until it expires).
    assert [(t["name"], p["committed_offset"]) for t in fetched["topics"] for p in t["partitions"]] == [("t", 42)]


async def test_delete_records_of_consumer_offsets_is_refused(broker):
    peer = await _connect(broker)
    plogs = [broker.partitions.partition(OFFSETS_TOPIC, i)[1] for i in range(3)]
    request = {"topics": [{"name": OFFSETS_TOPIC, "partitions": [
        {"partition_index": i, "offset": -1} for i in range(3)]}], "timeout_ms": 1000}  # fmt: skip
    _, body = await _call(peer, DELETE_RECORDS, 1, request)
    assert [(p["low_watermark"], p["error_code"]) for p in body["topics"][0]["partitions"]] == [
        (-1, ErrorCode.INVALID_TOPIC_EXCEPTION)] * 3  # fmt: skip
    assert [p.log_start_offset for p in plogs] == [0, 0, 0]
    await _intact(broker, peer)


async def test_delete_records_of_consumer_offsets_is_refused_whatever_its_cleanup_policy(broker):
    # Not only because it is compacted: one that also deletes (as a
    # __consumer_offsets made before these rules might) is refused all the same.
    peer = await _connect(broker)
    request = {"topics": [{"name": OFFSETS_TOPIC, "partitions": [{"partition_index": 0, "offset": 0}]}],
               "timeout_ms": 1000}  # fmt: skip
    plog = broker.partitions.partition(OFFSETS_TOPIC, 0)[1]
    plog.config = LogConfig(cleanup_policy=("compact", "delete"))
    _, body = await _call(peer, DELETE_RECORDS, 0, request)
    assert body["topics"][0]["partitions"][0]["error_code"] == ErrorCode.INVALID_TOPIC_EXCEPTION


async def test_create_partitions_of_consumer_offsets_is_refused(broker):
    peer = await _connect(broker)
    request = {"topics": [{"name": OFFSETS_TOPIC, "count": 6, "assignments": None}, {"name": "t", "count": 2,
               "assignments": None}], "timeout_ms": 1000, "validate_only": False}  # fmt: skip
    _, body = await _call(peer, CREATE_PARTITIONS, 1, request)
    results = {r["name"]: (r["error_code"], r["error_message"]) for r in body["results"]}
    code, message = results[OFFSETS_TOPIC]
    assert code == ErrorCode.INVALID_TOPIC_EXCEPTION and "internal topic" in message
    assert results["t"] == (0, None)
    await _intact(broker, peer)


@pytest.mark.parametrize("configs", [
    {"cleanup.policy": "delete"},
    {"cleanup.policy": "compact,delete"},
    {"cleanup.policy": "compact", "max.message.bytes": "100"},
    {"segment.bytes": str(100 * 1024 * 1024)},  # cleanup.policy back to the broker's default, delete
])  # fmt: skip
async def test_alter_configs_cannot_make_consumer_offsets_unsafe(broker, configs):
    peer = await _connect(broker)
    resource = {"resource_type": TOPIC_RESOURCE, "resource_name": OFFSETS_TOPIC,
                "configs": [{"name": k, "value": v} for k, v in configs.items()]}  # fmt: skip
    for validate_only in (True, False):
        _, body = await _call(peer, ALTER_CONFIGS, 1, {"resources": [resource], "validate_only": validate_only})
        (response,) = body["responses"]
        assert response["error_code"] == ErrorCode.POLICY_VIOLATION, response
        assert OFFSETS_TOPIC in response["error_message"]
    await _intact(broker, peer)


@pytest.mark.parametrize("ops", [
    [("cleanup.policy", SET, "delete")],
    [("cleanup.policy", APPEND, "delete")],
    [("cleanup.policy", DELETE, None)],  # back to the broker's default, delete
    [("max.message.bytes", SET, "1000")],
    [("retention.ms", SET, "1"), ("cleanup.policy", SET, "compact,delete")],
])  # fmt: skip
async def test_incremental_alter_configs_cannot_make_consumer_offsets_unsafe(broker, ops):
    peer = await _connect(broker)
    configs = [{"name": k, "config_operation": op, "value": v} for k, op, v in ops]
    request = {"resources": [{"resource_type": TOPIC_RESOURCE, "resource_name": OFFSETS_TOPIC, "configs": configs}],
               "validate_only": False}  # fmt: skip
    _, body = await _call(peer, INCREMENTAL, 0, request)
    (response,) = body["responses"]
    assert response["error_code"] == ErrorCode.POLICY_VIOLATION, response
    assert "cleanup.policy" in response["error_message"] or "max.message.bytes" in response["error_message"]
    await _intact(broker, peer)


async def test_safe_configs_of_consumer_offsets_may_still_change(broker):
    peer = await _connect(broker)
    ops = [("segment.bytes", SET, "1048576"), ("max.message.bytes", SET, "2000000"),
           ("delete.retention.ms", SET, "1000")]
    configs = [{"name": k, "config_operation": op, "value": v} for k, op, v in ops]
    request = {"resources": [{"resource_type": TOPIC_RESOURCE, "resource_name": OFFSETS_TOPIC, "configs": configs}],
               "validate_only": False}  # fmt: skip
    _, body = await _call(peer, INCREMENTAL, 0, request)
    assert body["responses"][0]["error_code"] == 0
    await _intact(broker, peer, configs={"cleanup.policy": "compact", "segment.bytes": "1048576",
                                         "max.message.bytes": "2000000", "delete.retention.ms": "1000"})  # fmt: skip


async def test_a_client_may_not_create_consumer_offsets_unsafely(tmp_path, nursery):
    config = BrokerConfig.from_properties({"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "data")})
    broker = await nursery.start(Broker(config).serve)
    peer = await _connect(broker)
    topics = [{"name": OFFSETS_TOPIC, "num_partitions": 2, "replication_factor": 1, "configs": []}]
    _, body = await _call(peer, CREATE_TOPICS, 4, {"topics": topics})
    assert body["topics"][0]["error_code"] == ErrorCode.POLICY_VIOLATION
    assert "cleanup.policy" in body["topics"][0]["error_message"]
    assert OFFSETS_TOPIC not in broker.image.topics
    # Made compacted, as Kafka lets an operator make it ahead of time, it is accepted and used.
    topics[0]["configs"] = [{"name": "cleanup.policy", "value": "compact"}]
    _, body = await _call(peer, CREATE_TOPICS, 4, {"topics": topics})
    assert body["topics"][0]["error_code"] == 0
    _, found = await _call(peer, FIND_COORDINATOR, 1, {"key": "g", "key_type": 0})
    assert found["error_code"] == 0 and len(broker.image.topics[OFFSETS_TOPIC].partitions) == 2


async def test_metadata_auto_creation_makes_consumer_offsets_as_the_coordinator_would(tmp_path, nursery):
    config = BrokerConfig.from_properties({"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "data"),
                                           "offsets.topic.num.partitions": "4"})  # fmt: skip
    broker = await nursery.start(Broker(config).serve)
    peer = await _connect(broker)
    _, md = await _call(peer, METADATA, 6, {"topics": [{"name": OFFSETS_TOPIC}], "allow_auto_topic_creation": True})
    assert md["topics"][0]["error_code"] == 0 and md["topics"][0]["is_internal"]
    topic = broker.image.topics[OFFSETS_TOPIC]
    assert len(topic.partitions) == 4 and topic.configs["cleanup.policy"] == "compact"


async def test_the_coordinator_still_writes_consumer_offsets(broker):
    # The refusals are the clients': the broker's own appends go on.
    peer = await _connect(broker)
    commit = {"group_id": "g", "generation_id_or_member_epoch": -1, "member_id": "", "group_instance_id": None,
              "retention_time_ms": -1, "topics": [{"name": "t", "partitions": [
                  {"partition_index": 0, "committed_offset": 43, "committed_leader_epoch": -1,
                   "committed_metadata": "next"}]}]}  # fmt: skip
    _, committed = await _call(peer, COMMIT, 7, commit)
    assert committed["topics"][0]["partitions"][0]["error_code"] == 0
    assert await _committed(peer) == {("t", 0): (43, "next")}
