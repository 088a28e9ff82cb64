"""LeaveGroup (key 13), from LeaveGroupRequest/Response.json, versions 0-5.

v0-2 one member_id (v1 adds throttle time to the response; v2 = v1); v3
batches: a members list of (member_id, group_instance_id) replaces member_id,
and the response answers per member; v4 flexible; v5 a reason per member.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "LeaveGroupRequest", ApiKey.LEAVE_GROUP, "0-5", "4+",
    f("group_id", "string"),
    f("member_id", "string", "0-2"),
    array("members", "3+",
          f("member_id", "string", "3+"),
          f("group_instance_id", "string", "3+", nullable="3+", default=None),
          f("reason", "string", "5+", nullable="5+", default=None)),
)

RESPONSE = message(
    "LeaveGroupResponse", ApiKey.LEAVE_GROUP, "0-5", "4+",
    f("throttle_time_ms", "int32", "1+"),
    f("error_code", "int16"),
    array("members", "3+",
          f("member_id", "string", "3+"),
          f("group_instance_id", "string", "3+", nullable="3+"),
          f("error_code", "int16", "3+")),
)

API = Api(ApiKey.LEAVE_GROUP, "LeaveGroup", REQUEST, RESPONSE)
