"""FindCoordinator (0-4): the broker that coordinates a consumer group.

A group's coordinator is the leader of its ``__consumer_offsets`` partition,
created on the first request as Kafka does. Transactions do not exist here
yet: a transactional id gets COORDINATOR_NOT_AVAILABLE with a message saying
so. v4 answers several keys at once (librdkafka 2.x batches them).
"""

from __future__ import annotations

from riverlog.client.protocol import ApiKey, ErrorCode

API_KEY = ApiKey.FIND_COORDINATOR
MIN_VERSION = 0
MAX_VERSION = 4

GROUP, TRANSACTION = 0, 1


async def _find(ctx, key: str, key_type: int) -> dict:
    if key_type == TRANSACTION:
        return _error(ErrorCode.COORDINATOR_NOT_AVAILABLE, "transactions are not supported by this broker")
    if key_type != GROUP:
        return _error(ErrorCode.INVALID_REQUEST, f"unknown coordinator key type {key_type}")
    if not key:
        return _error(ErrorCode.INVALID_GROUP_ID, "the group id is empty")
    found = await ctx.services.groups.coordinator_of(key)
    if found is None:
        return _error(ErrorCode.COORDINATOR_NOT_AVAILABLE, "the group coordinator is not available yet")
    node_id, host, port = found
    return {"error_code": 0, "error_message": None, "node_id": node_id, "host": host, "port": port}


def _error(code: ErrorCode, message: str) -> dict:
    return {"error_code": int(code), "error_message": message, "node_id": -1, "host": "", "port": -1}


async def handle(ctx, request: dict) -> dict:
    key_type = request.get("key_type", GROUP) if ctx.api_version >= 1 else GROUP
    if ctx.api_version >= 4:
        coordinators = [{"key": key, **await _find(ctx, key, key_type)} for key in request["coordinator_keys"]]
        return {"throttle_time_ms": 0, "coordinators": coordinators}
    return {"throttle_time_ms": 0, **await _find(ctx, request["key"], key_type)}
