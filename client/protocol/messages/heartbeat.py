"""Heartbeat (key 12), from HeartbeatRequest/Response.json, versions 0-4.

v1 throttle time in the response (v2 = v1), v3 group_instance_id, v4
flexible. The answer is only an error code: REBALANCE_IN_PROGRESS tells the
member to rejoin.
"""

from ..api_keys import ApiKey
from ..schema import Api, f, message

REQUEST = message(
    "HeartbeatRequest", ApiKey.HEARTBEAT, "0-4", "4+",
    f("group_id", "string"),
    f("generation_id", "int32"),
    f("member_id", "string"),
    f("group_instance_id", "string", "3+", nullable="3+", default=None),
)

RESPONSE = message(
    "HeartbeatResponse", ApiKey.HEARTBEAT, "0-4", "4+",
    f("throttle_time_ms", "int32", "1+"),
    f("error_code", "int16"),
)

API = Api(ApiKey.HEARTBEAT, "Heartbeat", REQUEST, RESPONSE)
