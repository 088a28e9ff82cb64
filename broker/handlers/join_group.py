"""JoinGroup (0-9): answered by the group coordinator (broker/group)."""

from __future__ import annotations

from riverlog.client.protocol import ApiKey

API_KEY = ApiKey.JOIN_GROUP
MIN_VERSION = 0
MAX_VERSION = 9
PARKS = True  # answered when the rest of the group is there (see HandlerSpec)


async def handle(ctx, request: dict) -> dict:
    return await ctx.services.groups.call(ApiKey.JOIN_GROUP, ctx, request)
