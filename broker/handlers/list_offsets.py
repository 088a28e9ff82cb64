"""ListOffsets (1-4): earliest (-2), latest (-1) or the first offset at or after a timestamp."""

from __future__ import annotations

from typing import TYPE_CHECKING

from riverlog.broker.storage.errors import STORAGE_FAULTS
from riverlog.client.protocol import ApiKey, ErrorCode

if TYPE_CHECKING:
    from riverlog.broker.handlers import RequestContext
    from riverlog.broker.partitions import Partitions

API_KEY = ApiKey.LIST_OFFSETS
MIN_VERSION = 1
MAX_VERSION = 4

EARLIEST = -2
LATEST = -1


def handle(ctx: RequestContext, request: dict) -> dict:
    partitions = ctx.services.partitions
    topics = []
    for topic in request["topics"]:
        parts = [_lookup(partitions, topic["name"], p) for p in topic["partitions"]]
        topics.append({"name": topic["name"], "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}


def _lookup(partitions: Partitions, topic: str, p: dict) -> dict:
    out = {"partition_index": p["partition_index"], "error_code": 0, "timestamp": -1, "offset": -1, "leader_epoch": -1}
    found, error = partitions.led_partition(topic, p["partition_index"])
    if found is None:
        out["error_code"] = int(error)
        return out
    partition, plog = found
    out["leader_epoch"] = partition.leader_epoch
    target = p["timestamp"]
    if target == EARLIEST:
        out["offset"] = plog.log_start_offset
    elif target == LATEST:
        out["offset"] = partitions.high_watermark(plog)
    elif target < 0:
        out["error_code"] = int(ErrorCode.UNSUPPORTED_VERSION)  # -3 (max timestamp) needs v7
    else:
        try:
            hit = plog.find_offset_by_timestamp(target)
        except STORAGE_FAULTS:  # its log directory offline, or out of descriptors
            out["error_code"] = int(ErrorCode.KAFKA_STORAGE_ERROR)
            return out
        if hit is not None:
            out["timestamp"], out["offset"] = hit
    return out
