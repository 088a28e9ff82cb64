"""IncrementalAlterConfigs (key 44), from IncrementalAlterConfigsRequest/Response.json, versions 0-1.

v1 flexible. config_operation: 0 set, 1 delete, 2 append, 3 subtract.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "IncrementalAlterConfigsRequest", ApiKey.INCREMENTAL_ALTER_CONFIGS, "0-1", "1+",
    array("resources", "0+",
          f("resource_type", "int8"),
          f("resource_name", "string"),
          array("configs", "0+",
                f("name", "string"),
                f("config_operation", "int8"),
                f("value", "string", "0+", nullable="0+"))),
    f("validate_only", "bool"),
)

RESPONSE = message(
    "IncrementalAlterConfigsResponse", ApiKey.INCREMENTAL_ALTER_CONFIGS, "0-1", "1+",
    f("throttle_time_ms", "int32"),
    array("responses", "0+",
          f("error_code", "int16"),
          f("error_message", "string", "0+", nullable="0+"),
          f("resource_type", "int8"),
          f("resource_name", "string")),
)

API = Api(ApiKey.INCREMENTAL_ALTER_CONFIGS, "IncrementalAlterConfigs", REQUEST, RESPONSE)
