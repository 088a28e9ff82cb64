"""Vote (key 52), from VoteRequest/Response.json, versions 0-2.

A KRaft candidate asks each voter for its vote (KIP-595). Flexible from v0.
v1 (KIP-853) adds the voter's id and the directory ids of both ends, and
node endpoints in the response. v2 is KIP-996's: ``pre_vote`` asks whether
the voter *would* grant without anyone changing state. The JSON spec these
tables were first written from stopped at v1, so v2 is declared here from
the KIP: it appends ``pre_vote`` to the partition data and changes
nothing else (Kafka also renamed candidate_* to replica_* in v2, which does
not change the wire; we keep the v0-1 names). The response is unchanged.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "VoteRequest", ApiKey.VOTE, "0-2", "0+",
    f("cluster_id", "string", "0+", nullable="0+", default=None),
    f("voter_id", "int32", "1+", default=-1),
    array("topics", "0+",
          f("topic_name", "string"),
          array("partitions", "0+",
                f("partition_index", "int32"),
                f("candidate_epoch", "int32"),
                f("candidate_id", "int32"),
                f("candidate_directory_id", "uuid", "1+"),
                f("voter_directory_id", "uuid", "1+"),
                f("last_offset_epoch", "int32"),
                f("last_offset", "int64"),
                f("pre_vote", "bool", "2+"))),
)

RESPONSE = message(
    "VoteResponse", ApiKey.VOTE, "0-2", "0+",
    f("error_code", "int16"),
    array("topics", "0+",
          f("topic_name", "string"),
          array("partitions", "0+",
                f("partition_index", "int32"),
                f("error_code", "int16"),
                f("leader_id", "int32"),
                f("leader_epoch", "int32"),
                f("vote_granted", "bool"))),
    array("node_endpoints", "1+",
          f("node_id", "int32", "1+"),
          f("host", "string", "1+"),
          f("port", "uint16", "1+"),
          tag=0, tagged="1+"),
)

API = Api(ApiKey.VOTE, "Vote", REQUEST, RESPONSE)
