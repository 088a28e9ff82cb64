"""Metadata (0-6): brokers, cluster id, controller, and topics with their partitions.

Answered from the local metadata image. A missing topic is created with the
broker's defaults when ``auto.create.topics.enable`` is on and the request
allows it (always before v4), as Kafka does; here the creation is
synchronous, so the answer already lists the new topic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from riverlog.broker.group.record_codec import OFFSETS_TOPIC
from riverlog.broker.metadata.internal_topics import is_internal
from riverlog.broker.metadata.validation import topic_name_error
from riverlog.client.protocol import ApiKey, ErrorCode

if TYPE_CHECKING:
    from riverlog.broker.handlers import RequestContext

API_KEY = ApiKey.METADATA
MIN_VERSION = 0
MAX_VERSION = 6  # v4 tells kafka-python "0.11+"; v7's leader epochs would need OffsetForLeaderEpoch


async def handle(ctx: RequestContext, request: dict) -> dict:
    metadata, groups, controller = ctx.services.metadata, ctx.services.groups, ctx.services.controller
    version = ctx.api_version
    requested = request["topics"]
    all_topics = requested is None or (version == 0 and not requested)
    names = sorted(metadata.image.topics) if all_topics else [t["name"] for t in requested]
    allow_create = request["allow_auto_topic_creation"] if version >= 4 else True
    errors: dict[str, int] = {}
    if not all_topics and allow_create and ctx.services.config.auto_create_topics_enable:
        missing = [n for n in dict.fromkeys(names) if n not in metadata.image.topics]
        if OFFSETS_TOPIC in missing:  # made as the coordinator makes it (Kafka's AutoTopicCreationManager too)
            missing.remove(OFFSETS_TOPIC)
            if await groups.ensure_topic() is None:
                errors[OFFSETS_TOPIC] = int(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        if missing:
            for result in await controller.create_topics([(n, -1, -1, {}) for n in missing]):
                if result.error_code not in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS):
                    errors[result.name] = int(result.error_code)
    image = metadata.image
    topics = []
    for name in names:
        topic = image.topics.get(name)
        if topic is None:
            bad_name = topic_name_error(name) is not None
            code = errors.get(name, ErrorCode.INVALID_TOPIC_EXCEPTION if bad_name else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            topics.append({"error_code": int(code), "name": name, "partitions": []})
            continue
        partitions = [
            {
                "error_code": 0 if p.leader >= 0 else int(ErrorCode.LEADER_NOT_AVAILABLE),
                "partition_index": p.partition,
                "leader_id": p.leader,
                "leader_epoch": p.leader_epoch,
                "replica_nodes": list(p.replicas),
                "isr_nodes": list(p.isr),
                "offline_replicas": [],
            }
            for p in sorted(topic.partitions.values(), key=lambda p: p.partition)
        ]
        topics.append({"error_code": 0, "name": name, "is_internal": is_internal(name), "partitions": partitions})
    brokers = [
        {"node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack} for b in image.unfenced_brokers()
    ]
    return {
        "throttle_time_ms": 0,
        "brokers": brokers,
        "cluster_id": image.cluster_id,
        "controller_id": controller.controller_id,
        "topics": topics,
    }
