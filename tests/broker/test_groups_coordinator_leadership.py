"""A group belongs to the leader of its __consumer_offsets partition.

One real broker (node 1) and a second registered broker (node 2) that never
runs: __consumer_offsets is placed over both, so node 1 leads some
partitions and node 2 the others. Groups of node 2's partitions get
NOT_COORDINATOR in each API's own shape; leadership moved away drops a
partition's groups (a parked JoinGroup hears NOT_COORDINATOR), moved back
replays them (COORDINATOR_LOAD_IN_PROGRESS until loaded)."""

from __future__ import annotations

import errno
import itertools

import pytest
import trio

import riverlog.broker.group.loading as loading_module
import riverlog.broker.group.service as service_module
from riverlog.broker.config import BrokerConfig
from riverlog.broker.group.record_codec import OFFSETS_TOPIC, partition_for
from riverlog.broker.metadata.records import PartitionRecord
from riverlog.broker.server import Broker
from riverlog.client.protocol import ErrorCode, RequestHeader, encode_frame, encode_request

from .test_connection import _call, _connect, _response

FIND, JOIN, SYNC, HEARTBEAT, LEAVE, COMMIT, FETCH, DESCRIBE, LIST, DELETE, OFFSET_DELETE = (
    10, 11, 14, 12, 13, 8, 9, 15, 16, 42, 47)  # fmt: skip
NOT_COORDINATOR, LOADING = ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS


async def _two_node_offsets(tmp_path, nursery, delay_ms: int = 0):
    config = BrokerConfig.from_properties({
        "listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "data"), "offsets.topic.num.partitions": "4",
        "group.initial.rebalance.delay.ms": str(delay_ms),
    })  # fmt: skip
    broker = await nursery.start(Broker(config).serve)
    result = await broker.controller.register_broker(2, "127.0.0.1", 1)  # registered, never started
    assert result.error_code == 0
    peer = await _connect(broker)
    _, created = await _call(peer, 19, 4, {"topics": [{"name": "t", "num_partitions": 1, "replication_factor": 1}]})
    assert created["topics"][0]["error_code"] == 0
    await _call(peer, FIND, 1, {"key": "any", "key_type": 0})  # creates the topic, leaders spread
    leaders = {p.leader for p in broker.image.topics[OFFSETS_TOPIC].partitions.values()}
    assert leaders == {1, 2}
    return broker, peer


def _group_led_by(broker, node: int, n: int = 0) -> str:
    """The n-th group id whose partition `node` leads."""
    parts = broker.image.topics[OFFSETS_TOPIC].partitions
    found = (g for i in itertools.count() if parts[partition_for(g := f"group-{i}", len(parts))].leader == node)
    return next(itertools.islice(found, n, None))


def _commit(group: str, offset: int) -> dict:
    return {"group_id": group, "generation_id_or_member_epoch": -1, "member_id": "", "group_instance_id": None,
            "retention_time_ms": -1, "topics": [{"name": "t", "partitions": [
                {"partition_index": 0, "committed_offset": offset, "committed_leader_epoch": -1,
                 "committed_metadata": None}]}]}  # fmt: skip


def _join(group: str, member_id: str = "") -> dict:
    return {"group_id": group, "session_timeout_ms": 10_000, "rebalance_timeout_ms": 10_000, "member_id": member_id,
            "group_instance_id": None, "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": b""}]}


def _fetch_v7(group: str) -> dict:
    return {"group_id": group, "topics": None, "require_stable": False}


async def _move_leader(broker, index: int, leader: int, epoch: int) -> None:
    """Commit a leadership change of one partition (both nodes replicas), as an election would."""
    topic = broker.image.topics[OFFSETS_TOPIC]
    record = PartitionRecord(topic.topic_id, index, (1, 2), (1, 2), leader, epoch, epoch)
    async with broker.controller._turn():
        await broker.controller._commit([record])
    assert broker.image.topics[OFFSETS_TOPIC].partitions[index].leader == leader


