"""BrokerHeartbeat (key 63), from BrokerHeartbeatRequest/Response.json, versions 0-1.

A registered broker's heartbeat to the active controller every
broker.heartbeat.interval.ms (KIP-631): its epoch, how far it has replayed
the metadata log, and whether it wants to be fenced or to shut down; the
answer says whether it is caught up, fenced, and may finish shutting down.
Controller listener only, so never advertised to clients. Flexible from v0;
v1 adds the offline log directories as a tagged field.
"""

from ..api_keys import ApiKey
from ..schema import Api, f, message

REQUEST = message(
    "BrokerHeartbeatRequest", ApiKey.BROKER_HEARTBEAT, "0-1", "0+",
    f("broker_id", "int32"),
    f("broker_epoch", "int64", default=-1),
    f("current_metadata_offset", "int64"),
    f("want_fence", "bool"),
    f("want_shut_down", "bool"),
    f("offline_log_dirs", "[]uuid", "1+", tag=0, tagged="1+"),
)

RESPONSE = message(
    "BrokerHeartbeatResponse", ApiKey.BROKER_HEARTBEAT, "0-1", "0+",
    f("throttle_time_ms", "int32"),
    f("error_code", "int16"),
    f("is_caught_up", "bool", default=False),
    f("is_fenced", "bool", default=True),
    f("should_shut_down", "bool"),
)

API = Api(ApiKey.BROKER_HEARTBEAT, "BrokerHeartbeat", REQUEST, RESPONSE)
