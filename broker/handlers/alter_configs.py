"""AlterConfigs (0-1): replace a topic's whole set of config overrides.

Keys not in the request lose their override (back to the broker default),
as Kafka's legacy AlterConfigs does. v0 = v1; v2 is flexible. Broker
configs are read-only here (INVALID_REQUEST); other resource types, and a
resource named twice in one request, are INVALID_REQUEST too.
"""

from __future__ import annotations

from collections import Counter

from client.protocol import ErrorCode

API_KEY = 33
MIN_VERSION = 0
MAX_VERSION = 1  # 2 is the first flexible version

TOPIC = 2
BROKER = 4


def duplicate_resources(resources: list[dict]) -> set[tuple[int, str]]:
    counts = Counter((r["resource_type"], r["resource_name"]) for r in resources)
    return {k for k, n in counts.items() if n > 1}


def refuse_non_topic(resource: dict) -> tuple[int, str] | None:
    """The error for a resource that is not a topic, else None."""
    if resource["resource_type"] == TOPIC:
        return None
    if resource["resource_type"] == BROKER:
        return int(ErrorCode.INVALID_REQUEST), "Broker configs are read-only in riverlog (set them at start-up)"
    return int(ErrorCode.INVALID_REQUEST), f"Unsupported resource type {resource['resource_type']}"


async def handle(ctx, request: dict) -> dict:
    controller = ctx.broker.controller
    dups = duplicate_resources(request["resources"])
    responses = []
    for resource in request["resources"]:
        name = resource["resource_name"]
        error = refuse_non_topic(resource)
        if error is None and (resource["resource_type"], name) in dups:
            error = int(ErrorCode.INVALID_REQUEST), f"Duplicate resource {name} in the request"
        if error is None:
            keys = Counter(c["name"] for c in resource["configs"])
            if any(n > 1 for n in keys.values()):
                error = int(ErrorCode.INVALID_REQUEST), "Error due to duplicate config keys"
        if error is None:
            configs = {c["name"]: c["value"] for c in resource["configs"]}
            result = controller.replace_configs(name, configs, validate_only=request["validate_only"])
            error = int(result.error_code), result.error_message
        responses.append(
            {"error_code": error[0], "error_message": error[1], "resource_type": resource["resource_type"],
             "resource_name": name}
        )  # fmt: skip
    return {"throttle_time_ms": 0, "responses": responses}
