"""DescribeGroups (0-5): answered by the group coordinator (broker/group)."""

from __future__ import annotations

from riverlog.client.protocol import ApiKey

API_KEY = ApiKey.DESCRIBE_GROUPS
MIN_VERSION = 0
MAX_VERSION = 5


async def handle(ctx, request: dict) -> dict:
    return await ctx.services.groups.call(ApiKey.DESCRIBE_GROUPS, ctx, request)
