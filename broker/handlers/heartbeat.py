"""Heartbeat (0-4): answered by the group coordinator (broker/group)."""

from __future__ import annotations

from riverlog.client.protocol import ApiKey

API_KEY = ApiKey.HEARTBEAT
MIN_VERSION = 0
MAX_VERSION = 4


async def handle(ctx, request: dict) -> dict:
    return await ctx.services.groups.call(ApiKey.HEARTBEAT, ctx, request)
