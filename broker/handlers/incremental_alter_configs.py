"""IncrementalAlterConfigs (0): per-key SET / DELETE / APPEND / SUBTRACT on topic configs.

APPEND and SUBTRACT work on list configs only (cleanup.policy here), else
INVALID_CONFIG, as Kafka. They start from the topic's current value (its
override, else the broker default). A null value for anything but DELETE,
an unknown operation, a key named twice, a resource named twice, a broker
resource (read-only here) or another resource type: INVALID_REQUEST. All
operations on one resource apply together or not at all. v1 is flexible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from riverlog.broker.handlers.config_resources import alter_each, duplicate_keys_error
from riverlog.client.protocol import ApiKey, ErrorCode

from riverlog.broker.handlers.forward import forwarded

if TYPE_CHECKING:
    from riverlog.broker.handlers import RequestContext
    from riverlog.broker.metadata.image import MetadataImage
    from riverlog.broker.storage.log_config import LogConfig

API_KEY = ApiKey.INCREMENTAL_ALTER_CONFIGS
MIN_VERSION = 0
MAX_VERSION = 0  # 1 is the first flexible version

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
LIST_CONFIGS = frozenset({"cleanup.policy"})


async def handle(ctx: RequestContext, request: dict) -> dict:
    if (answer := await forwarded(ctx, request)) is not None:
        return answer
    controller = ctx.services.controller.local  # the active controller: forwarded() said so
    log_defaults = ctx.services.config.log_defaults

    async def apply(topic: str, ops: list[dict]):
        changes, error = _changes(controller.image, log_defaults, topic, ops)
        if error is not None:
            return error
        result = await controller.alter_configs(topic, changes, validate_only=request["validate_only"])
        return int(result.error_code), result.error_message

    return await alter_each(request, apply)


def _changes(image: MetadataImage, log_defaults: LogConfig, topic: str,
             ops: list[dict]) -> tuple[dict[str, str | None], tuple[int, str] | None]:
    error = duplicate_keys_error(op["name"] for op in ops)
    if error is not None:
        return {}, error
    current = image.topics.get(topic)
    changes: dict[str, str | None] = {}
    for op in ops:
        key, kind, value = op["name"], op["config_operation"], op["value"]
        if kind not in (SET, DELETE, APPEND, SUBTRACT):
            return {}, (int(ErrorCode.INVALID_REQUEST), f"Unknown config operation {kind} for {key}")
        if kind == DELETE:
            changes[key] = None
            continue
        if value is None:
            return {}, (int(ErrorCode.INVALID_REQUEST), f"Null value not supported for : {key}")
        if kind == SET:
            changes[key] = value
            continue
        if key not in LIST_CONFIGS:
            verb = "append" if kind == APPEND else "subtract"
            return {}, (int(ErrorCode.INVALID_CONFIG), f"Config value {verb} is not allowed for config key: {key}")
        if current is None:
            return {}, (int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION), f"Topic {topic} does not exist.")
        now = current.configs.get(key, log_defaults.to_properties()[key])
        items = [p.strip() for p in now.split(",") if p.strip()]
        given = [p.strip() for p in value.split(",") if p.strip()]
        if kind == APPEND:
            items += [p for p in given if p not in items]
        else:
            items = [p for p in items if p not in given]
        changes[key] = ",".join(items)
    return changes, None
