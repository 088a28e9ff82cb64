"""DeleteTopics (0-5): through the controller; the partitions' data goes with them.

v4 is flexible; v5 adds the per-topic error message, which says why a topic
was refused (an internal one, say).
"""

from __future__ import annotations

from riverlog.broker.handlers.forward import forwarded
from riverlog.client.protocol import ApiKey

API_KEY = ApiKey.DELETE_TOPICS
MIN_VERSION = 0
MAX_VERSION = 5  # 5 carries error_message (the reason a topic was refused); 6 names topics by id


async def handle(ctx, request: dict) -> dict:
    if (answer := await forwarded(ctx, request)) is not None:
        return answer
    results = await ctx.services.controller.local.delete_topics(request["topic_names"])
    responses = [{"name": r.name, "error_code": int(r.error_code), "error_message": r.error_message} for r in results]
    return {"throttle_time_ms": 0, "responses": responses}
