"""Coordinator-level refusals (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS)
in each group API's own response shape.

A group belongs to the broker leading its ``__consumer_offsets`` partition;
any other broker refuses it, and the leader refuses it while replaying that
partition. Clients recognise both codes only where their API puts errors:
top level for the membership APIs and OffsetDelete, per partition for
OffsetCommit, per group for the batched APIs. Pure functions: the driver
(service.py) decides which groups to refuse.
"""

from __future__ import annotations

from riverlog.client.protocol import ApiKey, ErrorCode

from .admin import NO_AUTHORIZED_OPERATIONS
from .responses import error_only, join_response, sync_response

# APIs about several groups at once: each group is answered on its own.
BATCHED = (ApiKey.DESCRIBE_GROUPS, ApiKey.DELETE_GROUPS)


def batched(api: ApiKey, version: int) -> bool:
    return api in BATCHED or (api == ApiKey.OFFSET_FETCH and version >= 8)


def checked_group_id(api: ApiKey, request: dict, version: int) -> str | None:
    """The group a single-group request is about; None when the coordinator
    itself must answer (no valid id: it says INVALID_GROUP_ID). Kafka allows
    the empty id for OffsetCommit and OffsetFetch, so it is checked there."""
    group_id = request.get("group_id")
    if group_id is None or (group_id == "" and api not in (ApiKey.OFFSET_COMMIT, ApiKey.OFFSET_FETCH)):
        return None
    return group_id


def refusal(api: ApiKey, request: dict, version: int, error: ErrorCode) -> dict:
    """The whole response of a single-group API refused with `error`."""
    if api == ApiKey.JOIN_GROUP:
        return join_response(version, error, request.get("member_id") or "")
    if api == ApiKey.SYNC_GROUP:
        return sync_response(error)
    if api == ApiKey.HEARTBEAT:
        return error_only(error)
    if api == ApiKey.LEAVE_GROUP:
        return {**error_only(error), "members": []}
    if api == ApiKey.OFFSET_DELETE:
        return {**error_only(error), "topics": []}
    if api == ApiKey.OFFSET_COMMIT:
        return {"throttle_time_ms": 0, "topics": [
            {"name": t["name"], "partitions": [{"partition_index": p["partition_index"], "error_code": int(error)}
                                               for p in t["partitions"]]}
            for t in request["topics"]]}  # fmt: skip
    if api == ApiKey.OFFSET_FETCH:
        assert version < 8, "v8 answers per group"
        if version >= 2:
            return {**error_only(error), "topics": []}
        # v0-1 have no top-level error: Kafka puts it on every requested partition.
        return {"throttle_time_ms": 0, "error_code": int(error), "topics": [
            {"name": t["name"], "partitions": [
                {"partition_index": p, "committed_offset": -1, "committed_leader_epoch": -1, "metadata": "",
                 "error_code": int(error)} for p in t["partition_indexes"]]}
            for t in request["topics"] or []]}  # fmt: skip
    raise ValueError(f"{api.name} is not a single-group API")


def requested_groups(api: ApiKey, request: dict) -> list[str | None]:
    """The groups a batched request names, in order."""
    if api == ApiKey.DESCRIBE_GROUPS:
        return list(request["groups"])
    if api == ApiKey.DELETE_GROUPS:
        return list(request["groups_names"])
    return [g["group_id"] for g in request["groups"]]


def subset(api: ApiKey, request: dict, keep: list[bool]) -> dict:
    """The batched request narrowed to the groups marked in `keep`."""
    if api == ApiKey.DESCRIBE_GROUPS:
        return {**request, "groups": [g for g, k in zip(request["groups"], keep) if k]}
    if api == ApiKey.DELETE_GROUPS:
        return {**request, "groups_names": [g for g, k in zip(request["groups_names"], keep) if k]}
    return {**request, "groups": [g for g, k in zip(request["groups"], keep) if k]}


def answered_groups(api: ApiKey, response: dict) -> list[dict]:
    return response["results"] if api == ApiKey.DELETE_GROUPS else response["groups"]


def group_refusal(api: ApiKey, group_id: str, error: ErrorCode) -> dict:
    """One group's entry of a batched response, refused with `error`."""
    if api == ApiKey.DESCRIBE_GROUPS:
        return {"error_code": int(error), "group_id": group_id, "group_state": "", "protocol_type": "",
                "protocol_data": "", "members": [], "authorized_operations": NO_AUTHORIZED_OPERATIONS}
    if api == ApiKey.DELETE_GROUPS:
        return {"group_id": group_id, "error_code": int(error)}
    return {"group_id": group_id, "topics": [], "error_code": int(error)}


def merge(api: ApiKey, request: dict, keep: list[bool], answered: dict | None,
          errors: list[ErrorCode]) -> dict:  # fmt: skip
    """The batched response: the coordinator's entries (`answered`, for the
    kept groups, in order) and refusals for the others, in request order."""
    mine = iter(answered_groups(api, answered) if answered is not None else [])
    entries = [next(mine) if k else group_refusal(api, g, e)
               for g, k, e in zip(requested_groups(api, request), keep, errors)]  # fmt: skip
    assert next(mine, None) is None, "the coordinator answered groups nobody asked about"
    key = "results" if api == ApiKey.DELETE_GROUPS else "groups"
    return {"throttle_time_ms": 0, key: entries}
