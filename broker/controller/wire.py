"""The quorum's messages on Kafka's wire, for the one metadata partition.

The Raft core speaks in the small dataclasses of ``raft/messages.py``; peers
speak Kafka's KRaft RPCs (KIP-595): Vote, BeginQuorumEpoch,
EndQuorumEpoch, Fetch v12+ and FetchSnapshot, each addressing topic
``__cluster_metadata`` partition 0 (by name, or by the reserved topic id
0...01 where Fetch names topics by id). This module converts between the two
and nothing else: bodies are the dicts ``client.protocol.codec`` encodes and
decodes, so it does no I/O and keeps no state.

What the driver keeps, not this module: the wire's correlation ids (the
core's ``correlation`` is a separate number, passed in), the cluster id check
(``request_from_wire`` hands the request's cluster id back beside the
message), and the version a response must use (the request's).

Which version we send (``SEND_VERSIONS``): the newest of our tables, so Vote
goes at v2, the only one that carries ``pre_vote``, and Fetch at v17, where
the replica id moved into the tagged ``replica_state``. Every version in
``READ_VERSIONS`` is read; Fetch below v12 has no last fetched epoch or
diverging epoch and cannot carry the protocol at all.

Vote v2 is KIP-996's pre-vote. Kafka's prospective sends its *current*
epoch there; our core's pre-vote names the epoch it would campaign at (one
more), so the conversion subtracts one going out and adds it back coming in.
A Vote response does not say it answers a pre-vote: the driver passes that.

Empty and absent look alike on the wire: a Fetch response's diverging epoch
and snapshot id are "none" when they hold the schema's default (-1, -1).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from riverlog.broker.controller.raft.messages import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    EndQuorumEpochRequest,
    EndQuorumEpochResponse,
    Entry,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    Message,
    SnapshotId,
    VoteRequest,
    VoteResponse,
)
from riverlog.client.protocol import ApiKey
from riverlog.client.records import NewRecord, build_batch, iter_batches

__all__ = [
    "METADATA_TOPIC", "METADATA_TOPIC_ID", "METADATA_PARTITION", "READ_VERSIONS", "SEND_VERSIONS",
    "request_to_wire", "request_from_wire", "response_to_wire", "response_from_wire",
    "encode_entries", "decode_entries",
]  # fmt: skip

METADATA_TOPIC = "__cluster_metadata"
METADATA_TOPIC_ID = uuid.UUID(int=1)  # the codec's uuid values are uuid.UUID
METADATA_PARTITION = 0

FETCH = ApiKey.FETCH
VOTE = ApiKey.VOTE
BEGIN_QUORUM_EPOCH = ApiKey.BEGIN_QUORUM_EPOCH
END_QUORUM_EPOCH = ApiKey.END_QUORUM_EPOCH
FETCH_SNAPSHOT = ApiKey.FETCH_SNAPSHOT
READ_VERSIONS = {VOTE: (0, 2), BEGIN_QUORUM_EPOCH: (0, 1), END_QUORUM_EPOCH: (0, 1), FETCH: (12, 17),
                 FETCH_SNAPSHOT: (0, 1)}  # fmt: skip
SEND_VERSIONS = {key: hi for key, (lo, hi) in READ_VERSIONS.items()}
_REQUEST_KEYS = {VoteRequest: VOTE, BeginQuorumEpochRequest: BEGIN_QUORUM_EPOCH,
                 EndQuorumEpochRequest: END_QUORUM_EPOCH, FetchRequest: FETCH,
                 FetchSnapshotRequest: FETCH_SNAPSHOT}  # fmt: skip
_RESPONSE_KEYS = {VoteResponse: VOTE, BeginQuorumEpochResponse: BEGIN_QUORUM_EPOCH,
                  EndQuorumEpochResponse: END_QUORUM_EPOCH, FetchResponse: FETCH,
                  FetchSnapshotResponse: FETCH_SNAPSHOT}  # fmt: skip
_NONE = (-1, -1)  # a Fetch response's diverging epoch or snapshot id that is not there
DEFAULT_TICK_MS = 50


def _check_version(api_key: int, version: int) -> None:
    lo, hi = READ_VERSIONS.get(api_key, (1, 0))
    if not lo <= version <= hi:
        raise ValueError(f"api key {api_key} v{version} is not a quorum RPC version we speak")


# Fetch names the topic up to v12 and gives its id from v13: the codec
# writes whichever of the two the version has.
_FETCH_TOPIC: dict[str, Any] = {"topic": METADATA_TOPIC, "topic_id": METADATA_TOPIC_ID}


# -- requests ----------------------------------------------------------------------


def request_to_wire(msg: Message, cluster_id: str | None, *, version: int | None = None,
                    tick_ms: int = DEFAULT_TICK_MS) -> tuple[int, int, dict]:  # fmt: skip
    """``(api_key, version, body)`` for one of the core's requests."""
    api_key = _REQUEST_KEYS.get(type(msg))
    if api_key is None:
        raise ValueError(f"{type(msg).__name__} is not a quorum request")
    version = SEND_VERSIONS[api_key] if version is None else version
    _check_version(api_key, version)
    if isinstance(msg, VoteRequest):
        if msg.pre_vote and version < 2:
            raise ValueError("a pre-vote needs Vote v2 (KIP-996)")
        # KIP-996 as Kafka built it: a pre-vote carries the sender's current
        # epoch, where our core names the epoch it would campaign at (+1).
        epoch = msg.epoch - 1 if msg.pre_vote else msg.epoch
        part = {"partition_index": METADATA_PARTITION, "candidate_epoch": epoch, "candidate_id": msg.src,
                "last_offset_epoch": msg.last_epoch, "last_offset": msg.last_end_offset, "pre_vote": msg.pre_vote}
        body = {"cluster_id": cluster_id, "voter_id": msg.dst,
                "topics": [{"topic_name": METADATA_TOPIC, "partitions": [part]}]}  # fmt: skip
    elif isinstance(msg, BeginQuorumEpochRequest):
        part = {"partition_index": METADATA_PARTITION, "leader_id": msg.src, "leader_epoch": msg.epoch}
        body = {"cluster_id": cluster_id, "voter_id": msg.dst,
                "topics": [{"topic_name": METADATA_TOPIC, "partitions": [part]}]}  # fmt: skip
    elif isinstance(msg, EndQuorumEpochRequest):
        part = {"partition_index": METADATA_PARTITION, "leader_id": msg.src, "leader_epoch": msg.epoch,
                "preferred_successors": list(msg.preferred_successors),
                "preferred_candidates": [{"candidate_id": i} for i in msg.preferred_successors]}  # fmt: skip
        body = {"cluster_id": cluster_id, "topics": [{"topic_name": METADATA_TOPIC, "partitions": [part]}]}
    elif isinstance(msg, FetchRequest):
        assert tick_ms > 0, tick_ms
        part = {"partition": METADATA_PARTITION, "current_leader_epoch": msg.epoch,
                "fetch_offset": msg.fetch_offset, "last_fetched_epoch": msg.last_fetched_epoch,
                "log_start_offset": -1, "partition_max_bytes": 0x7FFFFFFF}  # fmt: skip
        body = {"cluster_id": cluster_id, "replica_id": msg.src, "replica_state": {"replica_id": msg.src},
                "max_wait_ms": msg.max_wait_ticks * tick_ms, "min_bytes": 0, "session_epoch": -1,
                "topics": [{**_FETCH_TOPIC, "partitions": [part]}]}  # fmt: skip
    else:
        assert isinstance(msg, FetchSnapshotRequest)
        sid = {"end_offset": msg.snapshot_id.end_offset, "epoch": msg.snapshot_id.epoch}
        part = {"partition": METADATA_PARTITION, "current_leader_epoch": msg.epoch, "snapshot_id": sid,
                "position": msg.position}
        body = {"cluster_id": cluster_id, "replica_id": msg.src, "max_bytes": msg.max_bytes,
                "topics": [{"name": METADATA_TOPIC, "partitions": [part]}]}  # fmt: skip
    return api_key, version, body