async def test_groups_another_broker_coordinates_get_not_coordinator_in_each_apis_shape(tmp_path, nursery):
    broker, peer = await _two_node_offsets(tmp_path, nursery)
    local, remote = _group_led_by(broker, 1), _group_led_by(broker, 2)
    _, found = await _call(peer, FIND, 1, {"key": remote, "key_type": 0})
    assert (found["error_code"], found["node_id"]) == (0, 2)
    _, committed = await _call(peer, COMMIT, 7, _commit(local, 5))
    assert committed["topics"][0]["partitions"][0]["error_code"] == 0

    _, joined = await _call(peer, JOIN, 5, _join(remote))
    assert (joined["error_code"], joined["member_id"]) == (NOT_COORDINATOR, "")
    member = {"group_id": remote, "generation_id": 1, "member_id": "m", "group_instance_id": None}
    _, synced = await _call(peer, SYNC, 3, {**member, "assignments": []})
    assert synced["error_code"] == NOT_COORDINATOR
    _, beat = await _call(peer, HEARTBEAT, 3, member)
    assert beat["error_code"] == NOT_COORDINATOR
    leave = {"group_id": remote, "members": [{"member_id": "m", "group_instance_id": None}]}
    _, left = await _call(peer, LEAVE, 3, leave)
    assert (left["error_code"], left["members"]) == (NOT_COORDINATOR, [])
    _, left_v1 = await _call(peer, LEAVE, 1, {"group_id": remote, "member_id": "m"})
    assert left_v1["error_code"] == NOT_COORDINATOR
    _, remote_commit = await _call(peer, COMMIT, 7, _commit(remote, 9))
    assert [p["error_code"] for t in remote_commit["topics"] for p in t["partitions"]] == [NOT_COORDINATOR]
    _, deleted_offsets = await _call(peer, OFFSET_DELETE, 0, {"group_id": remote, "topics": [
        {"name": "t", "partitions": [{"partition_index": 0}]}]})  # fmt: skip
    assert (deleted_offsets["error_code"], deleted_offsets["topics"]) == (NOT_COORDINATOR, [])

    # OffsetFetch: top level from v2, on every requested partition before, per group in v8.
    _, fetched = await _call(peer, FETCH, 7, _fetch_v7(remote))
    assert (fetched["error_code"], fetched["topics"]) == (NOT_COORDINATOR, [])
    v1 = {"group_id": remote, "topics": [{"name": "t", "partition_indexes": [0]}]}
    _, fetched_v1 = await _call(peer, FETCH, 1, v1)
    assert [(p["error_code"], p["committed_offset"]) for p in fetched_v1["topics"][0]["partitions"]] == [
        (NOT_COORDINATOR, -1)]  # fmt: skip
    _, batched = await _call(peer, FETCH, 8, {"groups": [{"group_id": remote, "topics": None},
                                                         {"group_id": local, "topics": None}],
                                              "require_stable": False})  # fmt: skip
    assert [(g["group_id"], g["error_code"]) for g in batched["groups"]] == [(remote, NOT_COORDINATOR), (local, 0)]
    assert batched["groups"][1]["topics"][0]["partitions"][0]["committed_offset"] == 5

    # DescribeGroups and DeleteGroups: per group, in the order asked.
    _, described = await _call(peer, DESCRIBE, 5, {"groups": [remote, local], "include_authorized_operations": False})
    assert [(g["group_id"], g["error_code"], g["group_state"]) for g in described["groups"]] == [
        (remote, NOT_COORDINATOR, ""), (local, 0, "Empty")]  # fmt: skip
    _, listed = await _call(peer, LIST, 3, {})
    assert (listed["error_code"], [g["group_id"] for g in listed["groups"]]) == (0, [local])
    _, deleted = await _call(peer, DELETE, 2, {"groups_names": [local, remote]})
    assert [(r["group_id"], r["error_code"]) for r in deleted["results"]] == [(local, 0), (remote, NOT_COORDINATOR)]


