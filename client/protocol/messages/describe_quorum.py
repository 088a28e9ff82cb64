"""DescribeQuorum (key 55), from DescribeQuorumRequest/Response.json, versions 0-2.

An operator's view of a KRaft quorum: leader, epoch, high watermark and
each voter's and observer's log end offset (KIP-595). Flexible from v0. The
request never changes; v1 (KIP-836) adds fetch and caught-up timestamps per
replica, v2 (KIP-853) error messages, replica directory ids and the
controllers' listeners.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

# One replica's progress as the leader sees it; voters and observers share it.
_REPLICA_STATE = (
    f("replica_id", "int32"),
    f("replica_directory_id", "uuid", "2+"),
    f("log_end_offset", "int64"),
    f("last_fetch_timestamp", "int64", "1+", default=-1),
    f("last_caught_up_timestamp", "int64", "1+", default=-1),
)

REQUEST = message(
    "DescribeQuorumRequest", ApiKey.DESCRIBE_QUORUM, "0-2", "0+",
    array("topics", "0+",
          f("topic_name", "string"),
          array("partitions", "0+",
                f("partition_index", "int32"))),
)

RESPONSE = message(
    "DescribeQuorumResponse", ApiKey.DESCRIBE_QUORUM, "0-2", "0+",
    f("error_code", "int16"),
    f("error_message", "string", "2+", nullable="2+", default=None),
    array("topics", "0+",
          f("topic_name", "string"),
          array("partitions", "0+",
                f("partition_index", "int32"),
                f("error_code", "int16"),
                f("error_message", "string", "2+", nullable="2+", default=None),
                f("leader_id", "int32"),
                f("leader_epoch", "int32"),
                f("high_watermark", "int64"),
                array("current_voters", "0+", *_REPLICA_STATE),
                array("observers", "0+", *_REPLICA_STATE))),
    array("nodes", "2+",
          f("node_id", "int32", "2+"),
          array("listeners", "2+",
                f("name", "string", "2+"),
                f("host", "string", "2+"),
                f("port", "uint16", "2+"))),
)

API = Api(ApiKey.DESCRIBE_QUORUM, "DescribeQuorum", REQUEST, RESPONSE)
