"""QuorumController: the metadata seam, over the Raft quorum.

The broker calls the operations below and reads ``image``. Each operation
runs on the active controller (the Raft leader) under one lock, as Kafka's
controller event queue serialises them: wait until this node leads and has
applied everything committed before its epoch, decide (pure, in
decisions.py) on that image, check that the records apply to it (so a
record that would not apply never reaches the log), then propose them as
one append and return once they are committed and applied here. Every
node's image comes from replaying the committed log (image_machine.py), so
the listeners see the change the same way on the leader and elsewhere.

Kafka's QuorumController decides on an in-memory state that already holds
its uncommitted records (and reverts it if they do not commit). Here the
image holds only applied entries, so the rule is: never decide while an
entry this controller proposed is not yet applied (or failed). An operation
cancelled while committing (its caller gave up after
controller.quorum.request.timeout.ms) releases the lock with its entry
still in flight; the next operation waits for that entry first, or it
would decide on an image without it (a second topic of the same name, a
second block from the same start) and its own entry would be skipped on
apply. Should an operation's entry be skipped anyway, it is not answered
success: it raises NotAppliedError, a NotControllerError, so every caller
retries it against the image that has the entry that won (as Kafka's
controller answers NOT_CONTROLLER once it renounces on an unexpected fault).

On a node that does not lead, an operation raises NotControllerError.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import trio

from riverlog.client.protocol import ErrorCode

from riverlog.broker.clock import wall_ms
from riverlog.broker.controller.raft.core import NotLeaderError
from riverlog.broker.controller.raft_driver import Proposal, RaftDriver
from riverlog.broker.metadata.broker_lifecycle import (
    BrokerHeartbeatTracker,
    HeartbeatResult,
    RegistrationResult,
    decide_fence,
    decide_heartbeat,
    decide_register,
)
from riverlog.broker.metadata.decisions import (
    BrokerResult,
    ConfigResult,
    ProducerIdsResult,
    TopicDefaults,
    TopicResult,
    decide_allocate_producer_ids,
    decide_alter_configs,
    decide_create_partitions,
    decide_create_topics,
    decide_delete_topics,
    decide_register_broker,
)
from riverlog.broker.metadata.image import MetadataImage
from riverlog.broker.metadata.image_machine import Listener, MetadataStateMachine, encode_entry
from riverlog.broker.metadata.records import MetadataRecord

log = logging.getLogger(__name__)


class NotControllerError(Exception):
    """This node is not the active controller (Kafka's NOT_CONTROLLER)."""

    def __init__(self, leader_id: int) -> None:
        super().__init__(f"not the active controller (the quorum's leader is {leader_id})")
        self.leader_id = leader_id


class NotAppliedError(NotControllerError):
    """This controller's entry was committed but skipped on apply: the operation did not happen."""

    def __init__(self, leader_id: int, offset: int) -> None:
        Exception.__init__(self, f"the controller's entry at metadata offset {offset} did not apply; retry")
        self.leader_id = leader_id
        self.offset = offset


def _new_topic_id() -> str:
    return uuid.uuid4().hex


class QuorumController:
    def __init__(
        self,
        driver: RaftDriver,
        machine: MetadataStateMachine,
        *,
        defaults: TopicDefaults = TopicDefaults(),
        clock_ms: Callable[[], int] = wall_ms,
        new_topic_id: Callable[[], str] = _new_topic_id,
        session_timeout_ms: int = 9000,
        producer_id_floor: int = 0,
    ) -> None:
        self.driver = driver
        self.machine = machine
        self.node_id = machine.node_id
        self.cluster_id = machine.cluster_id
        self.defaults = defaults
        self._clock_ms = clock_ms
        self._new_topic_id = new_topic_id
        self._lock = trio.Lock()
        self._in_flight: Proposal | None = None  # the last entry this controller proposed, until applied
        self.session_timeout_ms = session_timeout_ms
        self._tracker = BrokerHeartbeatTracker()  # for fencing: every broker gets a session's grace
        self._heard = BrokerHeartbeatTracker()  # real registrations and heartbeats to this leader
        self._tracker_epoch = -1
        # No producer id block starts below this: see decide_allocate_producer_ids.
        self.producer_id_floor = producer_id_floor

    @property
    def image(self) -> MetadataImage:
        return self.machine.image

    async def start(self, host: str, port: int, rack: str | None = None) -> MetadataImage:
        """Wait until this node leads the quorum, then register this broker."""
        while True:
            try:
                await self.driver.wait_leading()
                break
            except NotLeaderError:
                await self.driver.wait_changed()
        result = await self.register_broker(self.node_id, host, port, rack)
        if result.error_code:
            raise ValueError(f"cannot register this broker: {result.error_message}")
        return self.image

    def on_change(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(old_image, new_image)`` after each applied change; returns an unsubscribe."""
        return self.machine.on_change(callback)

    # -- operations ------------------------------------------------------------------

    async def register_broker(self, node_id: int, host: str, port: int, rack: str | None = None) -> BrokerResult:
        async with self._turn():
            (result,), records = decide_register_broker(self.image, node_id, host, port, rack)
            await self._commit(records)
        return result

    async def create_topics(
        self, topics: Sequence[tuple[str, int, int, Mapping[str, str | None]]], validate_only: bool = False
    ) -> list[TopicResult]:
        """(name, num_partitions, replication_factor, configs) each; -1 means the broker default."""
        async with self._turn():
            results, records = decide_create_topics(self.image, topics, self.defaults, self._new_topic_id)
            if not validate_only:
                await self._commit(records)
        return results

    async def delete_topics(self, names: Sequence[str]) -> list[TopicResult]:
        async with self._turn():
            results, records = decide_delete_topics(self.image, names)
            await self._commit(records)
        return results

    async def create_partitions(self, requests: Sequence[tuple[str, int]],
                                validate_only: bool = False) -> list[TopicResult]:  # fmt: skip
        """(name, new total partition count) each."""
        async with self._turn():
            results, records = decide_create_partitions(self.image, requests, self.defaults.max_partitions)
            if not validate_only:
                await self._commit(records)
        return results

    async def alter_configs(self, topic: str, changes: Mapping[str, str | None],
                            validate_only: bool = False) -> ConfigResult:  # fmt: skip
        """IncrementalAlterConfigs: set each named override, or delete it for None."""
        async with self._turn():
            (result,), records = decide_alter_configs(self.image, topic, changes, self.defaults.log_config)
            if not validate_only:
                await self._commit(records)
        return result

    async def replace_configs(self, topic: str, configs: Mapping[str, str],
                              validate_only: bool = False) -> ConfigResult:  # fmt: skip
        """AlterConfigs: ``configs`` becomes the topic's whole set of overrides."""
        async with self._turn():
            (result,), records = decide_alter_configs(self.image, topic, configs, self.defaults.log_config,
                                                      replace=True)  # fmt: skip
            if not validate_only:
                await self._commit(records)
        return result

    # -- broker lifecycle (KIP-631), on the active controller --------------------------

    async def register(self, node_id: int, incarnation_id: str, host: str, port: int,
                       rack: str | None) -> tuple[RegistrationResult, int]:  # fmt: skip
        """BrokerRegistration: (result, broker epoch); the broker starts fenced."""
        async with self._turn():
            now = self._clock_ms()
            tracker = self._heartbeats()
            # Live = heartbeating to this controller: not the grace a new
            # controller gives every broker (a restarted single node would
            # otherwise find its own old registration "live").
            live = self._heard.live(now, self.session_timeout_ms)
            result, records = decide_register(self.image, node_id, incarnation_id, host, port, rack, live=live)
            await self._commit(records)
            if result.error_code:
                return result, -1
            tracker.touch(node_id, now)
            self._heard.touch(node_id, now)
            return result, self.image.brokers[node_id].epoch

    async def heartbeat(self, node_id: int, broker_epoch: int, metadata_offset: int, want_fence: bool,
                        want_shut_down: bool) -> HeartbeatResult:  # fmt: skip
        async with self._turn():
            result, records = decide_heartbeat(self.image, node_id, broker_epoch, metadata_offset, want_fence,
                                               want_shut_down)  # fmt: skip
            if result.error_code == ErrorCode.NONE:
                self._heartbeats().touch(node_id, self._clock_ms())
                self._heard.touch(node_id, self._clock_ms())
            await self._commit(records)
            return result

    async def fence_expired(self) -> list[int]:
        """Fence every unfenced broker whose session has expired; their ids."""
        if not self.driver.core.is_leader:
            return []
        async with self._turn():
            tracker = self._heartbeats()
            fenced = []
            for node_id in tracker.expired(self._clock_ms(), self.session_timeout_ms):
                tracker.forget(node_id)
                broker = self.image.brokers.get(node_id)
                if broker is None or broker.fenced:
                    continue
                await self._commit(decide_fence(self.image, node_id))
                fenced.append(node_id)
            return fenced

    async def allocate_producer_ids(self, broker_id: int, broker_epoch: int) -> ProducerIdsResult:
        """AllocateProducerIds (KIP-730): the broker's next block, answered once its record is committed."""
        async with self._turn():
            result, records = decide_allocate_producer_ids(self.image, broker_id, broker_epoch,
                                                           floor=self.producer_id_floor)  # fmt: skip
            await self._commit(records)
        if result.error_code:  # the answer has no message field: say why here
            log.warning("AllocateProducerIds from broker %d: %s: %s", broker_id, result.error_code.name,
                        result.error_message)  # fmt: skip
        return result

    def _heartbeats(self) -> BrokerHeartbeatTracker:
        """The tracker of this leadership: a new active controller gives
        every broker a whole session before it may fence it."""
        epoch = self.driver.core.epoch
        if self._tracker_epoch != epoch:
            self._tracker, self._tracker_epoch = BrokerHeartbeatTracker(), epoch
            self._heard = BrokerHeartbeatTracker()
            now = self._clock_ms()
            for node_id in self.image.brokers:
                self._tracker.touch(node_id, now)
        return self._tracker

    def close(self) -> None:
        """Nothing to release: the driver owns the log and closes it when it stops."""

    # -- commit ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """One operation at a time, on the leader, on an image with every
        earlier committed record in it and every entry this controller
        proposed before (see the module's docstring)."""
        async with self._lock:
            if self._in_flight is not None:
                await self._in_flight.done.wait()  # applied, or failed: then wait_leading says so
                self._in_flight = None
            try:
                await self.driver.wait_leading()
            except NotLeaderError as exc:
                raise NotControllerError(exc.leader_id) from None
            yield

    async def _commit(self, records: list[MetadataRecord]) -> None:
        if not records:
            return
        self.image.apply_entry(records, self.image.offset + 1)  # raises if they do not apply
        try:
            self._in_flight = self.driver.submit([encode_entry(records)])  # one entry: all of them or none
            offset = await self.driver.committed(self._in_flight)
        except NotLeaderError as exc:
            raise NotControllerError(exc.leader_id) from None
        if self.machine.was_skipped(offset):
            raise NotAppliedError(self.node_id, offset)
