"""OffsetCommit (key 8), from OffsetCommitRequest/Response.json, versions 0-9.

v1 generation and member id plus a per-partition commit_timestamp (v1
only); v2 retention_time_ms instead (-1 = broker default; v3 = v4 = v2, v3
adds throttle time to the response); v5 drops retention; v6
committed_leader_epoch; v7 group_instance_id; v8 flexible; v9 = v8 (usable
by KIP-848 groups: the generation field carries the member epoch).
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "OffsetCommitRequest", ApiKey.OFFSET_COMMIT, "0-9", "8+",
    f("group_id", "string"),
    f("generation_id_or_member_epoch", "int32", "1+", default=-1),
    f("member_id", "string", "1+"),
    f("group_instance_id", "string", "7+", nullable="7+", default=None),
    f("retention_time_ms", "int64", "2-4", default=-1),
    array("topics", "0+",
          f("name", "string"),
          array("partitions", "0+",
                f("partition_index", "int32"),
                f("committed_offset", "int64"),
                f("committed_leader_epoch", "int32", "6+", default=-1),
                f("commit_timestamp", "int64", "1", default=-1),
                f("committed_metadata", "string", "0+", nullable="0+"))),
)

RESPONSE = message(
    "OffsetCommitResponse", ApiKey.OFFSET_COMMIT, "0-9", "8+",
    f("throttle_time_ms", "int32", "3+"),
    array("topics", "0+",
          f("name", "string"),
          array("partitions", "0+",
                f("partition_index", "int32"),
                f("error_code", "int16"))),
)

API = Api(ApiKey.OFFSET_COMMIT, "OffsetCommit", REQUEST, RESPONSE)
