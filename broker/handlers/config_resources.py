"""What AlterConfigs and IncrementalAlterConfigs share: the walk over the
request's resources, with Kafka's checks that come before any change."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

from riverlog.client.protocol import ErrorCode

TOPIC = 2
BROKER = 4

Error = tuple[int, str | None]


def _refuse_non_topic(resource: dict) -> Error | None:
    if resource["resource_type"] == TOPIC:
        return None
    if resource["resource_type"] == BROKER:
        return int(ErrorCode.INVALID_REQUEST), "Broker configs are read-only in riverlog (set them at start-up)"
    return int(ErrorCode.INVALID_REQUEST), f"Unsupported resource type {resource['resource_type']}"


def duplicate_keys_error(names) -> Error | None:
    if any(n > 1 for n in Counter(names).values()):
        return int(ErrorCode.INVALID_REQUEST), "Error due to duplicate config keys"
    return None


async def alter_each(request: dict, alter: Callable[[str, list[dict]], Awaitable[Error]]) -> dict:
    """The response: each topic resource altered by ``alter(topic, configs)``
    unless it is not a topic or is named twice in the request."""
    resources = request["resources"]
    counts = Counter((r["resource_type"], r["resource_name"]) for r in resources)
    responses = []
    for resource in resources:
        name = resource["resource_name"]
        error = _refuse_non_topic(resource)
        if error is None and counts[(resource["resource_type"], name)] > 1:
            error = int(ErrorCode.INVALID_REQUEST), f"Duplicate resource {name} in the request"
        if error is None:
            error = await alter(name, resource["configs"])
        responses.append(
            {"error_code": error[0], "error_message": error[1], "resource_type": resource["resource_type"],
             "resource_name": name}
        )  # fmt: skip
    return {"throttle_time_ms": 0, "responses": responses}
