"""ListGroups (0-4): answered by the group coordinator (broker/group).

v5's group-type filter belongs to KIP-848 groups, not served.
"""

from __future__ import annotations

from riverlog.client.protocol import ApiKey

API_KEY = ApiKey.LIST_GROUPS
MIN_VERSION = 0
MAX_VERSION = 4


async def handle(ctx, request: dict) -> dict:
    return await ctx.services.groups.call(ApiKey.LIST_GROUPS, ctx, request)
