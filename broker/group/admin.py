"""DescribeGroups, ListGroups and DeleteGroups. Functions of a `GroupCoordinator`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from riverlog.client.protocol import ErrorCode

from .outcome import Outcome
from .state import GroupState

if TYPE_CHECKING:
    from .coordinator import GroupCoordinator

E = ErrorCode
NO_AUTHORIZED_OPERATIONS = -(2**31)
GROUP_TYPE = "classic"


def describe(coord: GroupCoordinator, handle: Any, request: dict, version: int) -> Outcome:
    """DescribeGroups v0-5; an unknown group is described as Dead with error NONE."""
    out = Outcome()
    described = []
    for group_id in request["groups"]:
        group = coord.group(group_id)
        body = {"error_code": 0, "group_id": group_id, "group_state": str(GroupState.DEAD),
                "protocol_type": "", "protocol_data": "", "members": [],
                "authorized_operations": NO_AUTHORIZED_OPERATIONS}
        if group is not None:
            stable = group.state is GroupState.STABLE  # metadata and assignments only when stable
            body.update(
                group_state=str(group.state), protocol_type=group.protocol_type or "",
                protocol_data=group.protocol_name if stable else "",
                members=[{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                          "client_id": m.client_id, "client_host": m.client_host,
                          "member_metadata": m.metadata(group.protocol_name) if stable else b"",
                          "member_assignment": m.assignment if stable else b""}
                         for m in group.members.values()])
        described.append(body)
    out.respond(handle, {"throttle_time_ms": 0, "groups": described})
    return out


def list_groups(coord: GroupCoordinator, handle: Any, request: dict, version: int) -> Outcome:
    """ListGroups v0-5; v4+ filters by state (case-insensitive), v5+ by type."""
    out = Outcome()
    states = {s.lower() for s in request.get("states_filter") or []} if version >= 4 else set()
    types = {t.lower() for t in request.get("types_filter") or []} if version >= 5 else set()
    listed = []
    if not types or GROUP_TYPE in types:
        for group in coord.groups():
            if states and str(group.state).lower() not in states:
                continue
            listed.append({"group_id": group.group_id, "protocol_type": group.protocol_type or "",
                           "group_state": str(group.state), "group_type": GROUP_TYPE})
    out.respond(handle, {"throttle_time_ms": 0, "error_code": 0, "groups": listed})
    return out


def delete(coord: GroupCoordinator, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
    """DeleteGroups v0-2: only empty groups; their offsets and metadata get tombstones."""
    out = Outcome()
    results = []
    for group_id in request["groups_names"]:
        group = coord.group(group_id) if group_id is not None else None
        if group_id is None:
            error = E.INVALID_GROUP_ID
        elif group is None or group.state is GroupState.DEAD:
            error = E.GROUP_ID_NOT_FOUND
        elif group.state is GroupState.EMPTY:
            coord.remove_group(group, now_ms, out)
            error = E.NONE
        else:
            error = E.NON_EMPTY_GROUP
        results.append({"group_id": group_id, "error_code": int(error)})
    out.respond(handle, {"throttle_time_ms": 0, "results": results})
    return out
