"""BeginQuorumEpoch (key 53), from BeginQuorumEpochRequest/Response.json, versions 0-1.

A newly elected KRaft leader tells the voters, so they need not wait for
their next Fetch to learn it (KIP-595). Unlike Vote, v0 is not flexible;
v1 (KIP-853) is, and adds the receiving voter's id and directory id, the
leader's endpoints, and node endpoints in the response.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "BeginQuorumEpochRequest", ApiKey.BEGIN_QUORUM_EPOCH, "0-1", "1+",
    f("cluster_id", "string", "0+", nullable="0+", default=None),
    f("voter_id", "int32", "1+", default=-1),
    array("topics", "0+",
          f("topic_name", "string"),
          array("partitions", "0+",
                f("partition_index", "int32"),
                f("voter_directory_id", "uuid", "1+"),
                f("leader_id", "int32"),
                f("leader_epoch", "int32"))),
    array("leader_endpoints", "1+",
          f("name", "string", "1+"),
          f("host", "string", "1+"),
          f("port", "uint16", "1+")),
)

RESPONSE = message(
    "BeginQuorumEpochResponse", ApiKey.BEGIN_QUORUM_EPOCH, "0-1", "1+",
    f("error_code", "int16"),
    array("topics", "0+",
          f("topic_name", "string"),
          array("partitions", "0+",
                f("partition_index", "int32"),
                f("error_code", "int16"),
                f("leader_id", "int32"),
                f("leader_epoch", "int32"))),
    array("node_endpoints", "1+",
          f("node_id", "int32", "1+"),
          f("host", "string", "1+"),
          f("port", "uint16", "1+"),
          tag=0, tagged="1+"),
)

API = Api(ApiKey.BEGIN_QUORUM_EPOCH, "BeginQuorumEpoch", REQUEST, RESPONSE)
