"""BrokerRegistration: a broker's side of KIP-631's lifecycle.

On start a broker registers with the active controller (BrokerRegistration:
its id, a fresh incarnation id, listener, rack) and learns its broker epoch
(the offset of its registration record). It then heartbeats every
``broker.heartbeat.interval.ms`` with how far it has replayed the metadata
log; the controller unfences it once it has replayed its own registration,
and fences it again if the heartbeats stop for ``broker.session.timeout.ms``.
``wait_unfenced()`` returns once the broker may serve: clients only see
unfenced brokers in Metadata, and only they lead partitions.

Errors: STALE_BROKER_EPOCH or BROKER_ID_NOT_REGISTERED (the controller lost
or replaced the registration) register again; an unreachable controller is
retried (ControllerChannel), with a log line every few seconds saying so;
so is DUPLICATE_BROKER_REGISTRATION: an earlier incarnation of this broker
(killed with -9, say) holds the id until its session expires, as in Kafka.

Controlled shutdown: ``shut_down()`` heartbeats with want_shut_down until
the controller answers should_shut_down (leadership moved away) or the
timeout passes.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

import trio

from riverlog.client.protocol import ApiKey, ErrorCode

from .forwarding import ControllerChannel, ControllerUnavailable

if TYPE_CHECKING:
    from riverlog.broker.config import BrokerConfig
    from riverlog.broker.services import MetadataView

log = logging.getLogger(__name__)

BROKER_REGISTRATION, BROKER_HEARTBEAT = ApiKey.BROKER_REGISTRATION, ApiKey.BROKER_HEARTBEAT
_REGISTRATION_VERSION, _HEARTBEAT_VERSION = 0, 0
_PLAINTEXT = 0


class BrokerRegistration:
    def __init__(self, config: BrokerConfig, metadata: MetadataView, channel: ControllerChannel) -> None:
        self.metadata = metadata
        self.channel = channel
        self.config = config
        self.incarnation_id = uuid.uuid4()
        self.broker_epoch = -1
        self.fenced = True
        self._unfenced = trio.Event()
        self._request_timeout_s = self.config.controller_quorum_request_timeout_ms / 1000
        self._shutting_down = False  # once set, no ordinary heartbeat may undo the controlled shutdown

    async def wait_unfenced(self) -> None:
        await self._unfenced.wait()

    async def run(self) -> None:
        """Register, then heartbeat for as long as the broker runs."""
        interval_s = self.config.broker_heartbeat_interval_ms / 1000
        while not self._shutting_down:
            if self.broker_epoch < 0:
                await self._register()
            code = await self._heartbeat(want_shut_down=False)
            if self._shutting_down:
                return
            if code in (ErrorCode.STALE_BROKER_EPOCH, ErrorCode.BROKER_ID_NOT_REGISTERED):
                log.warning("broker %d: %s: registering again", self.config.node_id, ErrorCode(code).name)
                self.broker_epoch = -1
                continue
            # Until unfenced, beat faster: the controller unfences on a beat.
            await trio.sleep(interval_s if not self.fenced else min(interval_s, 0.1))

    async def shut_down(self, timeout_s: float) -> None:
        """Controlled shutdown: ask the controller to move leadership away first.
        The ordinary heartbeats stop first: one of them landing after this
        would unfence the broker again (it is caught up) as it goes."""
        self._shutting_down = True
        if self.broker_epoch < 0:
            return
        with trio.move_on_after(timeout_s):
            while await self._heartbeat(want_shut_down=True, answer_needed=True) is not True:
                await trio.sleep(0.1)

    async def _register(self) -> None:
        host, port = self.metadata.advertised
        body = {
            "broker_id": self.config.node_id, "cluster_id": self.metadata.image.cluster_id,
            "incarnation_id": self.incarnation_id,
            "listeners": [{"name": "PLAINTEXT", "host": host, "port": port, "security_protocol": _PLAINTEXT}],
            "features": [], "rack": self.config.rack,
        }  # fmt: skip
        quiet_until = 0.0
        while True:
            try:
                answer = await self.channel.send(BROKER_REGISTRATION, _REGISTRATION_VERSION, body,
                                                 self._request_timeout_s, lane="lifecycle")  # fmt: skip
            except ControllerUnavailable as exc:
                if trio.current_time() >= quiet_until:
                    log.warning("broker %d: cannot register yet: %s; retrying", self.config.node_id, exc)
                    quiet_until = trio.current_time() + 10
                continue
            code = answer["error_code"]
            if code == ErrorCode.NONE:
                self.broker_epoch = answer["broker_epoch"]
                self.fenced = True
                log.info("broker %d registered with broker epoch %d", self.config.node_id, self.broker_epoch)
                return
            if trio.current_time() >= quiet_until:
                if code == ErrorCode.DUPLICATE_BROKER_REGISTRATION:
                    # As Kafka: an earlier incarnation (killed, say) holds the
                    # id until its session expires; or another live process
                    # has this node id, and then it stays refused.
                    log.warning("broker %d: another broker holds node id %d (an earlier run of this one, until "
                                "its session expires, or another process with the same id); retrying",
                                self.config.node_id, self.config.node_id)  # fmt: skip
                else:
                    log.warning("broker %d: registration refused: %s; retrying", self.config.node_id,
                                ErrorCode(code).name)  # fmt: skip
                quiet_until = trio.current_time() + 10
            await trio.sleep(0.5)

    async def _heartbeat(self, want_shut_down: bool, answer_needed: bool = False):
        body = {"broker_id": self.config.node_id, "broker_epoch": self.broker_epoch,
                "current_metadata_offset": self.metadata.image.offset, "want_fence": False,
                "want_shut_down": want_shut_down}  # fmt: skip
        try:
            answer = await self.channel.send(BROKER_HEARTBEAT, _HEARTBEAT_VERSION, body, self._request_timeout_s,
                                             lane="lifecycle")  # fmt: skip
        except ControllerUnavailable as exc:
            log.debug("broker %d: heartbeat: %s", self.config.node_id, exc)
            return None
        code = answer["error_code"]
        if code == ErrorCode.NONE:
            self.fenced = answer["is_fenced"]
            if not self.fenced:
                self._unfenced.set()
            if answer_needed:
                return bool(answer["should_shut_down"])
        return code
