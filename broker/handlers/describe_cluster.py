"""DescribeCluster (0-2): the unfenced brokers, the cluster id and the controller.

v2 (KIP-1073) lists fenced brokers too when asked (include_fenced_brokers),
each with is_fenced: how ``riverlog cluster describe`` shows a dead broker.

Flexible from v0 (the codec handles it). v1's endpoint_type asks for brokers
(1) or controllers (2); a broker answers only the first, as Kafka's brokers
do (MISMATCHED_ENDPOINT_TYPE otherwise). v1 is served because kafka-python's
admin client reads endpoint_type from every response. Authorized operations
are not computed: Kafka's "not provided" sentinel is answered either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from riverlog.client.protocol import ApiKey, ErrorCode

if TYPE_CHECKING:
    from riverlog.broker.handlers import RequestContext

API_KEY = ApiKey.DESCRIBE_CLUSTER
MIN_VERSION = 0
MAX_VERSION = 2

_NOT_PROVIDED = -(2**31)  # Integer.MIN_VALUE: authorized operations not computed
_BROKERS = 1


async def handle(ctx: RequestContext, request: dict) -> dict:
    image = ctx.services.metadata.image
    if request["endpoint_type"] != _BROKERS:
        return {
            "error_code": int(ErrorCode.MISMATCHED_ENDPOINT_TYPE),
            "error_message": "this broker describes brokers only",
            "endpoint_type": request["endpoint_type"],
            "cluster_id": image.cluster_id,
            "brokers": [],
        }
    with_fenced = ctx.api_version >= 2 and request["include_fenced_brokers"]
    listed = [b for _, b in sorted(image.brokers.items())] if with_fenced else image.unfenced_brokers()
    brokers = [
        {"broker_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack, "is_fenced": b.fenced}
        for b in listed
    ]
    return {
        "throttle_time_ms": 0,
        "error_code": 0,
        "error_message": None,
        "endpoint_type": _BROKERS,
        "cluster_id": image.cluster_id,
        "controller_id": ctx.services.controller.controller_id,
        "brokers": brokers,
        "cluster_authorized_operations": _NOT_PROVIDED,
    }
