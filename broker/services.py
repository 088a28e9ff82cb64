"""What request handlers may use: the broker's services, built once by ``Broker``.

A handler gets ``RequestContext(services, header, peer)`` (broker/handlers):
``services`` is a ``BrokerServices``, whose fields are everything the
request path touches: the metadata image, the partitions this broker holds,
the group service, the link to the active controller, the producer-id
manager, the config and the handler registry. It holds no ``Broker``: the
lifecycle (start, stop, listeners, background tasks) stays out of reach of
the handlers, and no service keeps a reference back to it
(tests/broker/test_handler_context.py walks the services to check).

``MetadataView`` and ``ControllerLink`` exist before the metadata quorum
does (the services are built in ``Broker.__init__``); ``Broker`` attaches the
quorum to them once it has started it, before the first request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from riverlog.broker.metadata.controller import NotControllerError
from riverlog.broker.metadata.decisions import TopicResult
from riverlog.client.protocol import ApiKey, ErrorCode

if TYPE_CHECKING:
    from riverlog.broker.config import BrokerConfig
    from riverlog.broker.controller.forwarding import ControllerChannel
    from riverlog.broker.metadata.controller import QuorumController
    from riverlog.broker.group.service import GroupService
    from riverlog.broker.handlers import HandlerSpec
    from riverlog.broker.metadata.image import MetadataImage
    from riverlog.broker.partitions import Partitions
    from riverlog.broker.producer_ids import ProducerIdManager

CREATE_TOPICS = ApiKey.CREATE_TOPICS
FORWARD_TIMEOUT_S = 30.0  # Kafka's request.timeout.ms for requests a broker forwards


class MetadataView:
    """The cluster as this broker knows it now: the latest metadata image
    (replayed from the metadata quorum), and where clients reach this broker."""

    def __init__(self, config: BrokerConfig) -> None:
        self._config = config
        self._quorum: QuorumController | None = None
        self._bound_port: int | None = None

    def attach(self, quorum: QuorumController) -> None:
        self._quorum = quorum

    def listening_on(self, port: int) -> None:
        self._bound_port = port

    @property
    def image(self) -> MetadataImage:
        assert self._quorum is not None, "the broker is not started"
        return self._quorum.image

    @property
    def advertised(self) -> tuple[str, int]:
        """Where clients reach this broker: advertised.listeners, else the bound listener."""
        if self._config.advertised_listener is not None:
            return self._config.advertised_listener
        host = self._config.advertised[0]
        return host, self._bound_port if self._bound_port is not None else self._config.listener[1]


class ControllerLink:
    """The active controller of the metadata quorum as this broker reaches it:
    on this node (``local``, the controller whose operations the admin
    handlers call once ``is_active()``), or on another, over the controller
    channel (``forward``)."""

    def __init__(self) -> None:
        self._local: QuorumController | None = None
        self._channel: ControllerChannel | None = None

    def attach(self, local: QuorumController, channel: ControllerChannel) -> None:
        self._local, self._channel = local, channel

    @property
    def local(self) -> QuorumController:
        """This node's controller: its decisions count only while ``is_active()``."""
        assert self._local is not None, "the broker is not started"
        return self._local

    @property
    def channel(self) -> ControllerChannel:
        assert self._channel is not None, "the broker is not started"
        return self._channel

    def is_active(self) -> bool:
        return self._local is not None and self._local.driver.core.is_leader

    @property
    def controller_id(self) -> int:
        """The active controller's node id as this broker knows it (-1: none now)."""
        return self._local.driver.core.leader_id if self._local is not None else -1

    async def forward(self, api_key: int, version: int, body: dict) -> dict:
        """An admin request, answered by the active controller (ControllerUnavailable after 30 s)."""
        return await self.channel.send(api_key, version, body, FORWARD_TIMEOUT_S)

    async def create_topics(self, topics) -> list[TopicResult]:
        """``controller.create_topics`` for callers inside the broker
        (auto-creation, __consumer_offsets), on whichever node is the
        active controller."""
        if self.is_active():
            try:
                return await self.local.create_topics(topics)
            except NotControllerError:
                pass
        body = {"topics": [{"name": name, "num_partitions": n, "replication_factor": rf, "assignments": [],
                            "configs": [{"name": k, "value": v} for k, v in configs.items()]}
                           for name, n, rf, configs in topics],
                "timeout_ms": int(FORWARD_TIMEOUT_S * 1000), "validate_only": False}  # fmt: skip
        answer = await self.channel.send(CREATE_TOPICS, 4, body, FORWARD_TIMEOUT_S)
        return [TopicResult(t["name"], ErrorCode(t["error_code"]), t["error_message"]) for t in answer["topics"]]

    def quorum_description(self) -> dict:
        """The metadata quorum as DescribeQuorum reports it, from this node's
        Raft driver (replica progress is known on the leader only)."""
        driver = self.local.driver
        described = driver.describe()
        tick_ms = driver.config.tick_ms

        def replica(node: int) -> dict:
            end, ticks = described["replicas"].get(node, (-1, -1))
            ago = -1 if ticks < 0 else ticks * tick_ms
            return {"replica_id": node, "log_end_offset": end, "last_fetch_ms_ago": ago}

        voters = driver.config.voters
        return {
            "leader_id": described["leader_id"], "leader_epoch": described["epoch"],
            "high_watermark": described["high_watermark"],
            "voters": [replica(n) for n in sorted(voters)],
            "observers": [replica(n) for n in sorted(set(described["replicas"]) - voters)],
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class BrokerServices:
    """Everything a request handler may use, and nothing of the lifecycle."""

    config: BrokerConfig
    metadata: MetadataView
    partitions: Partitions
    groups: GroupService
    controller: ControllerLink
    producer_ids: ProducerIdManager
    registry: Mapping[int, HandlerSpec]  # the client listener's handlers (ApiVersions lists them)
