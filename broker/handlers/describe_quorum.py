"""DescribeQuorum (55, v0-2): the metadata quorum for operators (KIP-595).

Kafka serves it on both listeners; here, on the client listener, it is what
``riverlog cluster describe`` and Kafka's kafka-metadata-quorum.sh read. The
answer comes from ``ControllerLink.quorum_description()``: leader, epoch, high
watermark and each voter's and observer's log end offset as the leader last
saw it. The request must name exactly ``__cluster_metadata`` partition 0, as
Kafka checks (UNKNOWN_TOPIC_OR_PARTITION at the top level otherwise). v1's
timestamps are absolute wall-clock ms, derived from how long ago each
replica last fetched; the caught-up time is not tracked (-1, "unknown").
v2 adds the voters' controller listeners, from controller.quorum.voters.
A broker that is not the active controller forwards the request to it, as
only the leader knows how far each replica has fetched.
"""

from __future__ import annotations

import uuid

from riverlog.broker.clock import wall_ms
from riverlog.broker.handlers.forward import forwarded
from riverlog.client.protocol import ApiKey, ErrorCode

API_KEY = ApiKey.DESCRIBE_QUORUM
MIN_VERSION = 0
MAX_VERSION = 2

METADATA_TOPIC = "__cluster_metadata"
_NO_DIRECTORY = uuid.UUID(int=0)


def _asks_for_metadata_partition(request: dict) -> bool:
    topics = request["topics"]
    return (len(topics) == 1 and topics[0]["topic_name"] == METADATA_TOPIC
            and [p["partition_index"] for p in topics[0]["partitions"]] == [0])  # fmt: skip


def _replica(state: dict, now_ms: int) -> dict:
    ago = state.get("last_fetch_ms_ago", -1)
    return {
        "replica_id": state["replica_id"],
        "replica_directory_id": _NO_DIRECTORY,
        "log_end_offset": state["log_end_offset"],
        "last_fetch_timestamp": -1 if ago is None or ago < 0 else now_ms - ago,
        "last_caught_up_timestamp": -1,
    }


async def handle(ctx, request: dict) -> dict:
    if (answer := await forwarded(ctx, request)) is not None:
        return answer  # only the leader knows each replica's progress
    if not _asks_for_metadata_partition(request):
        return {
            "error_code": int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
            "error_message": f"DescribeQuorum answers for {METADATA_TOPIC}-0 only",
            "topics": [],
            "nodes": [],
        }
    quorum = ctx.services.controller.quorum_description()
    now_ms = wall_ms()
    partition = {
        "partition_index": 0,
        "error_code": 0,
        "error_message": None,
        "leader_id": quorum["leader_id"],
        "leader_epoch": quorum["leader_epoch"],
        "high_watermark": quorum["high_watermark"],
        "current_voters": [_replica(v, now_ms) for v in quorum["voters"]],
        "observers": [_replica(o, now_ms) for o in quorum["observers"]],
    }
    nodes = [
        {"node_id": node, "listeners": [{"name": "CONTROLLER", "host": host, "port": port}]}
        for node, (host, port) in sorted(ctx.services.config.controller_quorum.items())
    ]
    return {
        "error_code": 0,
        "error_message": None,
        "topics": [{"topic_name": METADATA_TOPIC, "partitions": [partition]}],
        "nodes": nodes,
    }
