"""CreatePartitions (key 37), from CreatePartitionsRequest/Response.json, versions 0-3.

v1 = v0 (throttle before response); v2 flexible; v3 throttling quota error.
A null assignments list lets the controller place the new partitions.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "CreatePartitionsRequest", ApiKey.CREATE_PARTITIONS, "0-3", "2+",
    array("topics", "0+",
          f("name", "string"),
          f("count", "int32"),
          array("assignments", "0+",
                f("broker_ids", "[]int32"),
                nullable="0+")),
    f("timeout_ms", "int32"),
    f("validate_only", "bool"),
)

RESPONSE = message(
    "CreatePartitionsResponse", ApiKey.CREATE_PARTITIONS, "0-3", "2+",
    f("throttle_time_ms", "int32"),
    array("results", "0+",
          f("name", "string"),
          f("error_code", "int16"),
          f("error_message", "string", "0+", nullable="0+", default=None)),
)

API = Api(ApiKey.CREATE_PARTITIONS, "CreatePartitions", REQUEST, RESPONSE)
