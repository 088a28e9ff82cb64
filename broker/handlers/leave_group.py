"""LeaveGroup (0-5): answered by the group coordinator (broker/group)."""

from __future__ import annotations

API_KEY = 13
MIN_VERSION = 0
MAX_VERSION = 5


async def handle(ctx, request: dict) -> dict:
    return await ctx.services.groups.call("leave_group", ctx, request)
