"""ListGroups (key 16), from ListGroupsRequest/Response.json, versions 0-5.

v1 throttle time (v2 = v1); v3 flexible; v4 states_filter in and each
group's group_state out (KIP-518); v5 types_filter in and group_type out
(KIP-848). An empty filter matches every group.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "ListGroupsRequest", ApiKey.LIST_GROUPS, "0-5", "3+",
    f("states_filter", "[]string", "4+"),
    f("types_filter", "[]string", "5+"),
)

RESPONSE = message(
    "ListGroupsResponse", ApiKey.LIST_GROUPS, "0-5", "3+",
    f("throttle_time_ms", "int32", "1+"),
    f("error_code", "int16"),
    array("groups", "0+",
          f("group_id", "string"),
          f("protocol_type", "string"),
          f("group_state", "string", "4+"),
          f("group_type", "string", "5+")),
)

API = Api(ApiKey.LIST_GROUPS, "ListGroups", REQUEST, RESPONSE)
