"""OffsetCommit, OffsetFetch, OffsetDelete and offset expiry (Kafka's offset half of
GroupCoordinator/GroupMetadataManager). Functions of a `GroupCoordinator`.

Committed offsets are applied to the group at once and their records returned
in the same `Outcome`; the commit's response goes out only when those records
are durable. A fetch may therefore see an offset whose append is still in
flight (Kafka keeps such offsets "pending" instead).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from riverlog.client.protocol import ErrorCode

from .group import Group
from .outcome import Outcome
from .records_model import OffsetAndMetadata, OffsetCommitRecord, OffsetTombstone
from .state import GroupState
from .subscription import CONSUMER_PROTOCOL_TYPE

if TYPE_CHECKING:
    from .coordinator import GroupCoordinator

E = ErrorCode


def _validate_commit(group: Group, generation_id: int, member_id: str,
                     instance_id: str | None) -> ErrorCode:
    """Kafka's validateOffsetCommit (non-transactional)."""
    if group.state is GroupState.DEAD:
        return E.COORDINATOR_NOT_AVAILABLE
    if generation_id >= 0 or member_id or instance_id is not None:
        error = group.validate_current_member(member_id, instance_id)
        if error is not E.NONE:
            return error
        return E.ILLEGAL_GENERATION if generation_id != group.generation_id else E.NONE
    # A "simple" commit (no generation, no member): only while nobody is a member.
    return E.NONE if group.state is GroupState.EMPTY else E.UNKNOWN_MEMBER_ID


