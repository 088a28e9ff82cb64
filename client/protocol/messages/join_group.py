"""JoinGroup (key 11), from JoinGroupRequest/Response.json, versions 0-9.

v1 rebalance_timeout_ms (v0: the session timeout serves for both), v2
throttle time, v4 the MEMBER_ID_REQUIRED round trip (no wire change), v5
group_instance_id for static members, v6 flexible, v7 protocol_type in the
response and a nullable protocol_name, v8 reason, v9 skip_assignment.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "JoinGroupRequest", ApiKey.JOIN_GROUP, "0-9", "6+",
    f("group_id", "string"),
    f("session_timeout_ms", "int32"),
    f("rebalance_timeout_ms", "int32", "1+", default=-1),
    f("member_id", "string"),
    f("group_instance_id", "string", "5+", nullable="5+", default=None),
    f("protocol_type", "string"),
    array("protocols", "0+",
          f("name", "string"),
          f("metadata", "bytes")),
    f("reason", "string", "8+", nullable="8+", default=None),
)

RESPONSE = message(
    "JoinGroupResponse", ApiKey.JOIN_GROUP, "0-9", "6+",
    f("throttle_time_ms", "int32", "2+"),
    f("error_code", "int16"),
    f("generation_id", "int32", default=-1),
    f("protocol_type", "string", "7+", nullable="7+", default=None),
    f("protocol_name", "string", "0+", nullable="7+"),
    f("leader", "string"),
    f("skip_assignment", "bool", "9+", default=False),
    f("member_id", "string"),
    array("members", "0+",
          f("member_id", "string"),
          f("group_instance_id", "string", "5+", nullable="5+", default=None),
          f("metadata", "bytes")),
)

API = Api(ApiKey.JOIN_GROUP, "JoinGroup", REQUEST, RESPONSE)
