"""DescribeCluster (key 60), from DescribeClusterRequest/Response.json, versions 0-2.

Flexible from v0. v1 adds endpoint_type (1 brokers, 2 controllers). v2 is
KIP-1073's: the request may ask for fenced
brokers too (include_fenced_brokers), and each broker says is_fenced.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "DescribeClusterRequest", ApiKey.DESCRIBE_CLUSTER, "0-2", "0+",
    f("include_cluster_authorized_operations", "bool"),
    f("endpoint_type", "int8", "1+", default=1),
    f("include_fenced_brokers", "bool", "2+", default=False),
)

RESPONSE = message(
    "DescribeClusterResponse", ApiKey.DESCRIBE_CLUSTER, "0-2", "0+",
    f("throttle_time_ms", "int32"),
    f("error_code", "int16"),
    f("error_message", "string", "0+", nullable="0+", default=None),
    f("endpoint_type", "int8", "1+", default=1),
    f("cluster_id", "string"),
    f("controller_id", "int32", default=-1),
    array("brokers", "0+",
          f("broker_id", "int32"),
          f("host", "string"),
          f("port", "int32"),
          f("rack", "string", "0+", nullable="0+", default=None),
          f("is_fenced", "bool", "2+", default=False)),
    f("cluster_authorized_operations", "int32", default=-2147483648),
)

API = Api(ApiKey.DESCRIBE_CLUSTER, "DescribeCluster", REQUEST, RESPONSE)
