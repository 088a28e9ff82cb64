"""ListOffsets (key 2), from ListOffsetsRequest/Response.json, versions 0-10.

v0 answers a list of offsets (max_num_offsets); v1+ one offset and its
timestamp; v2 isolation level; v4 leader epochs; v6 flexible; v10 timeout.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "ListOffsetsRequest", ApiKey.LIST_OFFSETS, "0-10", "6+",
    f("replica_id", "int32"),
    f("isolation_level", "int8", "2+"),
    array("topics", "0+",
          f("name", "string"),
          array("partitions", "0+",
                f("partition_index", "int32"),
                f("current_leader_epoch", "int32", "4+", default=-1),
                f("timestamp", "int64"),
                f("max_num_offsets", "int32", "0", default=1))),
    f("timeout_ms", "int32", "10+"),
)

RESPONSE = message(
    "ListOffsetsResponse", ApiKey.LIST_OFFSETS, "0-10", "6+",
    f("throttle_time_ms", "int32", "2+"),
    array("topics", "0+",
          f("name", "string"),
          array("partitions", "0+",
                f("partition_index", "int32"),
                f("error_code", "int16"),
                f("old_style_offsets", "[]int64", "0"),
                f("timestamp", "int64", "1+", default=-1),
                f("offset", "int64", "1+", default=-1),
                f("leader_epoch", "int32", "4+", default=-1))),
)

API = Api(ApiKey.LIST_OFFSETS, "ListOffsets", REQUEST, RESPONSE)
