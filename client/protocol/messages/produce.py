"""Produce (key 0), from ProduceRequest/Response.json, versions 0-11.

v3 adds transactional_id (and means record batch v2 only), v5
log_start_offset, v8 per-record errors, v9 flexible, v10 leader hints as
tagged fields. `records` decode as memoryview slices: never re-encoded.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message, struct

REQUEST = message(
    "ProduceRequest", ApiKey.PRODUCE, "0-11", "9+",
    f("transactional_id", "string", "3+", nullable="3+", default=None),
    f("acks", "int16"),
    f("timeout_ms", "int32"),
    array("topic_data", "0+",
          f("name", "string"),
          array("partition_data", "0+",
                f("index", "int32"),
                f("records", "records", "0+", nullable="0+"))),
)

RESPONSE = message(
    "ProduceResponse", ApiKey.PRODUCE, "0-11", "9+",
    array("responses", "0+",
          f("name", "string"),
          array("partition_responses", "0+",
                f("index", "int32"),
                f("error_code", "int16"),
                f("base_offset", "int64"),
                f("log_append_time_ms", "int64", "2+", default=-1),
                f("log_start_offset", "int64", "5+", default=-1),
                array("record_errors", "8+",
                      f("batch_index", "int32", "8+"),
                      f("batch_index_error_message", "string", "8+",
                        nullable="8+", default=None)),
                f("error_message", "string", "8+", nullable="8+", default=None),
                struct("current_leader", "10+",
                       f("leader_id", "int32", "10+", default=-1),
                       f("leader_epoch", "int32", "10+", default=-1),
                       tag=0, tagged="10+"))),
    f("throttle_time_ms", "int32", "1+", default=0),
    array("node_endpoints", "10+",
          f("node_id", "int32", "10+"),
          f("host", "string", "10+"),
          f("port", "int32", "10+"),
          f("rack", "string", "10+", nullable="10+", default=None),
          tag=0, tagged="10+"),
)

API = Api(ApiKey.PRODUCE, "Produce", REQUEST, RESPONSE)
