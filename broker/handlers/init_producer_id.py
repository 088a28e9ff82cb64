"""InitProducerId (22) v0-1: a fresh producer id, epoch 0, for idempotent producers.

Transactions are not served. A non-null ``transactional_id`` is answered
TRANSACTIONAL_ID_AUTHORIZATION_FAILED, what Kafka answers a principal that
may not use that transactional id: it is fatal in librdkafka, kafka-python
and the Java client, so a transactional producer fails at once with a clear
cause, where COORDINATOR_NOT_AVAILABLE (retriable) would make it retry until
its timeout. An empty transactional id is INVALID_REQUEST, as Kafka's
TransactionCoordinator answers. Ids come from blocks the active controller
allocates (broker/producer_ids.py); while this broker has none (just
started, or its next block is on its way) the answer is
COORDINATOR_LOAD_IN_PROGRESS, retriable, as Kafka's.

v0-1 only: v2 is flexible and v3 adds the epoch bump (KIP-360), neither of
which the clients riverlog is tested with need (they send v0 or v1 against a broker whose
max is 1).
"""

from __future__ import annotations

from riverlog.broker.producer_ids import NoProducerIdBlock
from riverlog.client.protocol import ApiKey, ErrorCode

API_KEY = ApiKey.INIT_PRODUCER_ID
MIN_VERSION = 0
MAX_VERSION = 1


def _response(error: int, producer_id: int = -1, epoch: int = -1) -> dict:
    return {"throttle_time_ms": 0, "error_code": int(error), "producer_id": producer_id, "producer_epoch": epoch}


async def handle(ctx, request: dict) -> dict:
    transactional_id = request["transactional_id"]
    if transactional_id is not None:
        if transactional_id == "":
            return _response(ErrorCode.INVALID_REQUEST)
        return _response(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    try:
        producer_id = ctx.services.producer_ids.next_id()
    except NoProducerIdBlock:
        return _response(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)
    return _response(ErrorCode.NONE, producer_id, 0)
