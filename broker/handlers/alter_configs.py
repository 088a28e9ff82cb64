"""AlterConfigs (0-1): replace a topic's whole set of config overrides.

Keys not in the request lose their override (back to the broker default),
as Kafka's legacy AlterConfigs does. v0 = v1; v2 is flexible. Broker
configs are read-only here (INVALID_REQUEST); other resource types, and a
resource named twice in one request, are INVALID_REQUEST too.
"""

from __future__ import annotations

from riverlog.broker.handlers.config_resources import alter_each, duplicate_keys_error

from riverlog.broker.handlers.forward import forwarded
from riverlog.client.protocol import ApiKey

API_KEY = ApiKey.ALTER_CONFIGS
MIN_VERSION = 0
MAX_VERSION = 1  # 2 is the first flexible version


async def handle(ctx, request: dict) -> dict:
    if (answer := await forwarded(ctx, request)) is not None:
        return answer
    controller = ctx.services.controller.local  # the active controller: forwarded() said so

    async def replace(topic: str, configs: list[dict]):
        error = duplicate_keys_error(c["name"] for c in configs)
        if error is not None:
            return error
        values = {c["name"]: c["value"] for c in configs}
        result = await controller.replace_configs(topic, values, validate_only=request["validate_only"])
        return int(result.error_code), result.error_message

    return await alter_each(request, replace)
