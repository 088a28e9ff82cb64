"""FetchSnapshot (key 59), from FetchSnapshotRequest/Response.json, versions 0-1.

A KRaft follower whose fetch offset fell below the leader's log start
downloads the leader's snapshot in chunks by byte position (KIP-630).
Flexible from v0; the cluster id and (v1, KIP-853) the replica directory id
are tagged, as are the responder's leader and epoch. ``unaligned_records``
is a chunk of the snapshot file: it need not end on a batch boundary.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message, struct

REQUEST = message(
    "FetchSnapshotRequest", ApiKey.FETCH_SNAPSHOT, "0-1", "0+",
    f("cluster_id", "string", "0+", nullable="0+", default=None, tag=0, tagged="0+"),
    f("replica_id", "int32", default=-1),
    f("max_bytes", "int32", default=0x7FFFFFFF),
    array("topics", "0+",
          f("name", "string"),
          array("partitions", "0+",
                f("partition", "int32"),
                f("current_leader_epoch", "int32"),
                struct("snapshot_id", "0+",
                       f("end_offset", "int64"),
                       f("epoch", "int32")),
                f("position", "int64"),
                f("replica_directory_id", "uuid", "1+", tag=0, tagged="1+"))),
)

RESPONSE = message(
    "FetchSnapshotResponse", ApiKey.FETCH_SNAPSHOT, "0-1", "0+",
    f("throttle_time_ms", "int32"),
    f("error_code", "int16"),
    array("topics", "0+",
          f("name", "string"),
          array("partitions", "0+",
                f("index", "int32"),
                f("error_code", "int16"),
                struct("snapshot_id", "0+",
                       f("end_offset", "int64"),
                       f("epoch", "int32")),
                struct("current_leader", "0+",
                       f("leader_id", "int32"),
                       f("leader_epoch", "int32"),
                       tag=0, tagged="0+"),
                f("size", "int64"),
                f("position", "int64"),
                f("unaligned_records", "records", default=b""))),
    array("node_endpoints", "1+",
          f("node_id", "int32", "1+"),
          f("host", "string", "1+"),
          f("port", "uint16", "1+"),
          tag=0, tagged="1+"),
)

API = Api(ApiKey.FETCH_SNAPSHOT, "FetchSnapshot", REQUEST, RESPONSE)
