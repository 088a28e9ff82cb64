"""DeleteGroups (0-2): answered by the group coordinator (broker/group)."""

from __future__ import annotations

from riverlog.client.protocol import ApiKey

API_KEY = ApiKey.DELETE_GROUPS
MIN_VERSION = 0
MAX_VERSION = 2


async def handle(ctx, request: dict) -> dict:
    return await ctx.services.groups.call(ApiKey.DELETE_GROUPS, ctx, request)
