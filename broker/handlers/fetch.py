"""Fetch (4-10): consumers read below the high watermark, with long polling.

Sessionless: a request for a new session gets session_id 0 (Kafka's "no
session created") and every requested partition is answered; a request
naming an existing session gets FETCH_SESSION_ID_NOT_FOUND. Followers
(replica_id >= 0) come with replication. Records are the file bytes read
straight from the log files (os.sendfile, see broker/net/connection.py); the
response may end inside a batch, as Kafka's does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from riverlog.broker.storage.errors import STORAGE_FAULTS, OffsetOutOfRangeError
from riverlog.client.protocol import ApiKey, ErrorCode

if TYPE_CHECKING:
    from riverlog.broker.handlers import RequestContext
    from riverlog.broker.partitions import Partitions

API_KEY = ApiKey.FETCH
MIN_VERSION = 4  # batch v2 (every examined client sends 4+)
MAX_VERSION = 10  # 10 allows zstd; 11+ would switch old aiokafka to newer group APIs


async def handle(ctx: RequestContext, request: dict) -> dict:
    if request["session_epoch"] > 0 or request["session_id"] != 0:
        return {"error_code": int(ErrorCode.FETCH_SESSION_ID_NOT_FOUND), "session_id": 0, "responses": []}
    partitions = ctx.services.partitions
    # The broker's fetch.max.bytes bounds what one response holds in memory.
    budget = min(request["max_bytes"], ctx.services.config.fetch_max_bytes)
    deadline = trio.current_time() + max(0, request["max_wait_ms"]) / 1000
    while True:
        responses, total = _read(partitions, budget, request)
        if total >= request["min_bytes"] or trio.current_time() >= deadline:
            return {"throttle_time_ms": 0, "error_code": 0, "session_id": 0, "responses": responses}
        with trio.move_on_at(deadline):
            await partitions.wait_appended()


def _read(partitions: Partitions, budget: int, request: dict) -> tuple[list[dict], int]:
    total = 0
    responses = []
    for topic in request["topics"]:
        parts = []
        for p in topic["partitions"]:
            result = _read_partition(partitions, topic["topic"], p, budget - total, first=total == 0)
            total += len(result["records"] or b"")  # bytes or a file slice
            parts.append(result)
        responses.append({"topic": topic["topic"], "partitions": parts})
    return responses, total


def _read_partition(partitions: Partitions, topic: str, p: dict, budget: int, first: bool) -> dict:
    out = {"partition_index": p["partition"], "error_code": 0, "high_watermark": -1,
           "last_stable_offset": -1, "log_start_offset": -1, "aborted_transactions": [], "records": None}  # fmt: skip
    found, error = partitions.led_partition(topic, p["partition"])
    if found is None:
        out["error_code"] = int(error)
        return out
    _, plog = found
    hw = partitions.high_watermark(plog)
    out.update(high_watermark=hw, last_stable_offset=hw, log_start_offset=plog.log_start_offset)
    max_bytes = max(0, min(p["partition_max_bytes"], budget))
    try:
        # The first partition with data may return a whole batch over the
        # limits (KIP-74), so a consumer always makes progress.
        data = plog.read(p["fetch_offset"], max_bytes, max_offset=hw, min_one_batch=first)
    except OffsetOutOfRangeError:
        out["error_code"] = int(ErrorCode.OFFSET_OUT_OF_RANGE)
        return out
    except STORAGE_FAULTS:
        out["error_code"] = int(ErrorCode.KAFKA_STORAGE_ERROR)  # its log directory offline, or out of descriptors
        return out
    # The file slice itself: the connection sends it with os.sendfile.
    out["records"] = data.slice if data.slice is not None else b""
    return out
