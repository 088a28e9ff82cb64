"""OffsetDelete (0-0): answered by the group coordinator (broker/group)."""

from __future__ import annotations

from riverlog.client.protocol import ApiKey

API_KEY = ApiKey.OFFSET_DELETE
MIN_VERSION = 0
MAX_VERSION = 0


async def handle(ctx, request: dict) -> dict:
    return await ctx.services.groups.call(ApiKey.OFFSET_DELETE, ctx, request)
