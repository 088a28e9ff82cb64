"""CreatePartitions (0-1): raise a topic's partition count through the controller.

v0 = v1 (v1 only moves throttling before the response); v2 is flexible. A
manual ``assignments`` list is checked as Kafka checks it
(INVALID_REPLICA_ASSIGNMENT) and then accepted only when it is the placement
the controller would choose anyway (always so on a single broker); any other
manual placement is refused with INVALID_REQUEST, as CreateTopics does.
"""

from __future__ import annotations

from riverlog.broker.metadata.decisions import decide_create_partitions
from riverlog.client.protocol import ApiKey, ErrorCode

from riverlog.broker.handlers.forward import forwarded

API_KEY = ApiKey.CREATE_PARTITIONS
MIN_VERSION = 0
MAX_VERSION = 1  # 2 is the first flexible version


async def handle(ctx, request: dict) -> dict:
    if (answer := await forwarded(ctx, request)) is not None:
        return answer
    controller = ctx.services.controller.local  # the active controller: forwarded() said so
    topics = request["topics"]
    validate_only = request["validate_only"]
    # The controller's own checks first (duplicates, unknown topic, count not larger).
    limit = controller.defaults.max_partitions
    checked = decide_create_partitions(controller.image, [(t["name"], t["count"]) for t in topics], limit)[0]
    results: list[tuple[int, str | None] | None] = []
    wanted = []
    for t, result in zip(topics, checked):
        if result.error_code:
            results.append((int(result.error_code), result.error_message))
            continue
        if t["assignments"] is not None:
            error = _assignment_error(controller.image, t, limit)
            if error is not None:
                results.append(error)
                continue
        results.append(None)
        wanted.append((t["name"], t["count"]))
    done = iter(await controller.create_partitions(wanted, validate_only=validate_only)) if wanted else iter(())
    out = []
    for t, result in zip(topics, results):
        if result is None:
            r = next(done)
            result = (int(r.error_code), r.error_message)
        out.append({"name": t["name"], "error_code": result[0], "error_message": result[1]})
    return {"throttle_time_ms": 0, "results": out}


def _assignment_error(image, t: dict, limit: int) -> tuple[int, str] | None:
    topic = image.topics[t["name"]]
    current = len(topic.partitions)
    assignments = [list(a["broker_ids"]) for a in t["assignments"]]
    bad = int(ErrorCode.INVALID_REPLICA_ASSIGNMENT)
    if len(assignments) != t["count"] - current:
        return bad, (
            f"Increasing the number of partitions by {t['count'] - current} but {len(assignments)} "
            "assignments provided."
        )
    rf = len(topic.partitions[0].replicas) if topic.partitions else 1
    registered = {b.node_id for b in image.unfenced_brokers()}
    for replicas in assignments:
        if not replicas:
            return bad, "The manual partition assignment includes an empty replica list."
        for broker_id in replicas:
            if broker_id not in registered:
                return bad, (
                    f"The manual partition assignment includes broker {broker_id}, but no such broker is registered."
                )
        if len(set(replicas)) != len(replicas):
            dup = next(b for b in replicas if replicas.count(b) > 1)
            return bad, f"The manual partition assignment includes the broker {dup} more than once."
        if len(replicas) != rf:
            return bad, (
                f"The manual partition assignment includes a partition with {len(replicas)} replica(s), but this "
                f"is not consistent with previous partitions, which have {rf} replica(s)."
            )
    placed = [list(r.replicas) for r in decide_create_partitions(image, [(t["name"], t["count"])], limit)[1]]
    if placed != assignments:
        return int(ErrorCode.INVALID_REQUEST), "manual replica assignment is not supported"
    return None
