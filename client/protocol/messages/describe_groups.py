"""DescribeGroups (key 15), from DescribeGroupsRequest/Response.json, versions 0-5.

v1 throttle time (v2 = v1); v3 include_authorized_operations in, a group's
authorized_operations out; v4 each member's group_instance_id; v5 flexible.
An unknown group comes back in state "Dead" with no members and error 0.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "DescribeGroupsRequest", ApiKey.DESCRIBE_GROUPS, "0-5", "5+",
    f("groups", "[]string"),
    f("include_authorized_operations", "bool", "3+"),
)

RESPONSE = message(
    "DescribeGroupsResponse", ApiKey.DESCRIBE_GROUPS, "0-5", "5+",
    f("throttle_time_ms", "int32", "1+"),
    array("groups", "0+",
          f("error_code", "int16"),
          f("group_id", "string"),
          f("group_state", "string"),
          f("protocol_type", "string"),
          f("protocol_data", "string"),
          array("members", "0+",
                f("member_id", "string"),
                f("group_instance_id", "string", "4+", nullable="4+", default=None),
                f("client_id", "string"),
                f("client_host", "string"),
                f("member_metadata", "bytes"),
                f("member_assignment", "bytes")),
          f("authorized_operations", "int32", "3+", default=-2147483648)),
)

API = Api(ApiKey.DESCRIBE_GROUPS, "DescribeGroups", REQUEST, RESPONSE)
