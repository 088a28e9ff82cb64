"""Response bodies for the delayed membership APIs, as the protocol tables name them."""

from __future__ import annotations

from riverlog.client.protocol import ErrorCode


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