def request_from_wire(api_key: int, version: int, body: dict, src: int, dst: int, correlation: int,
                      *, tick_ms: int = DEFAULT_TICK_MS) -> tuple[Message, str | None]:  # fmt: skip
    """``(message, cluster_id)`` from a decoded request body.

    ``src`` (the transport's idea of the sender) is not used: the body
    names the sender itself (candidate, leader or replica id), and that is
    what the core sees; the driver may compare the two. Raises ValueError,
    and only ValueError, for a body that does not address exactly
    ``__cluster_metadata``-0. ``max_wait_ms`` becomes ticks rounded up."""
    assert tick_ms > 0, tick_ms
    _check_version(api_key, version)
    try:
        return _request_from_wire(api_key, version, body, dst, correlation, tick_ms)
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(f"malformed api key {api_key} v{version} request: {exc!r}") from None


def _request_from_wire(api_key: int, version: int, body: dict, dst: int, correlation: int,
                       tick_ms: int) -> tuple[Message, str | None]:  # fmt: skip
    what = f"api key {api_key} v{version} request"
    cluster_id = body["cluster_id"]
    msg: Message
    if api_key == VOTE:
        p = _only_partition(body["topics"], "topic_name", METADATA_TOPIC, "partition_index", what)
        pre_vote = version >= 2 and bool(p["pre_vote"])
        msg = VoteRequest(p["candidate_id"], dst, correlation, p["candidate_epoch"] + (1 if pre_vote else 0),
                          p["last_offset_epoch"], p["last_offset"], pre_vote)  # fmt: skip
    elif api_key == BEGIN_QUORUM_EPOCH:
        p = _only_partition(body["topics"], "topic_name", METADATA_TOPIC, "partition_index", what)
        msg = BeginQuorumEpochRequest(p["leader_id"], dst, correlation, p["leader_epoch"])
    elif api_key == END_QUORUM_EPOCH:
        p = _only_partition(body["topics"], "topic_name", METADATA_TOPIC, "partition_index", what)
        if version == 0:
            successors = tuple(p["preferred_successors"])
        else:
            successors = tuple(c["candidate_id"] for c in p["preferred_candidates"])
        msg = EndQuorumEpochRequest(p["leader_id"], dst, correlation, p["leader_epoch"], successors)
    elif api_key == FETCH:
        key, name = ("topic_id", METADATA_TOPIC_ID) if version >= 13 else ("topic", METADATA_TOPIC)
        p = _only_partition(body["topics"], key, name, "partition", what)
        replica_id = body["replica_state"]["replica_id"] if version >= 15 else body["replica_id"]
        wait_ms = body["max_wait_ms"]
        if wait_ms < 0:
            raise ValueError(f"{what}: max_wait_ms {wait_ms} is negative")
        if p["fetch_offset"] < 0 or replica_id < 0:
            raise ValueError(f"{what}: fetch offset {p['fetch_offset']} or replica id {replica_id} is negative")
        msg = FetchRequest(replica_id, dst, correlation, p["current_leader_epoch"], p["fetch_offset"],
                           p["last_fetched_epoch"], -(-wait_ms // tick_ms))  # fmt: skip
    else:
        assert api_key == FETCH_SNAPSHOT
        p = _only_partition(body["topics"], "name", METADATA_TOPIC, "partition", what)
        sid = p["snapshot_id"]
        msg = FetchSnapshotRequest(body["replica_id"], dst, correlation, p["current_leader_epoch"],
                                   SnapshotId(sid["end_offset"], sid["epoch"]), p["position"],
                                   body["max_bytes"])  # fmt: skip
    return msg, cluster_id


def _only_partition(topics: list, name_key: str, name: object, index_key: str, what: str) -> dict:
    """The one partition entry of a body that must address only ours."""
    if not isinstance(topics, list) or len(topics) != 1:
        n = len(topics) if isinstance(topics, list) else topics
        raise ValueError(f"{what}: expected exactly one topic ({METADATA_TOPIC}), got {n}")
    topic = topics[0]
    if topic[name_key] != name:
        raise ValueError(f"{what}: topic {topic[name_key]!r} is not {name!r}")
    parts = topic["partitions"]
    if not isinstance(parts, list) or len(parts) != 1:
        n = len(parts) if isinstance(parts, list) else parts
        raise ValueError(f"{what}: expected exactly one partition of {METADATA_TOPIC}, got {n}")
    part = parts[0]
    if part[index_key] != METADATA_PARTITION:
        raise ValueError(f"{what}: partition {part[index_key]!r} is not {METADATA_PARTITION}")
    return part



# -- responses ---------------------------------------------------------------------


def response_to_wire(msg: Message, version: int) -> dict:
    """The body answering a request of ``version`` (the request's own)."""
    api_key = _RESPONSE_KEYS.get(type(msg))
    if api_key is None:
        raise ValueError(f"{type(msg).__name__} is not a quorum response")
    _check_version(api_key, version)
    if isinstance(msg, (VoteResponse, BeginQuorumEpochResponse, EndQuorumEpochResponse)):
        part = {"partition_index": METADATA_PARTITION, "error_code": msg.error, "leader_id": msg.leader_id,
                "leader_epoch": msg.epoch}  # fmt: skip
        if isinstance(msg, VoteResponse):
            part["vote_granted"] = msg.granted
        return {"error_code": 0, "topics": [{"topic_name": METADATA_TOPIC, "partitions": [part]}]}
    if isinstance(msg, FetchResponse):
        if msg.diverging == _NONE or (msg.snapshot_id is not None and _pair(msg.snapshot_id) == _NONE):
            raise ValueError(f"(-1, -1) is how the wire says 'none': {msg}")
        diverging = _NONE if msg.diverging is None else msg.diverging
        snapshot = _NONE if msg.snapshot_id is None else _pair(msg.snapshot_id)
        part = {"partition_index": METADATA_PARTITION, "error_code": msg.error,
                "high_watermark": msg.high_watermark, "last_stable_offset": -1,
                "log_start_offset": msg.log_start_offset,
                "diverging_epoch": {"epoch": diverging[0], "end_offset": diverging[1]},
                "current_leader": {"leader_id": msg.leader_id, "leader_epoch": msg.epoch},
                "snapshot_id": {"end_offset": snapshot[0], "epoch": snapshot[1]},
                "aborted_transactions": None, "records": encode_entries(msg.entries)}  # fmt: skip
        return {"throttle_time_ms": 0, "error_code": 0, "session_id": 0,
                "responses": [{**_FETCH_TOPIC, "partitions": [part]}]}  # fmt: skip
    assert isinstance(msg, FetchSnapshotResponse)
    part = {"index": METADATA_PARTITION, "error_code": msg.error,
            "snapshot_id": {"end_offset": msg.snapshot_id.end_offset, "epoch": msg.snapshot_id.epoch},
            "current_leader": {"leader_id": msg.leader_id, "leader_epoch": msg.epoch},
            "size": msg.size, "position": msg.position, "unaligned_records": msg.chunk}  # fmt: skip
    return {"throttle_time_ms": 0, "error_code": 0, "topics": [{"name": METADATA_TOPIC, "partitions": [part]}]}


def _pair(snapshot_id: SnapshotId) -> tuple[int, int]:
    return snapshot_id.end_offset, snapshot_id.epoch


def response_from_wire(api_key: int, version: int, body: dict, src: int, dst: int, correlation: int,
                       *, pre_vote: bool = False) -> Message:  # fmt: skip
    """The core's response from a decoded response body.

    A Vote response does not say whether it answers a pre-vote (KIP-996
    left the response unchanged): the driver, which knows the request it
    sent, passes ``pre_vote``. A top-level error (INCONSISTENT_CLUSTER_ID,
    say) may come without partitions: the message then carries that error
    with epoch and leader -1. Raises ValueError, and only ValueError, for a
    body that does not answer for exactly ``__cluster_metadata``-0."""
    _check_version(api_key, version)
    try:
        return _response_from_wire(api_key, version, body, src, dst, correlation, pre_vote)
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(f"malformed api key {api_key} v{version} response: {exc!r}") from None


def _response_from_wire(api_key: int, version: int, body: dict, src: int, dst: int, correlation: int,
                        pre_vote: bool) -> Message:  # fmt: skip
    what = f"api key {api_key} v{version} response"
    top_error = body["error_code"]
    if api_key == FETCH:
        key, name = ("topic_id", METADATA_TOPIC_ID) if version >= 13 else ("topic", METADATA_TOPIC)
        topics, index_key = body["responses"], "partition_index"
    elif api_key == FETCH_SNAPSHOT:
        key, name, topics, index_key = "name", METADATA_TOPIC, body["topics"], "index"
    else:
        key, name, topics, index_key = "topic_name", METADATA_TOPIC, body["topics"], "partition_index"
    if top_error and not topics:
        p = None
    else:
        p = _only_partition(topics, key, name, index_key, what)
    error = top_error or (p["error_code"] if p else 0)
    if api_key in (VOTE, BEGIN_QUORUM_EPOCH, END_QUORUM_EPOCH):
        epoch, leader_id = (p["leader_epoch"], p["leader_id"]) if p else _NONE
        if api_key == VOTE:
            granted = bool(p["vote_granted"]) if p else False
            return VoteResponse(src, dst, correlation, epoch, leader_id, granted, pre_vote, error)
        cls = BeginQuorumEpochResponse if api_key == BEGIN_QUORUM_EPOCH else EndQuorumEpochResponse
        return cls(src, dst, correlation, epoch, leader_id, error)
    if p is None:
        if api_key == FETCH:
            return FetchResponse(src, dst, correlation, -1, -1, error)
        return FetchSnapshotResponse(src, dst, correlation, -1, -1, SnapshotId(-1, -1), error)
    leader = p["current_leader"]
    if api_key == FETCH:
        d, s = p["diverging_epoch"], p["snapshot_id"]
        diverging = None if (d["epoch"], d["end_offset"]) == _NONE else (d["epoch"], d["end_offset"])
        snapshot = None if (s["end_offset"], s["epoch"]) == _NONE else SnapshotId(s["end_offset"], s["epoch"])
        records = p["records"]
        entries = () if records is None else decode_entries(records)
        return FetchResponse(src, dst, correlation, leader["leader_epoch"], leader["leader_id"], error,
                             p["high_watermark"], p["log_start_offset"], entries, diverging, snapshot)  # fmt: skip
    sid = p["snapshot_id"]
    return FetchSnapshotResponse(src, dst, correlation, leader["leader_epoch"], leader["leader_id"],
                                 SnapshotId(sid["end_offset"], sid["epoch"]), error, p["size"], p["position"],
                                 bytes(p["unaligned_records"] or b""))  # fmt: skip


# -- log entries as record batches -------------------------------------------------

# A control record's key is (int16 version 0, int16 type); LeaderChange is 2
# (Kafka's ControlRecordType). Our control entries are all LeaderChange records.
_LEADER_CHANGE_KEY = (0).to_bytes(2, "big") + (2).to_bytes(2, "big")


def encode_entries(entries: Sequence[Entry]) -> bytes:
    """Record batches v2 holding ``entries`` (consecutive offsets): one batch
    per run of equal (epoch, control), its base offset the first entry's,
    its partitionLeaderEpoch the epoch; each record's value is the entry's
    data, its key null (a data entry) or the LeaderChange control key."""
    out = bytearray()
    run: list[Entry] = []
    for entry in entries:
        if run and entry.offset != run[-1].offset + 1:
            raise ValueError(f"entry offsets must be consecutive: {run[-1].offset} then {entry.offset}")
        if run and (entry.epoch, entry.control) != (run[0].epoch, run[0].control):
            out += _batch(run)
            run = []
        run.append(entry)
    if run:
        out += _batch(run)
    return bytes(out)


def _batch(run: list[Entry]) -> bytes:
    key = _LEADER_CHANGE_KEY if run[0].control else None
    return build_batch([NewRecord(key, e.data, 0) for e in run], base_offset=run[0].offset,
                       partition_leader_epoch=run[0].epoch, is_control=run[0].control)  # fmt: skip


def decode_entries(data: bytes | memoryview) -> tuple[Entry, ...]:
    """The inverse of :func:`encode_entries`. Every batch is checked (magic,
    length, CRC); anything that is not whole batches of consecutive offsets,
    a null value, or a control record other than LeaderChange raises
    ValueError: a leader sends whole batches, so a partial one is damage."""
    view = memoryview(data)
    entries: list[Entry] = []
    consumed = 0
    try:
        for batch in iter_batches(view):
            consumed += batch.size_in_bytes
            epoch, control = batch.partition_leader_epoch, batch.is_control
            for record in batch.records():
                if record.value is None:
                    raise ValueError(f"record at offset {record.offset} has a null value")
                if control and (record.key is None or bytes(record.key) != _LEADER_CHANGE_KEY):
                    raise ValueError(f"control record at offset {record.offset} is not a LeaderChange")
                if entries and record.offset != entries[-1].offset + 1:
                    raise ValueError(f"offset {record.offset} does not follow {entries[-1].offset}")
                entries.append(Entry(record.offset, epoch, bytes(record.value), control))
    except ValueError:
        raise
    except Exception as exc:  # a damaged batch must not surface as struct.error or IndexError
        raise ValueError(f"corrupt record batch: {exc!r}") from exc
    if consumed != len(view):
        raise ValueError(f"{len(view) - consumed} bytes after the last whole batch")
    return tuple(entries)
