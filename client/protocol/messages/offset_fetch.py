"""OffsetFetch (key 9), from OffsetFetchRequest/Response.json, versions 0-9.

v1 reads offsets from __consumer_offsets (no wire change); v2 null topics =
every committed topic, and a top-level error_code; v3 throttle time (v4 =
v3); v5 committed_leader_epoch; v6 flexible; v7 require_stable; v8 batches
groups: `groups` (each with its own topics) replaces group_id/topics in the
request, and the response answers per group with a per-group error_code;
v9 member_id and member_epoch per group (KIP-848).
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "OffsetFetchRequest", ApiKey.OFFSET_FETCH, "0-9", "6+",
    f("group_id", "string", "0-7"),
    array("topics", "0-7",
          f("name", "string", "0-7"),
          f("partition_indexes", "[]int32", "0-7"),
          nullable="2-7"),
    array("groups", "8+",
          f("group_id", "string", "8+"),
          f("member_id", "string", "9+", nullable="9+", default=None),
          f("member_epoch", "int32", "9+", default=-1),
          array("topics", "8+",
                f("name", "string", "8+"),
                f("partition_indexes", "[]int32", "8+"),
                nullable="8+")),
    f("require_stable", "bool", "7+", default=False),
)

RESPONSE = message(
    "OffsetFetchResponse", ApiKey.OFFSET_FETCH, "0-9", "6+",
    f("throttle_time_ms", "int32", "3+"),
    array("topics", "0-7",
          f("name", "string", "0-7"),
          array("partitions", "0-7",
                f("partition_index", "int32", "0-7"),
                f("committed_offset", "int64", "0-7"),
                f("committed_leader_epoch", "int32", "5-7", default=-1),
                f("metadata", "string", "0-7", nullable="0-7"),
                f("error_code", "int16", "0-7"))),
    f("error_code", "int16", "2-7", default=0),
    array("groups", "8+",
          f("group_id", "string", "8+"),
          array("topics", "8+",
                f("name", "string", "8+"),
                array("partitions", "8+",
                      f("partition_index", "int32", "8+"),
                      f("committed_offset", "int64", "8+"),
                      f("committed_leader_epoch", "int32", "8+", default=-1),
                      f("metadata", "string", "8+", nullable="8+"),
                      f("error_code", "int16", "8+"))),
          f("error_code", "int16", "8+", default=0)),
)

API = Api(ApiKey.OFFSET_FETCH, "OffsetFetch", REQUEST, RESPONSE)
