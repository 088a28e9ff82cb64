"""Response bodies for the delayed membership APIs, as the protocol tables name them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from riverlog.client.protocol import ErrorCode

if TYPE_CHECKING:
    from .group import Group


def join_response(version: int, error: ErrorCode, member_id: str, *, generation_id: int = -1,
                  protocol_type: str | None = None, protocol_name: str | None = None,
                  leader: str | None = None, members: list[dict] | None = None,
                  skip_assignment: bool = False) -> dict:
    if protocol_name is None and version < 7:
        protocol_name = ""  # nullable only from v7
    return {
        "throttle_time_ms": 0,
        "error_code": int(error),
        "generation_id": generation_id,
        "protocol_type": protocol_type,
        "protocol_name": protocol_name,
        "leader": leader or "",
        "skip_assignment": skip_assignment,
        "member_id": member_id,
        "members": members or [],
    }


def join_ok(group: Group, member_id: str, version: int, *, as_leader: bool = True) -> dict:
    """A successful JoinGroup of the group's current generation; the leader
    (unless `as_leader` is False) gets the members' metadata to assign from."""
    is_leader = as_leader and group.leader_id == member_id
    return join_response(version, ErrorCode.NONE, member_id, generation_id=group.generation_id,
                         protocol_type=group.protocol_type, protocol_name=group.protocol_name,
                         leader=group.leader_id,
                         members=group.current_member_metadata() if is_leader else [])


def sync_response(error: ErrorCode, *, protocol_type: str | None = None,
                  protocol_name: str | None = None, assignment: bytes = b"") -> dict:
    return {
        "throttle_time_ms": 0,
        "error_code": int(error),
        "protocol_type": protocol_type,
        "protocol_name": protocol_name,
        "assignment": assignment,
    }


def error_only(error: ErrorCode) -> dict:
    return {"throttle_time_ms": 0, "error_code": int(error)}
