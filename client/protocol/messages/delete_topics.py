"""DeleteTopics (key 20), from DeleteTopicsRequest/Response.json, versions 0-6.

v0-3 identical (v1 throttle, v3 TOPIC_DELETION_DISABLED); v4 flexible; v5
per-topic error message; v6 replaces topic_names by topics (name or id; the
name may be null) and answers topic ids.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "DeleteTopicsRequest", ApiKey.DELETE_TOPICS, "0-6", "4+",
    array("topics", "6+",
          f("name", "string", "6+", nullable="6+", default=None),
          f("topic_id", "uuid", "6+")),
    f("topic_names", "[]string", "0-5"),
    f("timeout_ms", "int32"),
)

RESPONSE = message(
    "DeleteTopicsResponse", ApiKey.DELETE_TOPICS, "0-6", "4+",
    f("throttle_time_ms", "int32", "1+"),
    array("responses", "0+",
          f("name", "string", "0+", nullable="6+"),
          f("topic_id", "uuid", "6+"),
          f("error_code", "int16"),
          f("error_message", "string", "5+", nullable="5+", default=None)),
)

API = Api(ApiKey.DELETE_TOPICS, "DeleteTopics", REQUEST, RESPONSE)
