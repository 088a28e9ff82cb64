"""Fetch (key 1), from FetchRequest/Response.json, versions 0-17.

v4 isolation level and aborted transactions, v5 log_start_offset, v7 fetch
sessions, v9 current_leader_epoch, v11 rack, v12 flexible with tagged epoch
hints, v13 topic ids replace names, v15 replica_state replaces replica_id.
`records` decode as memoryview slices of the input.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message, struct

REQUEST = message(
    "FetchRequest", ApiKey.FETCH, "0-17", "12+",
    f("cluster_id", "string", "12+", nullable="12+", default=None, tag=0, tagged="12+"),
    f("replica_id", "int32", "0-14", default=-1),
    struct("replica_state", "15+",
           f("replica_id", "int32", "15+", default=-1),
           f("replica_epoch", "int64", "15+", default=-1),
           tag=1, tagged="15+"),
    f("max_wait_ms", "int32"),
    f("min_bytes", "int32"),
    f("max_bytes", "int32", "3+", default=0x7FFFFFFF),
    f("isolation_level", "int8", "4+", default=0),
    f("session_id", "int32", "7+", default=0),
    f("session_epoch", "int32", "7+", default=-1),
    array("topics", "0+",
          f("topic", "string", "0-12"),
          f("topic_id", "uuid", "13+"),
          array("partitions", "0+",
                f("partition", "int32"),
                f("current_leader_epoch", "int32", "9+", default=-1),
                f("fetch_offset", "int64"),
                f("last_fetched_epoch", "int32", "12+", default=-1),
                f("log_start_offset", "int64", "5+", default=-1),
                f("partition_max_bytes", "int32"),
                f("replica_directory_id", "uuid", "17+", tag=0, tagged="17+"))),
    array("forgotten_topics_data", "7+",
          f("topic", "string", "7-12"),
          f("topic_id", "uuid", "13+"),
          f("partitions", "[]int32", "7+")),
    f("rack_id", "string", "11+", default=""),
)

RESPONSE = message(
    "FetchResponse", ApiKey.FETCH, "0-17", "12+",
    f("throttle_time_ms", "int32", "1+"),
    f("error_code", "int16", "7+"),
    f("session_id", "int32", "7+", default=0),
    array("responses", "0+",
          f("topic", "string", "0-12"),
          f("topic_id", "uuid", "13+"),
          array("partitions", "0+",
                f("partition_index", "int32"),
                f("error_code", "int16"),
                f("high_watermark", "int64"),
                f("last_stable_offset", "int64", "4+", default=-1),
                f("log_start_offset", "int64", "5+", default=-1),
                struct("diverging_epoch", "12+",
                       f("epoch", "int32", "12+", default=-1),
                       f("end_offset", "int64", "12+", default=-1),
                       tag=0, tagged="12+"),
                struct("current_leader", "12+",
                       f("leader_id", "int32", "12+", default=-1),
                       f("leader_epoch", "int32", "12+", default=-1),
                       tag=1, tagged="12+"),
                struct("snapshot_id", "12+",
                       f("end_offset", "int64", "0+", default=-1),
                       f("epoch", "int32", "0+", default=-1),
                       tag=2, tagged="12+"),
                array("aborted_transactions", "4+",
                      f("producer_id", "int64", "4+"),
                      f("first_offset", "int64", "4+"),
                      nullable="4+"),
                f("preferred_read_replica", "int32", "11+", default=-1),
                f("records", "records", "0+", nullable="0+"))),
    array("node_endpoints", "16+",
          f("node_id", "int32", "16+"),
          f("host", "string", "16+"),
          f("port", "int32", "16+"),
          f("rack", "string", "16+", nullable="16+", default=None),
          tag=0, tagged="16+"),
)

API = Api(ApiKey.FETCH, "Fetch", REQUEST, RESPONSE)
