"""OffsetCommit (0-8): answered by the group coordinator (broker/group).

Partitions of topics this cluster does not have get UNKNOWN_TOPIC_OR_PARTITION
here, as Kafka's broker answers them before its coordinator sees the commit.
v9's member epochs belong to the new consumer protocol (KIP-848), not served.
"""

from __future__ import annotations

from riverlog.client.protocol import ApiKey, ErrorCode

API_KEY = ApiKey.OFFSET_COMMIT
MIN_VERSION = 0
MAX_VERSION = 8


async def handle(ctx, request: dict) -> dict:
    topics = ctx.services.metadata.image.topics
    known, unknown = [], []
    for t in request["topics"]:
        info = topics.get(t["name"])
        ok = [p for p in t["partitions"] if info is not None and p["partition_index"] in info.partitions]
        bad = [p for p in t["partitions"] if not (info is not None and p["partition_index"] in info.partitions)]
        if ok:
            known.append({**t, "partitions": ok})
        if bad:
            unknown.append({"name": t["name"], "partitions": [
                {"partition_index": p["partition_index"], "error_code": int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)}
                for p in bad]})  # fmt: skip
    if not known and unknown:
        return {"throttle_time_ms": 0, "topics": unknown}
    response = await ctx.services.groups.call(ApiKey.OFFSET_COMMIT, ctx, {**request, "topics": known})
    if unknown:
        response = {**response, "topics": [*response["topics"], *unknown]}
    return response
