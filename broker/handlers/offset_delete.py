"""OffsetDelete (0-0): answered by the group coordinator (broker/group)."""

from __future__ import annotations

API_KEY = 47
MIN_VERSION = 0
MAX_VERSION = 0


async def handle(ctx, request: dict) -> dict:
    return await ctx.services.groups.call("offset_delete", ctx, request)
