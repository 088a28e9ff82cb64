"""SyncGroup, Heartbeat and LeaveGroup: the membership APIs after JoinGroup
(join.py). Functions of a `GroupCoordinator`; what they do to a generation
is its `Rebalancer`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from riverlog.client.protocol import ErrorCode

from .group import Group
from .member import Waiter
from .outcome import Outcome
from .responses import error_only, sync_response
from .state import GroupState

if TYPE_CHECKING:
    from .coordinator import GroupCoordinator

E = ErrorCode


def check_member(group_id: str, group: Group | None, member_id: str, instance_id: str | None,
                 generation_id: int) -> ErrorCode:
    """The checks SyncGroup and Heartbeat share, in Kafka's order."""
    if not group_id:
        return E.INVALID_GROUP_ID
    if group is None:
        return E.UNKNOWN_MEMBER_ID
    if group.state is GroupState.DEAD:
        return E.COORDINATOR_NOT_AVAILABLE
    if group.is_static_member_fenced(instance_id, member_id):
        return E.FENCED_INSTANCE_ID
    if member_id not in group.members:
        return E.UNKNOWN_MEMBER_ID
    if generation_id != group.generation_id:
        return E.ILLEGAL_GENERATION
    return E.NONE


def sync_group(coord: GroupCoordinator, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
    """SyncGroup v0-5: the leader's assignment answers every waiting member."""
    out = Outcome()
    group_id, member_id = request["group_id"], request["member_id"]
    instance_id = request.get("group_instance_id") if version >= 3 else None
    protocol_type = request.get("protocol_type") if version >= 5 else None
    protocol_name = request.get("protocol_name") if version >= 5 else None
    group = coord.group(group_id) if group_id else None
    error = check_member(group_id, group, member_id, instance_id, request["generation_id"])
    if error is E.NONE:
        if protocol_type is not None and protocol_type != group.protocol_type:
            error = E.INCONSISTENT_GROUP_PROTOCOL
        elif protocol_name is not None and protocol_name != group.protocol_name:
            error = E.INCONSISTENT_GROUP_PROTOCOL
        elif group.state is GroupState.EMPTY:
            error = E.UNKNOWN_MEMBER_ID
        elif group.state is GroupState.PREPARING_REBALANCE:
            error = E.REBALANCE_IN_PROGRESS
    if error is not E.NONE:
        out.respond(handle, sync_response(error))
        return out
    member = group.members[member_id]
    group.pending_sync_members.discard(member_id)
    if group.state is GroupState.STABLE:
        member.last_heartbeat_ms = now_ms
        out.respond(handle, sync_response(E.NONE, protocol_type=group.protocol_type,
                                          protocol_name=group.protocol_name,
                                          assignment=member.assignment))
        return out
    assert group.state is GroupState.COMPLETING_REBALANCE
    old = member.sync_waiter
    if old is not None and old.handle is not handle:
        out.respond(old.handle, sync_response(E.REBALANCE_IN_PROGRESS))
    member.sync_waiter = Waiter(handle, version)
    if group.leader_id == member_id:
        assignments = {a["member_id"]: bytes(a["assignment"]) for a in request["assignments"]}
        coord.rebalancer.assign(group, assignments, now_ms, out)
    return out


def heartbeat(coord: GroupCoordinator, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
    """Heartbeat v0-4: keep the session; REBALANCE_IN_PROGRESS tells members to rejoin."""
    out = Outcome()
    group_id, member_id = request["group_id"], request["member_id"]
    instance_id = request.get("group_instance_id") if version >= 3 else None
    group = coord.group(group_id) if group_id else None
    error = check_member(group_id, group, member_id, instance_id, request["generation_id"])
    if error is E.NONE:
        if group.state is GroupState.EMPTY:
            error = E.UNKNOWN_MEMBER_ID
        else:
            group.members[member_id].last_heartbeat_ms = now_ms
            if group.state is GroupState.PREPARING_REBALANCE:
                error = E.REBALANCE_IN_PROGRESS
    out.respond(handle, error_only(error))
    return out


def leave_group(coord: GroupCoordinator, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
    """LeaveGroup v0-5: v0-2 one member, v3+ a batch with per-member errors."""
    out = Outcome()
    group_id = request["group_id"]
    if version >= 3:
        leaving = [(m["member_id"], m.get("group_instance_id")) for m in request["members"]]
    else:
        leaving = [(request["member_id"], None)]
    top, results = E.NONE, []
    group = coord.group(group_id) if group_id else None
    if not group_id:
        top = E.INVALID_GROUP_ID
    elif group is None:
        results = [(mid, iid, E.UNKNOWN_MEMBER_ID) for mid, iid in leaving]
    elif group.state is GroupState.DEAD:
        top = E.COORDINATOR_NOT_AVAILABLE
    else:
        for mid, iid in leaving:
            results.append((mid, iid, _leave_one(coord, group, mid, iid, now_ms, out)))
    if version >= 3:
        out.respond(handle, {"throttle_time_ms": 0, "error_code": int(top), "members": [
            {"member_id": mid, "group_instance_id": iid, "error_code": int(err)}
            for mid, iid, err in results]})
    else:
        if top is E.NONE and results:
            top = results[0][2]
        out.respond(handle, error_only(top))
    return out


def _leave_one(coord: GroupCoordinator, group: Group, member_id: str, instance_id: str | None,
               now_ms: int, out: Outcome) -> ErrorCode:
    rebalancer = coord.rebalancer
    if not member_id:
        # Administrative removal by instance id (KIP-345).
        current = group.static_members.get(instance_id) if instance_id is not None else None
        if current is None:
            return E.UNKNOWN_MEMBER_ID
        rebalancer.remove_member(group, group.members[current], now_ms, out,
                                 f"LeaveGroup for group.instance.id {instance_id}")
        return E.NONE
    if member_id in group.pending_members:
        group.pending_members.pop(member_id)
        rebalancer.try_complete_join(group, now_ms, out)
        return E.NONE
    error = group.validate_current_member(member_id, instance_id)
    if error is E.NONE:
        rebalancer.remove_member(group, group.members[member_id], now_ms, out, "left the group (LeaveGroup)")
    return error
