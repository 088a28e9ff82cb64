"""Admin requests on a broker that is not the active controller are
forwarded to it (Kafka's brokers forward them too, since KIP-590), so a
client may send CreateTopics and friends to any broker."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from riverlog.broker.handlers import RequestContext


async def forwarded(ctx: RequestContext, request: dict) -> dict | None:
    """None when this broker is the active controller (handle it here);
    else the active controller's answer to the same request."""
    controller = ctx.services.controller
    if controller.is_active():
        return None
    return await controller.forward(ctx.header.api_key, ctx.api_version, request)
