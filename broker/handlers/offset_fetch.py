"""OffsetFetch (0-8): answered by the group coordinator (broker/group).

v9's member epochs belong to the new consumer protocol (KIP-848), not served.
"""

from __future__ import annotations

from riverlog.client.protocol import ApiKey

API_KEY = ApiKey.OFFSET_FETCH
MIN_VERSION = 0
MAX_VERSION = 8


async def handle(ctx, request: dict) -> dict:
    return await ctx.services.groups.call(ApiKey.OFFSET_FETCH, ctx, request)
