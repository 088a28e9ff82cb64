"""CreateTopics (0-4): through the controller, with validate_only and per-topic configs."""

from __future__ import annotations

from riverlog.client.protocol import ApiKey, ErrorCode

from riverlog.broker.handlers.forward import forwarded

API_KEY = ApiKey.CREATE_TOPICS
MIN_VERSION = 0
MAX_VERSION = 4  # 5 is the first flexible version


async def handle(ctx, request: dict) -> dict:
    if (answer := await forwarded(ctx, request)) is not None:
        return answer
    controller = ctx.services.controller.local  # the active controller: forwarded() said so
    wanted, results = [], {}
    for t in request["topics"]:
        if t["assignments"]:
            # Manual replica assignment is not supported yet: say so per topic.
            results[t["name"]] = (int(ErrorCode.INVALID_REQUEST), "manual replica assignment is not supported")
            continue
        configs = {c["name"]: c["value"] for c in t["configs"]}
        wanted.append((t["name"], t["num_partitions"], t["replication_factor"], configs))
    for r in await controller.create_topics(wanted, validate_only=request["validate_only"]):
        results[r.name] = (int(r.error_code), r.error_message)
    topics = [
        {"name": t["name"], "error_code": results[t["name"]][0], "error_message": results[t["name"]][1]}
        for t in request["topics"]
    ]
    return {"throttle_time_ms": 0, "topics": topics}
