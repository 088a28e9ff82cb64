"""The controller listener's APIs besides the quorum's own.

- Admin requests forwarded by brokers (CreateTopics, DeleteTopics,
  CreatePartitions, AlterConfigs, IncrementalAlterConfigs, and DescribeQuorum
  which only the leader can answer in full): run by this
  node's own handler for the API, as if a client had sent it here.
- BrokerRegistration and BrokerHeartbeat (KIP-631), served by the broker's
  lifecycle code on the active controller.
- AllocateProducerIds (KIP-730): a block of producer ids for a broker,
  recorded in the metadata log before the answer.

Only the active controller answers: on any other node the connection is
closed without an answer, and the sender (forwarding.py) finds the leader
again and retries. Answering NOT_CONTROLLER would need a per-API error
shape for each; closing says the same to our own sender.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from riverlog.broker.metadata.controller import NotControllerError
from riverlog.client.protocol import ApiKey, ErrorCode, RequestHeader

from .quorum_rpc import Extra

if TYPE_CHECKING:
    from riverlog.broker.services import BrokerServices

FORWARDED = (ApiKey.CREATE_TOPICS, ApiKey.DELETE_TOPICS, ApiKey.ALTER_CONFIGS, ApiKey.CREATE_PARTITIONS,
             ApiKey.INCREMENTAL_ALTER_CONFIGS, ApiKey.DESCRIBE_QUORUM)  # fmt: skip

Handler = Callable[[RequestHeader, dict], Awaitable[dict | None]]


BROKER_REGISTRATION = ApiKey.BROKER_REGISTRATION
BROKER_HEARTBEAT = ApiKey.BROKER_HEARTBEAT
ALLOCATE_PRODUCER_IDS = ApiKey.ALLOCATE_PRODUCER_IDS


def controller_apis(services: BrokerServices) -> Extra:
    """The extra APIs of the controller listener of the broker with ``services``."""
    apis: dict[int, tuple[int, int, Handler]] = {}
    for key in FORWARDED:
        spec = services.registry.get(key)
        if spec is not None:
            apis[key] = (spec.min_version, spec.max_version, _admin(services, key))
    apis[BROKER_REGISTRATION] = (0, 4, _on_leader(services, register))
    apis[BROKER_HEARTBEAT] = (0, 1, _on_leader(services, heartbeat))
    apis[ALLOCATE_PRODUCER_IDS] = (0, 0, _on_leader(services, allocate_producer_ids))
    return apis


async def register(services: BrokerServices, body: dict) -> dict:
    """BrokerRegistration: the broker epoch of a new (fenced) registration."""
    if body["cluster_id"] != services.metadata.image.cluster_id:
        return {"throttle_time_ms": 0, "error_code": int(ErrorCode.INCONSISTENT_CLUSTER_ID), "broker_epoch": -1}
    listeners = body["listeners"]
    host, port = (listeners[0]["host"], listeners[0]["port"]) if listeners else ("", 0)
    result, epoch = await services.controller.local.register(body["broker_id"], body["incarnation_id"].hex, host,
                                                             port, body["rack"])  # fmt: skip
    return {"throttle_time_ms": 0, "error_code": int(result.error_code), "broker_epoch": epoch}


async def heartbeat(services: BrokerServices, body: dict) -> dict:
    result = await services.controller.local.heartbeat(body["broker_id"], body["broker_epoch"],
                                                       body["current_metadata_offset"], body["want_fence"],
                                                       body["want_shut_down"])  # fmt: skip
    return {"throttle_time_ms": 0, "error_code": int(result.error_code), "is_caught_up": result.is_caught_up,
            "is_fenced": result.is_fenced, "should_shut_down": result.should_shut_down}  # fmt: skip


async def allocate_producer_ids(services: BrokerServices, body: dict) -> dict:
    result = await services.controller.local.allocate_producer_ids(body["broker_id"], body["broker_epoch"])
    return {"throttle_time_ms": 0, "error_code": int(result.error_code),
            "producer_id_start": result.producer_id_start, "producer_id_len": result.producer_id_len}  # fmt: skip


def _on_leader(services: BrokerServices, serve: Callable[[BrokerServices, dict], Awaitable[dict]]) -> Handler:
    async def handle(header: RequestHeader, body: dict) -> dict | None:
        if not services.controller.is_active():
            return None
        try:
            return await serve(services, body)
        except NotControllerError:
            return None  # lost the leadership meanwhile: the sender retries

    return handle


def _admin(services: BrokerServices, api_key: int) -> Handler:
    async def handle(header: RequestHeader, body: dict) -> dict | None:
        if not services.controller.is_active():
            return None
        from riverlog.broker.handlers import RequestContext

        try:
            return await services.registry[api_key].call(RequestContext(services, header, "controller listener"),
                                                          body)  # fmt: skip
        except NotControllerError:
            return None  # lost the leadership meanwhile: the sender retries

    return handle
