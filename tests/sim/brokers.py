"""Simulated brokers and an admin client, the controller's callers.

A broker (KIP-631's lifecycle manager) registers with a fresh incarnation
id, then heartbeats every ``heartbeat_interval_ms`` with its metadata
offset: its own node's image offset when the broker is also a simulated
node (a combined node or an observer), else the controller's. It has one
request in flight at a time; NOT_CONTROLLER (the node does not lead) or no
answer within ``request_timeout_ms`` (it cancels the operation, as
ControllerChannel.send does) makes it try again, at the node the
cluster says leads (or, sometimes, at any node that believes it leads).
STALE_BROKER_EPOCH or BROKER_ID_NOT_REGISTERED sends it back to register.

Faults (only in the faulty phase): a broker stops (its heartbeats stop; it
comes back later as a new incarnation), stalls (its heartbeats stop for a
while, then resume with the same incarnation), or shuts down in a
controlled way (want_shut_down until the controller says should_shut_down,
then stops). A broker that is a simulated node stops and starts with it.

The admin client creates topics (names from a small pool, so creations
collide and deleted names come back), deletes them and adds partitions,
at whichever node leads. Between them a broker asks for a block of
producer ids (AllocateProducerIds, with the broker epoch it knows); each
block acknowledged goes to the checker, which holds that no two overlap.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from riverlog.broker.metadata.broker_lifecycle import decide_heartbeat, decide_register
from riverlog.broker.metadata.decisions import (
    ProducerIdsResult,
    TopicDefaults,
    decide_allocate_producer_ids,
    decide_create_partitions,
    decide_create_topics,
    decide_delete_topics,
)
from riverlog.client.protocol.errors import ErrorCode

from tests.sim.controller import Operation, SimController

if TYPE_CHECKING:
    from tests.sim.metadata_cluster import MetadataSimulation

TOPIC_NAMES = [f"t{i}" for i in range(8)]
DEFAULTS = TopicDefaults()


@dataclass
class SimBroker:
    id: int
    combined: bool  # also a simulated node: stops and starts with it
    rack: str | None
    up: bool = False
    incarnation_id: str = ""
    epoch: int = -1  # -1: not registered (as far as it knows)
    shutting_down: bool = False
    stalled_until_ms: int = 0
    request: int = 0  # id of the request in flight, 0: none
    incarnations: int = 0


class Brokers:
    def __init__(self, sim: MetadataSimulation, rng: random.Random, count: int) -> None:
        self.sim = sim
        self.rng = rng
        racks = rng.choice((None, ("r0", "r1"), ("r0", "r1", "r2")))
        self.brokers = {
            b: SimBroker(b, b in sim.nodes, racks[b % len(racks)] if racks else None) for b in range(count)
        }
        self.heartbeat_interval_ms = max(50, sim.session_timeout_ms // 4)
        self.request_timeout_ms = sim.session_timeout_ms // 2
        self._requests = 0
        self.mean_fault_gap_ms = rng.choice((500, 2000, 5000))

    # -- processes ----------------------------------------------------------------------

    def start(self) -> None:
        for broker in self.brokers.values():
            if not broker.combined:  # a combined one started with its node
                self.start_broker(broker)
            self.sim.clock.after(self.rng.randint(0, self.heartbeat_interval_ms), self._beat, broker)
        self.sim.clock.after(self.rng.randint(1, 2 * self.mean_fault_gap_ms), self._fault)

    def start_broker(self, broker: SimBroker) -> None:
        broker.up, broker.epoch, broker.request, broker.shutting_down = True, -1, 0, False
        broker.incarnations += 1
        broker.incarnation_id = "%032x" % (self.rng.getrandbits(127) | 1 << 124)
        self.sim.mtrace(None, f"broker {broker.id} starts (incarnation {broker.incarnation_id[:6]})")

    def stop_broker(self, broker: SimBroker, why: str) -> None:
        if broker.up:
            broker.up, broker.request = False, 0
            self.sim.mtrace(None, f"broker {broker.id} stops ({why}); its heartbeats stop")

    def node_started(self, node_id: int) -> None:
        broker = self.brokers.get(node_id)
        if broker is not None and broker.combined:
            self.start_broker(broker)

    def node_crashed(self, node_id: int) -> None:
        broker = self.brokers.get(node_id)
        if broker is not None and broker.combined:
            self.stop_broker(broker, "its node crashed")

    def heal(self) -> None:
        for broker in self.brokers.values():
            broker.stalled_until_ms = min(broker.stalled_until_ms, self.sim.clock.now_ms)
            broker.shutting_down = False
            if not broker.up and not broker.combined:
                self.start_broker(broker)

    # -- requests -----------------------------------------------------------------------

    def _beat(self, broker: SimBroker) -> None:
        self.sim.clock.after(self.heartbeat_interval_ms, self._beat, broker)
        self._send(broker)

    def _send(self, broker: SimBroker) -> None:
        sim = self.sim
        if not broker.up or broker.request or broker.stalled_until_ms > sim.clock.now_ms:
            return
        controller = self._target()
        if controller is None:
            return
        self._requests += 1
        request = broker.request = self._requests
        incarnation = broker.incarnations

        def answer(result: object | None) -> None:
            if broker.request == request and broker.incarnations == incarnation and broker.up:
                broker.request = 0
                self._answered(broker, result)

        if broker.epoch == -1:
            op = Operation(f"register broker {broker.id} (incarnation {broker.incarnation_id[:6]})",
                           self._decide_register(broker), answer, _registered(broker.id))
        else:
            op = Operation(f"heartbeat broker {broker.id}@{broker.epoch}" + (" want_shut_down" if broker.shutting_down else ""),
                           self._decide_heartbeat(broker), answer)
        sim.clock.after(self.request_timeout_ms, self._timed_out, broker, request, controller, op)
        controller.submit(op)

    def _target(self) -> SimController | None:
        sim = self.sim
        leaders = [n for n in sim.nodes.values() if n.up and n.core.is_leader]  # type: ignore[union-attr]
        if not leaders:
            return None
        node = sim.leader() if self.rng.random() < 0.9 else self.rng.choice(leaders)
        return node.controller  # type: ignore[union-attr]

    def _timed_out(self, broker: SimBroker, request: int, controller: SimController, op: Operation) -> None:
        if broker.request == request:
            broker.request = 0
            controller.cancel(op)

    def _submit_with_timeout(self, controller: SimController, op: Operation) -> None:
        """An admin request or AllocateProducerIds: the caller gives up after ``request_timeout_ms``."""
        self.sim.clock.after(self.request_timeout_ms, controller.cancel, op)
        controller.submit(op)

    def _decide_register(self, broker: SimBroker):  # type: ignore[no-untyped-def]
        incarnation_id, rack = broker.incarnation_id, broker.rack

        def decide(c: SimController, image, now_ms: int):  # type: ignore[no-untyped-def]
            live = c.heard.live(now_ms, self.sim.session_timeout_ms)
            result, records = decide_register(image, broker.id, incarnation_id, f"h{broker.id}", 9092, rack,
                                              live=live)  # fmt: skip
            return (result, -1), records
        return decide

    def _decide_heartbeat(self, broker: SimBroker):  # type: ignore[no-untyped-def]
        epoch, shutting_down = broker.epoch, broker.shutting_down
        own = self.sim.nodes.get(broker.id) if broker.combined else None

        def decide(c: SimController, image, now_ms: int):  # type: ignore[no-untyped-def]
            offset = own.sm.image.offset if own is not None and own.up else image.offset  # type: ignore[attr-defined]
            result, records = decide_heartbeat(image, broker.id, epoch, offset, False, shutting_down)
            if result.error_code == ErrorCode.NONE:
                c.tracker.touch(broker.id, now_ms)
                c.heard.touch(broker.id, now_ms)
            return result, records
        return decide

    def _answered(self, broker: SimBroker, result: object | None) -> None:
        if result is None:  # NOT_CONTROLLER or lost: try again soon
            self.sim.clock.after(self.rng.randint(10, 100), self._send, broker)
            return
        if isinstance(result, tuple):  # registration: (result, broker epoch)
            registration, epoch = result
            if registration.error_code == ErrorCode.NONE:
                broker.epoch = epoch
                self.sim.clock.after(self.rng.randint(1, 20), self._send, broker)
            return
        code = result.error_code  # type: ignore[attr-defined]
        if code in (ErrorCode.STALE_BROKER_EPOCH, ErrorCode.BROKER_ID_NOT_REGISTERED):
            self.sim.mtrace(None, f"broker {broker.id}: {code.name}, registers again")
            broker.epoch = -1
        elif broker.shutting_down and result.should_shut_down:  # type: ignore[attr-defined]
            if self.sim.healed:
                broker.shutting_down = False
            elif broker.combined:  # the process stops once the answer is handled
                self.sim.clock.after(1, self._stop_node, broker.id)
            else:
                self.stop_broker(broker, "controlled shutdown done")
                self._restart_later(broker)

    # -- faults -------------------------------------------------------------------------

    def _stop_node(self, node_id: int) -> None:
        node = self.sim.nodes[node_id]
        if node.up and not self.sim.healed:
            node.crash("controlled shutdown done")

    def _restart_later(self, broker: SimBroker) -> None:
        def restart() -> None:
            if not broker.up and not broker.combined:
                self.start_broker(broker)
        self.sim.clock.after(self.rng.choice((100, 1000, 3000, 8000)), restart)

    def _fault(self) -> None:
        sim = self.sim
        if sim.healed:
            return
        sim.clock.after(self.rng.randint(1, 2 * self.mean_fault_gap_ms), self._fault)
        up = [b for b in self.brokers.values() if b.up and not b.shutting_down]
        if not up:
            return
        broker = self.rng.choice(up)
        kind = self.rng.choice(("stop", "stall", "shutdown"))
        if kind == "shutdown" and (broker.epoch == -1 or broker.combined and self.rng.random() < 0.7):
            kind = "stall"  # a combined node's graceful stop takes a quorum member down too: rarer
        if kind == "stop" and not broker.combined:
            self.stop_broker(broker, "nemesis")
            self._restart_later(broker)
        elif kind == "stall" or kind == "stop":
            stall_ms = self.rng.choice((sim.session_timeout_ms // 2, sim.session_timeout_ms * 2, 10_000))
            broker.stalled_until_ms = sim.clock.now_ms + stall_ms
            sim.mtrace(None, f"NEMESIS broker {broker.id} stops heartbeating for {stall_ms}ms")
        else:
            broker.shutting_down = True
            sim.mtrace(None, f"NEMESIS broker {broker.id} begins a controlled shutdown")

    # -- admin client -------------------------------------------------------------------

    def start_admin(self, interval_ms: int) -> None:
        self.sim.clock.after(self.rng.randint(0, interval_ms), self._admin, interval_ms)

    def _admin(self, interval_ms: int) -> None:
        sim = self.sim
        if sim.healed:
            return
        sim.clock.after(self.rng.randint(1, interval_ms), self._admin, interval_ms)
        controller = self._target()
        if controller is None:
            return
        rng, name = self.rng, self.rng.choice(TOPIC_NAMES)
        kind = rng.choices(("create", "delete", "partitions", "producer ids"), (5, 2, 2, 3))[0]
        if kind == "producer ids":
            self._allocate_producer_ids(controller, rng.choice(list(self.brokers.values())))
            return
        if kind == "create":
            partitions, rf = rng.randint(1, 4), rng.choice((1, 1, 2, 3))
            what = f"create topic {name} ({partitions} partitions, replication factor {rf})"

            def decide(c: SimController, image, now_ms: int):  # type: ignore[no-untyped-def]
                return decide_create_topics(image, [(name, partitions, rf, {})], DEFAULTS, self._topic_id)
        elif kind == "delete":
            what = f"delete topic {name}"

            def decide(c: SimController, image, now_ms: int):  # type: ignore[no-untyped-def]
                return decide_delete_topics(image, [name])
        else:
            more = rng.randint(1, 3)
            what = f"add {more} partition(s) to {name}"

            def decide(c: SimController, image, now_ms: int):  # type: ignore[no-untyped-def]
                topic = image.topics.get(name)
                total = (len(topic.partitions) if topic is not None else 0) + more
                return decide_create_partitions(image, [(name, total)], DEFAULTS.max_partitions)
        self._submit_with_timeout(controller, Operation(what, decide, lambda result: None))

    def _allocate_producer_ids(self, controller: SimController, broker: SimBroker) -> None:
        if not broker.up or broker.epoch == -1:
            return
        epoch = broker.epoch

        def decide(c: SimController, image, now_ms: int):  # type: ignore[no-untyped-def]
            return decide_allocate_producer_ids(image, broker.id, epoch)

        def done(result: object | None) -> None:
            if isinstance(result, ProducerIdsResult) and result.error_code == ErrorCode.NONE:
                self.sim.metadata_checker.producer_ids_allocated(broker.id, result.producer_id_start,
                                                                 result.producer_id_len)  # fmt: skip

        self._submit_with_timeout(controller, Operation(f"allocate producer ids to broker {broker.id}@{epoch}",
                                                        decide, done))  # fmt: skip

    def _topic_id(self) -> str:
        return "%032x" % (self.rng.getrandbits(127) | 1 << 124)


def _registered(broker_id: int):  # type: ignore[no-untyped-def]
    """At commit: the broker epoch from the image, as QuorumController.register returns it."""
    def committed(c: SimController, result: object) -> object:
        now_ms = c.sim.clock.now_ms
        c.tracker.touch(broker_id, now_ms)
        c.heard.touch(broker_id, now_ms)
        return result[0], c.image.brokers[broker_id].epoch  # type: ignore[index]
    return committed
