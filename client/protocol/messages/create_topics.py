"""CreateTopics (key 19), from CreateTopicsRequest/Response.json, versions 0-7.

v1 validate_only and per-topic error message; v2 throttle; v4 -1 partitions /
replication factor mean broker defaults (KIP-464); v5 flexible, returns the
created topic's configs and a tagged topic_config_error_code; v6 throttling
quota error; v7 returns topic ids.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "CreateTopicsRequest", ApiKey.CREATE_TOPICS, "0-7", "5+",
    array("topics", "0+",
          f("name", "string"),
          f("num_partitions", "int32"),
          f("replication_factor", "int16"),
          array("assignments", "0+",
                f("partition_index", "int32"),
                f("broker_ids", "[]int32")),
          array("configs", "0+",
                f("name", "string"),
                f("value", "string", "0+", nullable="0+"))),
    f("timeout_ms", "int32", default=60000),
    f("validate_only", "bool", "1+", default=False),
)

RESPONSE = message(
    "CreateTopicsResponse", ApiKey.CREATE_TOPICS, "0-7", "5+",
    f("throttle_time_ms", "int32", "2+"),
    array("topics", "0+",
          f("name", "string"),
          f("topic_id", "uuid", "7+"),
          f("error_code", "int16"),
          f("error_message", "string", "1+", nullable="0+"),
          f("topic_config_error_code", "int16", "5+", tag=0, tagged="5+"),
          f("num_partitions", "int32", "5+", default=-1),
          f("replication_factor", "int16", "5+", default=-1),
          array("configs", "5+",
                f("name", "string", "5+"),
                f("value", "string", "5+", nullable="5+"),
                f("read_only", "bool", "5+"),
                f("config_source", "int8", "5+", default=-1),
                f("is_sensitive", "bool", "5+"),
                nullable="5+")),
)

API = Api(ApiKey.CREATE_TOPICS, "CreateTopics", REQUEST, RESPONSE)
