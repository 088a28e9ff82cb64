"""Admin requests on a broker that is not the active controller are
forwarded to it (Kafka's brokers forward them too, since KIP-590), so a
client may send CreateTopics and friends to any broker."""

from __future__ import annotations


async def forwarded(ctx, request: dict) -> dict | None:
    """None when this broker is the active controller (handle it here);
    else the active controller's answer to the same request."""
    broker = ctx.broker
    if broker.is_active_controller():
        return None
    return await broker.forward_to_controller(ctx.header.api_key, ctx.api_version, request)
