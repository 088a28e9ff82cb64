"""DeleteRecords (key 21), from DeleteRecordsRequest/Response.json, versions 0-2.

v1 = v0 (throttle before response); v2 flexible. offset -1 means the high
watermark.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "DeleteRecordsRequest", ApiKey.DELETE_RECORDS, "0-2", "2+",
    array("topics", "0+",
          f("name", "string"),
          array("partitions", "0+",
                f("partition_index", "int32"),
                f("offset", "int64"))),
    f("timeout_ms", "int32"),
)

RESPONSE = message(
    "DeleteRecordsResponse", ApiKey.DELETE_RECORDS, "0-2", "2+",
    f("throttle_time_ms", "int32"),
    array("topics", "0+",
          f("name", "string"),
          array("partitions", "0+",
                f("partition_index", "int32"),
                f("low_watermark", "int64"),
                f("error_code", "int16"))),
)

API = Api(ApiKey.DELETE_RECORDS, "DeleteRecords", REQUEST, RESPONSE)
