"""AlterConfigs (key 33), from AlterConfigsRequest/Response.json, versions 0-2.

v1 = v0 (throttle before response); v2 flexible. Replaces a resource's whole
config set; see IncrementalAlterConfigs for per-key operations.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "AlterConfigsRequest", ApiKey.ALTER_CONFIGS, "0-2", "2+",
    array("resources", "0+",
          f("resource_type", "int8"),
          f("resource_name", "string"),
          array("configs", "0+",
                f("name", "string"),
                f("value", "string", "0+", nullable="0+"))),
    f("validate_only", "bool"),
)

RESPONSE = message(
    "AlterConfigsResponse", ApiKey.ALTER_CONFIGS, "0-2", "2+",
    f("throttle_time_ms", "int32"),
    array("responses", "0+",
          f("error_code", "int16"),
          f("error_message", "string", "0+", nullable="0+"),
          f("resource_type", "int8"),
          f("resource_name", "string")),
)

API = Api(ApiKey.ALTER_CONFIGS, "AlterConfigs", REQUEST, RESPONSE)