def commit(coord: GroupCoordinator, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
    """OffsetCommit v0-9 (v9 member epochs are treated as generations)."""
    out = Outcome()
    group_id = request["group_id"]
    generation_id = request.get("generation_id_or_member_epoch", -1) if version >= 1 else -1
    member_id = (request.get("member_id") or "") if version >= 1 else ""
    instance_id = request.get("group_instance_id") if version >= 7 else None
    retention_ms = request.get("retention_time_ms", -1) if 2 <= version <= 4 else -1
    errors: dict[tuple[str, int], ErrorCode] = {}

    def respond(error: ErrorCode | None = None) -> Outcome:
        out.respond(handle, {"throttle_time_ms": 0, "topics": [
            {"name": t["name"], "partitions": [
                {"partition_index": p["partition_index"],
                 "error_code": int(error if error is not None else errors[(t["name"], p["partition_index"])])}
                for p in t["partitions"]]}
            for t in request["topics"]]})
        return out

    if group_id is None:
        return respond(E.INVALID_GROUP_ID)
    group = coord.group(group_id)
    if group is None:
        if generation_id >= 0:
            return respond(E.ILLEGAL_GENERATION)  # a member of a generation this coordinator never saw
        group = coord.get_or_create_group(group_id, now_ms)
    error = _validate_commit(group, generation_id, member_id, instance_id)
    if error is E.NONE and group.state is GroupState.COMPLETING_REBALANCE:
        error = E.REBALANCE_IN_PROGRESS
    if error is not E.NONE:
        return respond(error)
    if member_id in group.members:
        group.members[member_id].last_heartbeat_ms = now_ms
    max_bytes = coord.config.offset_metadata_max_bytes
    for t in request["topics"]:
        for p in t["partitions"]:
            key = (t["name"], p["partition_index"])
            metadata = p.get("committed_metadata") or ""
            if len(metadata) > max_bytes:
                errors[key] = E.OFFSET_METADATA_TOO_LARGE
                continue
            offset = OffsetAndMetadata(
                p["committed_offset"], p.get("committed_leader_epoch", -1) if version >= 6 else -1,
                metadata, now_ms, now_ms + retention_ms if retention_ms != -1 else None)
            group.offsets[key] = offset
            out.records.append(OffsetCommitRecord(group_id, key[0], key[1], offset))
            errors[key] = E.NONE
    return respond()


def _fetch_topics(group: Group | None, topics: list[dict] | None) -> list[dict]:
    live = group is not None and group.state is not GroupState.DEAD
    if topics is None:
        wanted: dict[str, list[int]] = {}
        for topic, partition in sorted(group.offsets) if live else ():
            wanted.setdefault(topic, []).append(partition)
        requested = list(wanted.items())
    else:
        requested = [(t["name"], t["partition_indexes"]) for t in topics]
    result = []
    for topic, partitions in requested:
        rows = []
        for partition in partitions:
            o = group.offsets.get((topic, partition)) if live else None
            rows.append({"partition_index": partition,
                         "committed_offset": o.offset if o else -1,
                         "committed_leader_epoch": o.leader_epoch if o else -1,
                         "metadata": o.metadata if o else "",
                         "error_code": 0})
        result.append({"name": topic, "partitions": rows})
    return result


def fetch(coord: GroupCoordinator, handle: Any, request: dict, version: int) -> Outcome:
    """OffsetFetch v0-9: -1 for partitions without a commit; null topics = all (v2+)."""
    out = Outcome()
    if version >= 8:
        groups = []
        for g in request["groups"]:
            group_id = g["group_id"]
            if group_id is None:
                groups.append({"group_id": group_id, "topics": [], "error_code": int(E.INVALID_GROUP_ID)})
                continue
            groups.append({"group_id": group_id, "error_code": 0,
                           "topics": _fetch_topics(coord.group(group_id), g["topics"])})
        out.respond(handle, {"throttle_time_ms": 0, "groups": groups})
        return out
    group_id = request["group_id"]
    if group_id is None:
        out.respond(handle, {"throttle_time_ms": 0, "topics": [], "error_code": int(E.INVALID_GROUP_ID)})
        return out
    topics = request["topics"]
    if topics is None and version < 2:
        topics = []
    out.respond(handle, {"throttle_time_ms": 0, "error_code": 0,
                         "topics": _fetch_topics(coord.group(group_id), topics)})
    return out


def delete(coord: GroupCoordinator, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
    """OffsetDelete v0: only offsets no member of a live group consumes."""
    out = Outcome()
    group_id = request["group_id"]
    group = coord.group(group_id) if group_id else None
    group_error = E.NONE
    errors: dict[tuple[str, int], ErrorCode] = {}
    requested = [(t["name"], p["partition_index"]) for t in request["topics"] for p in t["partitions"]]
    if not group_id:
        group_error = E.INVALID_GROUP_ID
    elif group is None or group.state is GroupState.DEAD:
        group_error = E.GROUP_ID_NOT_FOUND
    elif group.state is GroupState.EMPTY:
        errors = {tp: E.NONE for tp in requested}
    elif group.protocol_type == CONSUMER_PROTOCOL_TYPE:
        errors = {tp: E.GROUP_SUBSCRIBED_TO_TOPIC if group.is_subscribed_to_topic(tp[0]) else E.NONE
                  for tp in requested}
    else:
        group_error = E.NON_EMPTY_GROUP
    if group_error is E.NONE:
        for tp, error in errors.items():
            if error is E.NONE and group.offsets.pop(tp, None) is not None:
                out.records.append(OffsetTombstone(group.group_id, tp[0], tp[1]))
        if group.state is GroupState.EMPTY and not group.offsets and not group.pending_members:
            coord.remove_group(group, now_ms, out)
        topics: dict[str, list[dict]] = {}
        for (topic, partition), error in errors.items():
            topics.setdefault(topic, []).append({"partition_index": partition, "error_code": int(error)})
        body_topics = [{"name": t, "partitions": ps} for t, ps in topics.items()]
    else:
        body_topics = []
    out.respond(handle, {"error_code": int(group_error), "throttle_time_ms": 0, "topics": body_topics})
    return out


def expire(coord: GroupCoordinator, now_ms: int, out: Outcome) -> None:
    """The periodic offsets.retention.check: expired offsets and dead groups get tombstones."""
    retention_ms = coord.config.offsets_retention_ms
    for group in list(coord.groups()):
        for topic, partition in group.expired_offsets(now_ms, retention_ms):
            del group.offsets[(topic, partition)]
            out.records.append(OffsetTombstone(group.group_id, topic, partition))
        if group.state is GroupState.EMPTY and not group.offsets and not group.pending_members:
            coord.remove_group(group, now_ms, out)
