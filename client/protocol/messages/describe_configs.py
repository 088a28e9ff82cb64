"""DescribeConfigs (key 32), from DescribeConfigsRequest/Response.json, versions 0-4.

v0 has is_default; v1 replaces it by config_source and adds synonyms
(include_synonyms); v2 throttle before response; v3 documentation and
config_type; v4 flexible. A null configuration_keys list means all keys.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "DescribeConfigsRequest", ApiKey.DESCRIBE_CONFIGS, "0-4", "4+",
    array("resources", "0+",
          f("resource_type", "int8"),
          f("resource_name", "string"),
          f("configuration_keys", "[]string", "0+", nullable="0+")),
    f("include_synonyms", "bool", "1+", default=False),
    f("include_documentation", "bool", "3+", default=False),
)

RESPONSE = message(
    "DescribeConfigsResponse", ApiKey.DESCRIBE_CONFIGS, "0-4", "4+",
    f("throttle_time_ms", "int32"),
    array("results", "0+",
          f("error_code", "int16"),
          f("error_message", "string", "0+", nullable="0+"),
          f("resource_type", "int8"),
          f("resource_name", "string"),
          array("configs", "0+",
                f("name", "string"),
                f("value", "string", "0+", nullable="0+"),
                f("read_only", "bool"),
                f("is_default", "bool", "0"),
                f("config_source", "int8", "1+", default=-1),
                f("is_sensitive", "bool"),
                array("synonyms", "1+",
                      f("name", "string", "1+"),
                      f("value", "string", "1+", nullable="0+"),
                      f("source", "int8", "1+")),
                f("config_type", "int8", "3+", default=0),
                f("documentation", "string", "3+", nullable="0+"))),
)

API = Api(ApiKey.DESCRIBE_CONFIGS, "DescribeConfigs", REQUEST, RESPONSE)
