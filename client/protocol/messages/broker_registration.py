"""BrokerRegistration (key 62), from BrokerRegistrationRequest/Response.json, versions 0-4.

A starting broker registers with the active controller (KIP-631): its id,
incarnation, cluster id, listeners, supported features and rack; the answer
is its broker epoch (the offset of its registration record). Controller
listener only, so never advertised to clients. Flexible from v0. v1 adds
the ZooKeeper-migration flag, v2 (KIP-858) the log directories, v3 (KIP-966)
the epoch before a clean shutdown; v4 changes only how features with a
minimum version of 0 are sent.
"""

from ..api_keys import ApiKey
from ..schema import Api, array, f, message

REQUEST = message(
    "BrokerRegistrationRequest", ApiKey.BROKER_REGISTRATION, "0-4", "0+",
    f("broker_id", "int32"),
    f("cluster_id", "string"),
    f("incarnation_id", "uuid"),
    array("listeners", "0+",
          f("name", "string"),
          f("host", "string"),
          f("port", "uint16"),
          f("security_protocol", "int16")),
    array("features", "0+",
          f("name", "string"),
          f("min_supported_version", "int16"),
          f("max_supported_version", "int16")),
    f("rack", "string", nullable="0+"),
    f("is_migrating_zk_broker", "bool", "1+", default=False),
    f("log_dirs", "[]uuid", "2+"),
    f("previous_broker_epoch", "int64", "3+", default=-1),
)

RESPONSE = message(
    "BrokerRegistrationResponse", ApiKey.BROKER_REGISTRATION, "0-4", "0+",
    f("throttle_time_ms", "int32"),
    f("error_code", "int16"),
    f("broker_epoch", "int64", default=-1),
)

API = Api(ApiKey.BROKER_REGISTRATION, "BrokerRegistration", REQUEST, RESPONSE)
