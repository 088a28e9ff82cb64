"""SyncGroup (key 14), from SyncGroupRequest/Response.json, versions 0-5.

v1 throttle time in the response (v2 = v1), v3 group_instance_id, v4
flexible, v5 protocol_type and protocol_name both ways (the coordinator
checks them against the group's). `assignment` is opaque bytes: the leader's
per-member assignment in, the member's own out.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "SyncGroupRequest", ApiKey.SYNC_GROUP, "0-5", "4+",
    f("group_id", "string"),
    f("generation_id", "int32"),
    f("member_id", "string"),
    f("group_instance_id", "string", "3+", nullable="3+", default=None),
    f("protocol_type", "string", "5+", nullable="5+", default=None),
    f("protocol_name", "string", "5+", nullable="5+", default=None),
    array("assignments", "0+",
          f("member_id", "string"),
          f("assignment", "bytes")),
)

RESPONSE = message(
    "SyncGroupResponse", ApiKey.SYNC_GROUP, "0-5", "4+",
    f("throttle_time_ms", "int32", "1+"),
    f("error_code", "int16"),
    f("protocol_type", "string", "5+", nullable="5+", default=None),
    f("protocol_name", "string", "5+", nullable="5+", default=None),
    f("assignment", "bytes"),
)

API = Api(ApiKey.SYNC_GROUP, "SyncGroup", REQUEST, RESPONSE)
