"""FindCoordinator (key 10), from FindCoordinatorRequest/Response.json, versions 0-6.

v1 key_type (0 group, 1 transaction) plus throttle and error message; v2 = v1;
v3 flexible; v4 batches keys (coordinator_keys in, coordinators out; the
single-key fields stop at v3); v5 TRANSACTION_ABORTABLE; v6 share groups.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "FindCoordinatorRequest", ApiKey.FIND_COORDINATOR, "0-6", "3+",
    f("key", "string", "0-3"),
    f("key_type", "int8", "1+", default=0),
    f("coordinator_keys", "[]string", "4+"),
)

RESPONSE = message(
    "FindCoordinatorResponse", ApiKey.FIND_COORDINATOR, "0-6", "3+",
    f("throttle_time_ms", "int32", "1+"),
    f("error_code", "int16", "0-3"),
    f("error_message", "string", "1-3", nullable="1-3"),
    f("node_id", "int32", "0-3"),
    f("host", "string", "0-3"),
    f("port", "int32", "0-3"),
    array("coordinators", "4+",
          f("key", "string", "4+"),
          f("node_id", "int32", "4+"),
          f("host", "string", "4+"),
          f("port", "int32", "4+"),
          f("error_code", "int16", "4+"),
          f("error_message", "string", "4+", nullable="4+")),
)

API = Api(ApiKey.FIND_COORDINATOR, "FindCoordinator", REQUEST, RESPONSE)
