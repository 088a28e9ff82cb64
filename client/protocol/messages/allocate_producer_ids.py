"""AllocateProducerIds (key 67), from AllocateProducerIdsRequest/Response.json, version 0.

A broker asks the active controller for its next block of producer ids
(KIP-730); the controller records the block in the metadata log before it
answers, so no id goes to two brokers. Controller listener only, so never
advertised to clients. Flexible from v0.
"""

from ..api_keys import ApiKey
from ..schema import Api, f, message

REQUEST = message(
    "AllocateProducerIdsRequest", ApiKey.ALLOCATE_PRODUCER_IDS, "0", "0+",
    f("broker_id", "int32"),
    f("broker_epoch", "int64", default=-1),
)

RESPONSE = message(
    "AllocateProducerIdsResponse", ApiKey.ALLOCATE_PRODUCER_IDS, "0", "0+",
    f("throttle_time_ms", "int32"),
    f("error_code", "int16"),
    f("producer_id_start", "int64"),
    f("producer_id_len", "int32"),
)

API = Api(ApiKey.ALLOCATE_PRODUCER_IDS, "AllocateProducerIds", REQUEST, RESPONSE)
