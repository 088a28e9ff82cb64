"""The active controller on a simulated node, as QuorumController runs it.

Each node incarnation has one ``SimController``. It acts only while its
node leads the quorum, and like broker/metadata/controller.py it does one
operation at a time: wait until the node has applied everything up to its
own LeaderChange entry (``core.applied_offset > core.leader_epoch_start``,
what ``RaftDriver.wait_leading`` waits for), decide with the pure decision
functions on the node's image, check that the records apply to it, propose
them as ONE entry, and answer the caller only once that entry is applied
here while the node still leads in the epoch it proposed in (the driver's
``propose``). A node that stops leading answers NOT_CONTROLLER to what it
holds, in flight or queued.

A caller may give up on an operation (``cancel``): its answer then goes
nowhere, but an entry in flight still holds off the next decision.

Fencing follows ``QuorumController.fence_expired``: a heartbeat tracker on
sim time; a new leadership gives every registered broker a whole session
(``_heartbeats``), and brokers whose session expired are fenced one entry
each. A stale leader (stalled, partitioned) keeps deciding and proposing:
its entries never commit, which is what the checkers must see hold.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from riverlog.broker.controller.raft.core import NotLeaderError
from riverlog.broker.metadata.broker_lifecycle import BrokerHeartbeatTracker, decide_fence
from riverlog.broker.metadata.image import MetadataImage
from riverlog.broker.metadata.image_machine import encode_entry
from riverlog.broker.metadata.records import MetadataRecord

from tests.sim.client import entry_at
from tests.sim.trace import describe_records

if TYPE_CHECKING:
    from tests.sim.metadata_cluster import MetadataSimulation
    from tests.sim.node import SimNode

# decide(controller, image, now_ms) -> (result, records); then done(result) once committed (None: failed)
Decide = Callable[["SimController", MetadataImage, int], tuple[object, list[MetadataRecord]]]


@dataclass
class Operation:
    what: str  # for the trace
    decide: Decide
    done: Callable[[object | None], None]
    committed: Callable[[SimController, object], object] | None = None  # runs at commit, may change the result


@dataclass
class InFlight:
    op: Operation
    result: object
    offset: int
    epoch: int
    data: bytes


class SimController:
    def __init__(self, sim: MetadataSimulation, node: SimNode) -> None:
        self.sim = sim
        self.node = node
        self.inbox: deque[Operation] = deque()
        self.in_flight: InFlight | None = None
        self.tracker = BrokerHeartbeatTracker()  # fencing: every broker gets a session's grace
        self.heard = BrokerHeartbeatTracker()  # brokers really heard by this leadership
        self.tracker_epoch = -1
        self.to_fence: list[int] = []
        self._poll_at = -1

    @property
    def image(self) -> MetadataImage:
        return self.node.sm.image  # type: ignore[attr-defined]

    def _current(self) -> bool:
        return self.node.core is not None and self.node.controller is self  # type: ignore[attr-defined]

    def _leading(self) -> bool:
        """Still this node's controller and its node leads (an answer's callback may have changed that)."""
        return self._current() and self.node.core.is_leader  # type: ignore[union-attr]

    def submit(self, op: Operation) -> None:
        core = self.node.core
        if not self._current() or not core.is_leader:  # type: ignore[union-attr]
            op.done(None)  # NOT_CONTROLLER
            return
        self.inbox.append(op)
        self.schedule(1)

    def cancel(self, op: Operation) -> None:
        """The caller gave up (ControllerChannel.send's timeout cancels the
        operation): one still queued is dropped; one in flight stays in
        flight, answered to nobody, and the next decision waits until it is
        applied (QuorumController._turn), or it would decide on an image
        without it."""
        op.done = lambda result: None
        if op in self.inbox:
            self.inbox.remove(op)

    def schedule(self, delay_ms: int) -> None:
        at = self.sim.clock.now_ms + delay_ms
        if self._poll_at < self.sim.clock.now_ms or at < self._poll_at:
            self._poll_at = at
            self.sim.clock.at(at, self._scheduled_poll, at)

    def _scheduled_poll(self, at: int) -> None:
        if at == self._poll_at:
            self.poll()

    def settled(self) -> None:
        """After the node settles: an answer or the next operation may be due."""
        if self.in_flight is not None or self.inbox:
            self.schedule(1)

    # -- the operation loop -----------------------------------------------------------

    def poll(self) -> None:
        node, sim = self.node, self.sim
        if not self._current():
            return
        core = node.core
        assert core is not None
        now = sim.clock.now_ms
        if node.paused_until_ms > now:
            self.schedule(node.paused_until_ms - now)
            return
        if not core.is_leader or (self.in_flight is not None and self.in_flight.epoch != core.epoch):
            self._drop_all()
            if not core.is_leader:
                return
        if core.applied_offset <= core.leader_epoch_start:
            return  # wait_leading: the LeaderChange entry is not applied yet
        if node.sm.applied_end_offset != core.applied_offset:
            sim.checker.fail("the state machine has applied what the core handed out",
                             f"node {node.id}: core {core.applied_offset}, machine {node.sm.applied_end_offset}")
        if self.in_flight is not None:
            if node.sm.applied_end_offset <= self.in_flight.offset:
                return  # still committing
            self._finish()
        if self.tracker_epoch != core.epoch:  # _heartbeats(): a new leadership
            self.tracker, self.heard, self.tracker_epoch = BrokerHeartbeatTracker(), BrokerHeartbeatTracker(), core.epoch
            for broker_id in self.image.brokers:
                self.tracker.touch(broker_id, now)
            sim.mtrace(node, f"controller: active in epoch {core.epoch} at image offset {self.image.offset}, "
                       f"brokers {sorted(self.image.brokers)} get a whole session")
        if not self.to_fence:
            for broker_id in self.tracker.expired(now, sim.session_timeout_ms):
                self.tracker.forget(broker_id)
                self.to_fence.append(broker_id)
        while self.to_fence and self._leading():
            broker_id = self.to_fence.pop(0)
            broker = self.image.brokers.get(broker_id)
            if broker is None or broker.fenced:
                continue
            op = Operation(f"fence expired broker {broker_id}", fence(broker_id), lambda result: None)
            if self._run(op):
                return
        while self.inbox and self.in_flight is None and self._leading():
            self._run(self.inbox.popleft())

    def _run(self, op: Operation) -> bool:
        """Decides ``op`` on the image; True if an entry is now in flight."""
        node, sim = self.node, self.sim
        core = node.core
        assert core is not None and core.is_leader
        image = self.image
        result, records = op.decide(self, image, sim.clock.now_ms)
        if not records:
            if sim.tracing and op.what and not op.what.startswith("heartbeat"):
                sim.mtrace(node, f"controller: {op.what} -> {result_text(result)} (nothing to write)")
            op.done(result)
            return False
        image.apply_entry(records, image.offset + 1)  # QuorumController._commit: raises if they do not apply
        data = encode_entry(records)
        epoch = core.epoch
        try:
            offset = node.propose([data])
        except NotLeaderError:
            op.done(None)
            return False
        if node.core is None:  # crashed while persisting the proposal
            return False
        self.in_flight = InFlight(op, result, offset, epoch, data)
        sim.operations += 1
        if sim.tracing:
            sim.mtrace(node, f"controller: {op.what} -> propose at {offset}: {describe_records(records, image)}")
        return True

    def _finish(self) -> None:
        f, node = self.in_flight, self.node
        assert f is not None
        self.in_flight = None
        if entry_at(node, f.offset) != (f.epoch, f.data):
            self.sim.checker.fail("a leader's own entry stays at its offset",
                                  f"node {node.id} proposed at {f.offset} in epoch {f.epoch}; the log has another")
        self.sim.checker.ack(f.offset, f.epoch, f.data)
        result = f.op.committed(self, f.result) if f.op.committed is not None else f.result
        self.sim.mtrace(node, f"controller: committed {f.offset} ({f.op.what}) -> {result_text(result)}")
        f.op.done(result)

    def _drop_all(self) -> None:
        """NOT_CONTROLLER for everything held: the answers are unknown."""
        dropped = ([self.in_flight.op] if self.in_flight is not None else []) + list(self.inbox)
        self.in_flight = None
        self.inbox.clear()
        self.to_fence.clear()
        if dropped:
            self.sim.mtrace(self.node, f"controller: not leading, {len(dropped)} operation(s) get NOT_CONTROLLER")
        for op in dropped:
            op.done(None)


def fence(broker_id: int) -> Decide:
    """QuorumController.fence_expired's decision for one broker."""
    def decide(c: SimController, image: MetadataImage, now_ms: int) -> tuple[object, list[MetadataRecord]]:
        return None, decide_fence(image, broker_id)
    return decide


def result_text(result: object) -> str:
    if result is None:
        return "ok"
    if isinstance(result, tuple):
        return ", ".join(result_text(r) for r in result)
    if isinstance(result, list):
        return "[" + ", ".join(result_text(r) for r in result) + "]"
    code = getattr(result, "error_code", None)
    if code is None:
        return str(result)
    name = getattr(code, "name", str(code))
    extra = []
    for attr in ("is_caught_up", "is_fenced", "should_shut_down"):
        if getattr(result, attr, False):
            extra.append(attr)
    return name + (f" ({', '.join(extra)})" if extra else "")
