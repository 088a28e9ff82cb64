"""EndQuorumEpoch (key 54), from EndQuorumEpochRequest/Response.json, versions 0-1.

A KRaft leader resigning gracefully names its preferred successors, best
placed first, so that one campaigns first (KIP-595). v0 is not flexible and
lists them as bare ids; v1 (KIP-853) is flexible and replaces the list with
``preferred_candidates`` carrying directory ids, and adds the leader's
endpoints and node endpoints in the response.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "EndQuorumEpochRequest", ApiKey.END_QUORUM_EPOCH, "0-1", "1+",
    f("cluster_id", "string", "0+", nullable="0+", default=None),
    array("topics", "0+",
          f("topic_name", "string"),
          array("partitions", "0+",
                f("partition_index", "int32"),
                f("leader_id", "int32"),
                f("leader_epoch", "int32"),
                f("preferred_successors", "[]int32", "0"),
                array("preferred_candidates", "1+",
                      f("candidate_id", "int32", "1+"),
                      f("candidate_directory_id", "uuid", "1+")))),
    array("leader_endpoints", "1+",
          f("name", "string", "1+"),
          f("host", "string", "1+"),
          f("port", "uint16", "1+")),
)

RESPONSE = message(
    "EndQuorumEpochResponse", ApiKey.END_QUORUM_EPOCH, "0-1", "1+",
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

API = Api(ApiKey.END_QUORUM_EPOCH, "EndQuorumEpoch", REQUEST, RESPONSE)
