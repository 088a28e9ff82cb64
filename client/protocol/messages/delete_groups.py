"""DeleteGroups (key 42), from DeleteGroupsRequest/Response.json, versions 0-2.

v1 = v0 (responses sent before throttling); v2 flexible. The field is
`groups_names`, as Kafka spells it; each result carries its own error code
(NON_EMPTY_GROUP for a group with members).
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "DeleteGroupsRequest", ApiKey.DELETE_GROUPS, "0-2", "2+",
    f("groups_names", "[]string"),
)

RESPONSE = message(
    "DeleteGroupsResponse", ApiKey.DELETE_GROUPS, "0-2", "2+",
    f("throttle_time_ms", "int32"),
    array("results", "0+",
          f("group_id", "string"),
          f("error_code", "int16")),
)

API = Api(ApiKey.DELETE_GROUPS, "DeleteGroups", REQUEST, RESPONSE)
