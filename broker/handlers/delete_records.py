"""DeleteRecords (0-1): move a partition's log start offset forward.

Per partition: offset -1 means the high watermark (on this single-replica
broker, the log end offset); an offset below -1 or above the high watermark
is OFFSET_OUT_OF_RANGE; an offset at or below the current log start changes
nothing. An internal topic is INVALID_TOPIC_EXCEPTION, before anything
else, and a topic with ``cleanup.policy=compact`` only is
POLICY_VIOLATION, as in Kafka. The answer's low_watermark is the (new) log
start offset, -1 on error; a partition in an offline log directory (a full
disk, say) is KAFKA_STORAGE_ERROR. v0 = v1; v2 is flexible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from riverlog.broker.metadata.internal_topics import delete_records_error
from riverlog.broker.storage.errors import STORAGE_FAULTS, OffsetOutOfRangeError
from riverlog.client.protocol import ApiKey, ErrorCode

if TYPE_CHECKING:
    from riverlog.broker.handlers import RequestContext
    from riverlog.broker.partitions import Partitions

API_KEY = ApiKey.DELETE_RECORDS
MIN_VERSION = 0
MAX_VERSION = 1  # 2 is the first flexible version

HIGH_WATERMARK = -1


async def handle(ctx: RequestContext, request: dict) -> dict:
    partitions = ctx.services.partitions
    topics = []
    for topic in request["topics"]:
        parts = [_delete(partitions, topic["name"], p) for p in topic["partitions"]]
        topics.append({"name": topic["name"], "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}


def _delete(partitions: Partitions, topic: str, p: dict) -> dict:
    out = {"partition_index": p["partition_index"], "low_watermark": -1, "error_code": 0}
    if delete_records_error(topic) is not None:  # the response has no message field to carry it
        out["error_code"] = int(ErrorCode.INVALID_TOPIC_EXCEPTION)
        return out
    found, error = partitions.led_partition(topic, p["partition_index"])
    if found is None:
        out["error_code"] = int(error)
        return out
    _, plog = found
    if not plog.config.delete:
        out["error_code"] = int(ErrorCode.POLICY_VIOLATION)
        return out
    high_watermark = partitions.high_watermark(plog)
    offset = high_watermark if p["offset"] == HIGH_WATERMARK else p["offset"]
    if offset < 0 or offset > high_watermark:
        out["error_code"] = int(ErrorCode.OFFSET_OUT_OF_RANGE)
        return out
    try:
        out["low_watermark"] = plog.delete_records(offset, high_watermark)
    except OffsetOutOfRangeError:
        out["error_code"] = int(ErrorCode.OFFSET_OUT_OF_RANGE)
    except STORAGE_FAULTS:  # its log directory offline, or out of descriptors
        out["error_code"] = int(ErrorCode.KAFKA_STORAGE_ERROR)
    return out