async def test_leadership_moved_away_drops_the_groups_and_moved_back_replays_them(tmp_path, nursery, monkeypatch):
    broker, peer = await _two_node_offsets(tmp_path, nursery, delay_ms=3000)
    group = _group_led_by(broker, 1)
    index = partition_for(group, 4)
    _, committed = await _call(peer, COMMIT, 7, _commit(group, 42))
    assert committed["topics"][0]["partitions"][0]["error_code"] == 0
    _, first = await _call(peer, JOIN, 5, _join(group))
    assert first["error_code"] == ErrorCode.MEMBER_ID_REQUIRED
    joiner = await _connect(broker)
    await joiner.send_all(encode_frame(encode_request(RequestHeader(JOIN, 5, 7, "t"),
                                                      _join(group, first["member_id"]))))  # parked: delay 3 s
    await trio.sleep(0.2)

    await _move_leader(broker, index, leader=2, epoch=1)
    with trio.fail_after(1):  # answered at once, not after the rebalance delay
        _, parked = await _response(joiner, JOIN, 5)
    assert parked["error_code"] == NOT_COORDINATOR
    _, fetched = await _call(peer, FETCH, 7, _fetch_v7(group))
    assert fetched["error_code"] == NOT_COORDINATOR
    assert broker.groups.coordinator.group(group) is None  # dropped, not just hidden
    _, listed = await _call(peer, LIST, 3, {})
    assert group not in [g["group_id"] for g in listed["groups"]]

    # Back here: the partition's log is replayed; meanwhile its groups are loading.
    release = trio.Event()

    async def held() -> None:
        await release.wait()

    monkeypatch.setattr(service_module, "between_chunks", held)
    await _move_leader(broker, index, leader=1, epoch=2)
    await trio.sleep(0.1)
    _, loading = await _call(peer, FETCH, 7, _fetch_v7(group))
    assert loading["error_code"] == LOADING
    v8 = {"groups": [{"group_id": group, "topics": None}], "require_stable": False}
    _, loading_v8 = await _call(peer, FETCH, 8, v8)
    assert loading_v8["groups"][0]["error_code"] == LOADING
    _, beat = await _call(peer, HEARTBEAT, 3, {"group_id": group, "generation_id": 0, "member_id": "m",
                                               "group_instance_id": None})  # fmt: skip
    assert beat["error_code"] == LOADING
    _, listed = await _call(peer, LIST, 3, {})
    assert listed["error_code"] == LOADING
    release.set()
    with trio.fail_after(2):
        while broker.groups.group_error(group) is not ErrorCode.NONE:
            await trio.sleep(0.01)
    _, fetched = await _call(peer, FETCH, 7, _fetch_v7(group))
    assert fetched["error_code"] == 0
    assert [p["committed_offset"] for t in fetched["topics"] for p in t["partitions"]] == [42]
    _, listed = await _call(peer, LIST, 3, {})
    assert listed["error_code"] == 0 and group in [g["group_id"] for g in listed["groups"]]


async def test_an_empty_partition_led_here_is_answered_at_once(tmp_path, nursery):
    # Nothing to replay: the first request after the topic is created is served, not told to wait.
    broker, peer = await _two_node_offsets(tmp_path, nursery)
    group = _group_led_by(broker, 1, n=3)
    _, joined = await _call(peer, JOIN, 5, _join(group))
    assert joined["error_code"] == ErrorCode.MEMBER_ID_REQUIRED


@pytest.mark.parametrize("meanwhile", ["reloaded", "offline"])
async def test_a_load_outlives_its_log_directory_reloaded_or_offline_between_chunks(
    tmp_path, nursery, monkeypatch, meanwhile
):
    """The loader held the partition's log across its pause: a directory
    reloaded meanwhile (retry_offline_dirs closes the log and makes a new
    one) raised ValueError, one gone offline StorageError, and either ended
    the broker. Now each chunk reads the log there is then; offline, the
    partition stays loading (clients retry) and is loaded once it is back."""
    broker, peer = await _two_node_offsets(tmp_path, nursery)
    group = _group_led_by(broker, 1)
    index = partition_for(group, 4)
    for offset in (1, 2, 3):  # three batches: three chunks below
        _, committed = await _call(peer, COMMIT, 7, _commit(group, offset))
        assert committed["topics"][0]["partitions"][0]["error_code"] == 0
    await _move_leader(broker, index, leader=2, epoch=1)
    monkeypatch.setattr(loading_module, "READ_CHUNK_BYTES", 1)  # a batch a chunk
    paused, release = trio.Event(), trio.Event()

    async def held() -> None:
        paused.set()
        await release.wait()

    monkeypatch.setattr(service_module, "between_chunks", held)
    await _move_leader(broker, index, leader=1, epoch=2)
    with trio.fail_after(5):
        await paused.wait()  # one chunk in
    logs = broker.log_manager
    data_dir = logs.log_dir_of(OFFSETS_TOPIC, index)
    before = logs.get_log(OFFSETS_TOPIC, index)
    logs.failures.fail(data_dir, OSError(errno.ENOSPC, "No space left on device"), "a test's append")
    if meanwhile == "reloaded":
        broker._retry_offline_dirs()
        assert logs.get_log(OFFSETS_TOPIC, index) is not before
    else:
        logs._has_room = lambda data_dir: False  # the broker's own retries must not bring it back yet
    release.set()
    if meanwhile == "offline":
        with trio.fail_after(5):
            while not broker.groups._load_failures.get(index):  # the load failed, to be tried again
                await trio.sleep(0.01)
        assert broker.groups.group_error(group) is LOADING  # what every group API answers now
        del logs._has_room
        broker._retry_offline_dirs()  # back: the load is tried again at once
    with trio.fail_after(10):
        while broker.groups.group_error(group) is not ErrorCode.NONE:
            await trio.sleep(0.01)
    _, fetched = await _call(peer, FETCH, 7, _fetch_v7(group))
    assert fetched["error_code"] == 0
    assert [p["committed_offset"] for t in fetched["topics"] for p in t["partitions"]] == [3]
