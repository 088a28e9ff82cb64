"""InitProducerId (key 22), from InitProducerIdRequest/Response.json, versions 0-5.

v1 = v0 (throttle before response); v2 flexible; v3 adds producer_id and
producer_epoch to the request (epoch bump, KIP-360); v4 PRODUCER_FENCED; v5
TRANSACTION_ABORTABLE. A null transactional_id asks for an idempotent id.
"""

from ..api_keys import ApiKey
from ..schema import Api, f, message

REQUEST = message(
    "InitProducerIdRequest", ApiKey.INIT_PRODUCER_ID, "0-5", "2+",
    f("transactional_id", "string", "0+", nullable="0+"),
    f("transaction_timeout_ms", "int32"),
    f("producer_id", "int64", "3+", default=-1),
    f("producer_epoch", "int16", "3+", default=-1),
)

RESPONSE = message(
    "InitProducerIdResponse", ApiKey.INIT_PRODUCER_ID, "0-5", "2+",
    f("throttle_time_ms", "int32"),
    f("error_code", "int16"),
    f("producer_id", "int64", default=-1),
    f("producer_epoch", "int16"),
)

API = Api(ApiKey.INIT_PRODUCER_ID, "InitProducerId", REQUEST, RESPONSE)
