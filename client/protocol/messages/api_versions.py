"""ApiVersions (key 18), from ApiVersionsRequest/Response.json.

v3 adds client software name/version and is the first flexible version. The
response is always sent with response header v0 (see headers.py), so a
client that guessed too new a version can still read the error.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "ApiVersionsRequest", ApiKey.API_VERSIONS, "0-4", "3+",
    f("client_software_name", "string", "3+"),
    f("client_software_version", "string", "3+"),
)

RESPONSE = message(
    "ApiVersionsResponse", ApiKey.API_VERSIONS, "0-4", "3+",
    f("error_code", "int16"),
    array("api_keys", "0+",
          f("api_key", "int16"),
          f("min_version", "int16"),
          f("max_version", "int16")),
    f("throttle_time_ms", "int32", "1+"),
    array("supported_features", "3+",
          f("name", "string", "3+"),
          f("min_version", "int16", "3+"),
          f("max_version", "int16", "3+"),
          tag=0, tagged="3+"),
    f("finalized_features_epoch", "int64", "3+", default=-1, tag=1, tagged="3+"),
    array("finalized_features", "3+",
          f("name", "string", "3+"),
          f("max_version_level", "int16", "3+"),
          f("min_version_level", "int16", "3+"),
          tag=2, tagged="3+"),
    f("zk_migration_ready", "bool", "3+", default=False, tag=3, tagged="3+"),
)

API = Api(ApiKey.API_VERSIONS, "ApiVersions", REQUEST, RESPONSE)
