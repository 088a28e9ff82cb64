"""OffsetDelete (key 47), from OffsetDeleteRequest/Response.json, version 0 only.

Never flexible. Deletes a group's committed offsets for partitions no member
is subscribed to; errors are per group (top level) and per partition
(GROUP_SUBSCRIBED_TO_TOPIC). Note the response puts error_code before
throttle_time_ms.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "OffsetDeleteRequest", ApiKey.OFFSET_DELETE, "0", "none",
    f("group_id", "string"),
    array("topics", "0+",
          f("name", "string"),
          array("partitions", "0+",
                f("partition_index", "int32"))),
)

RESPONSE = message(
    "OffsetDeleteResponse", ApiKey.OFFSET_DELETE, "0", "none",
    f("error_code", "int16"),
    f("throttle_time_ms", "int32"),
    array("topics", "0+",
          f("name", "string"),
          array("partitions", "0+",
                f("partition_index", "int32"),
                f("error_code", "int16"))),
)

API = Api(ApiKey.OFFSET_DELETE, "OffsetDelete", REQUEST, RESPONSE)
