"""The group APIs on the wire against an in-process broker: the coordinator
found, a member joined through the member-id handshake, offsets committed and
fetched, and all of it back after the broker restarts on the same data."""

from __future__ import annotations

import pytest
import trio

from riverlog.broker.config import BrokerConfig
from riverlog.broker.group.record_codec import OFFSETS_TOPIC, java_string_hash, partition_for
from riverlog.broker.server import Broker
from riverlog.client.protocol import ErrorCode

from .test_connection import _call, _connect

FIND_COORDINATOR, JOIN, SYNC, HEARTBEAT, LEAVE, COMMIT, FETCH_OFFSETS, LIST_GROUPS = 10, 11, 14, 12, 13, 8, 9, 16


def _config(data_dir) -> BrokerConfig:
    return BrokerConfig.from_properties({
        "listeners": "127.0.0.1:0", "log.dirs": str(data_dir),
        "group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "5",
    })  # fmt: skip


async def _join_and_sync(peer, group: str) -> tuple[str, int]:
    join = {"group_id": group, "session_timeout_ms": 10_000, "rebalance_timeout_ms": 10_000, "member_id": "",
            "group_instance_id": None, "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b"\x00\x00\x00\x00\x00\x01\x00\x01t\xff\xff\xff\xff"}]}  # fmt: skip
    _, first = await _call(peer, JOIN, 5, join)
    assert first["error_code"] == ErrorCode.MEMBER_ID_REQUIRED and first["member_id"]
    _, joined = await _call(peer, JOIN, 5, {**join, "member_id": first["member_id"]})
    assert joined["error_code"] == 0 and joined["leader"] == first["member_id"]
    member, generation = joined["member_id"], joined["generation_id"]
    sync = {"group_id": group, "generation_id": generation, "member_id": member, "group_instance_id": None,
            "assignments": [{"member_id": member, "assignment": b"\x00\x00assignment"}]}  # fmt: skip
    _, synced = await _call(peer, SYNC, 3, sync)
    assert synced["error_code"] == 0 and synced["assignment"] == b"\x00\x00assignment"
    return member, generation


async def test_a_group_joins_commits_and_finds_it_all_again_after_a_restart(tmp_path, nursery):
    async with trio.open_nursery() as first:  # left only once that broker has stopped
        broker = await first.start(Broker(_config(tmp_path / "data")).serve)
        peer = await _connect(broker)
        _, found = await _call(peer, FIND_COORDINATOR, 1, {"key": "g1", "key_type": 0})
        assert (found["error_code"], found["node_id"], found["port"]) == (0, 1, broker.port)
        assert len(broker.image.topics[OFFSETS_TOPIC].partitions) == 5  # created on first use
        _, batched = await _call(peer, FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": ["a", "b"]})
        assert [c["key"] for c in batched["coordinators"]] == ["a", "b"]
        _, txn = await _call(peer, FIND_COORDINATOR, 1, {"key": "tx", "key_type": 1})
        assert txn["error_code"] == ErrorCode.COORDINATOR_NOT_AVAILABLE

        _, created = await _call(peer, 19, 4, {"topics": [{"name": "t", "num_partitions": 2, "replication_factor": 1}]})
        assert created["topics"][0]["error_code"] == 0
        member, generation = await _join_and_sync(peer, "g1")
        _, beat = await _call(peer, HEARTBEAT, 3, {"group_id": "g1", "generation_id": generation, "member_id": member,
                                                    "group_instance_id": None})  # fmt: skip
        assert beat["error_code"] == 0
        commit = {"group_id": "g1", "generation_id_or_member_epoch": generation, "member_id": member,
                  "group_instance_id": None, "retention_time_ms": -1,
                  "topics": [{"name": "t", "partitions": [
                      {"partition_index": 0, "committed_offset": 42, "committed_leader_epoch": 0,
                       "committed_metadata": "m"},
                      {"partition_index": 7, "committed_offset": 1, "committed_leader_epoch": -1,
                       "committed_metadata": None}]},
                      {"name": "missing", "partitions": [
                          {"partition_index": 0, "committed_offset": 1, "committed_leader_epoch": -1,
                           "committed_metadata": None}]}]}  # fmt: skip
        _, committed = await _call(peer, COMMIT, 7, commit)
        codes = {(t["name"], p["partition_index"]): p["error_code"] for t in committed["topics"] for p in t["partitions"]}
        assert codes == {("t", 0): 0, ("t", 7): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                         ("missing", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}  # fmt: skip
        _, left = await _call(peer, LEAVE, 3, {"group_id": "g1", "members": [{"member_id": member, "group_instance_id": None}]})
        assert left["error_code"] == 0
        broker.request_stop()

    again = await nursery.start(Broker(_config(tmp_path / "data")).serve)
    peer = await _connect(again)
    _, fetched = await _call(peer, FETCH_OFFSETS, 7, {"group_id": "g1", "topics": None, "require_stable": False})
    offsets = {(t["name"], p["partition_index"]): (p["committed_offset"], p["metadata"])
               for t in fetched["topics"] for p in t["partitions"]}  # fmt: skip
    assert offsets == {("t", 0): (42, "m")}
    _, groups = await _call(peer, LIST_GROUPS, 3, {})
    assert [(g["group_id"], g["protocol_type"]) for g in groups["groups"]] == [("g1", "consumer")]


@pytest.mark.parametrize(
    "text, expected",
    # Java's own answers: "hello".hashCode() is 99162322; "Aa" and "BB" collide at 2112;
    # "polygenelubricants" is the classic Integer.MIN_VALUE; non-ASCII counts UTF-16 units.
    [("", 0), ("a", 97), ("hello", 99162322), ("Aa", 2112), ("BB", 2112),
     ("polygenelubricants", -(2**31)), ("\U0001F600", 55357 * 31 + 56832)],
)  # fmt: skip
def test_java_string_hash(text, expected):
    assert java_string_hash(text) == expected


def test_partition_for_is_kafkas_abs_of_the_hash_modulo_the_count():
    assert partition_for("hello", 50) == 99162322 % 50
    assert partition_for("polygenelubricants", 50) == 0  # Kafka's Utils.abs maps MIN_VALUE to 0
    assert all(0 <= partition_for(f"g{i}", 7) < 7 for i in range(200))


async def test_a_parked_join_does_not_hold_a_request_slot(tmp_path, nursery):
    # One slot for the whole broker (queued.max.requests=1) and a JoinGroup
    # parked by the initial rebalance delay: other requests still get answers.
    config = BrokerConfig.from_properties({
        "listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "data"), "queued.max.requests": "1",
        "group.initial.rebalance.delay.ms": "3000", "offsets.topic.num.partitions": "1",
    })  # fmt: skip
    broker = await nursery.start(Broker(config).serve)
    joiner, other = await _connect(broker), await _connect(broker)
    join = {"group_id": "slow", "session_timeout_ms": 10_000, "rebalance_timeout_ms": 10_000, "member_id": "",
            "group_instance_id": None, "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": b""}]}
    _, first = await _call(joiner, JOIN, 5, join)
    parked = {**join, "member_id": first["member_id"]}
    from riverlog.client.protocol import RequestHeader, encode_frame, encode_request

    await joiner.send_all(encode_frame(encode_request(RequestHeader(JOIN, 5, 2, "t"), parked)))  # parks ~3 s
    await trio.sleep(0.2)
    with trio.fail_after(1.5):
        _, meta = await _call(other, 3, 1, {"topics": []})
    assert meta["brokers"]


async def test_a_damaged_record_in_consumer_offsets_does_not_stop_the_broker(tmp_path, nursery):
    from riverlog.broker.storage.log_manager import LogManager
    from riverlog.client.records import build_batch

    config = _config(tmp_path / "data")
    async with trio.open_nursery() as first:
        broker = await first.start(Broker(config).serve)
        peer = await _connect(broker)
        await _call(peer, 19, 4, {"topics": [{"name": "t", "num_partitions": 1, "replication_factor": 1}]})
        commit = {"group_id": "solid", "generation_id_or_member_epoch": -1, "member_id": "", "group_instance_id": None,
                  "retention_time_ms": -1, "topics": [{"name": "t", "partitions": [
                      {"partition_index": 0, "committed_offset": 7, "committed_leader_epoch": -1,
                       "committed_metadata": None}]}]}  # fmt: skip
        _, answer = await _call(peer, COMMIT, 7, commit)
        assert answer["topics"][0]["partitions"][0]["error_code"] == 0
        broker.request_stop()
    # Garbage keys and values in every partition of the topic, behind the good record.
    manager = LogManager([tmp_path / "data"], config.log_defaults)
    manager.startup()
    for lg in manager.all_logs():
        if lg.name.startswith(OFFSETS_TOPIC):
            lg.append_as_leader(build_batch([(b"\x00\x09junk", b"x", 1, ()), (b"\x00\x01\x00", None, 1, ())]), 0)
    manager.shutdown()
    again = await nursery.start(Broker(config).serve)
    peer = await _connect(again)
    _, fetched = await _call(peer, FETCH_OFFSETS, 7, {"group_id": "solid", "topics": None, "require_stable": False})
    assert [p["committed_offset"] for t in fetched["topics"] for p in t["partitions"]] == [7]
