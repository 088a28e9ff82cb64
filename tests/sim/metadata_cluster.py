"""One seed's run of the controller and metadata replay on the Raft simulation.

The Raft simulation (cluster.py) as it is, faults and all, with three
changes: each node's state machine is the real MetadataStateMachine
(metadata_machine.py); the node that leads acts as the active controller
(controller.py) for simulated brokers and an admin client (brokers.py)
instead of the Raft clients' payloads; and every change of a node's image
goes through the metadata checkers (metadata_checkers.py). The healed phase
must also see every broker registered and unfenced in the leader's image.

Controller failovers come from the Raft nemesis (crashes, partitions,
resignations, stalls); broker failures from the brokers' own faults, and a
broker that is a simulated node fails with its node.

The trace keeps the controller's operations, brokers, faults and Raft
role changes; ``raft_trace`` adds every message and Ready.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

from riverlog.broker.controller.raft.messages import Snapshot

from tests.sim.brokers import Brokers
from tests.sim.cluster import SimOptions, SimResult, Simulation
from tests.sim.controller import SimController
from tests.sim.metadata_checkers import MetadataChecker
from tests.sim.metadata_machine import MetadataNodeMachine
from tests.sim.node import SimNode

KEPT_IN_TRACE = ("role ->", "CRASH", "start (", "NEMESIS", "HEAL", "VIOLATION", "healed", "snapshot taken")


class MetadataSimulation(Simulation):
    def __init__(self, seed: int, options: SimOptions | None = None, trace: Callable[[str], None] | None = None,
                 voters: int | None = None, observers: int | None = None, raft_trace: bool = False) -> None:
        self.raft_trace = raft_trace
        super().__init__(seed, replace(options or SimOptions(), clients=False), trace, voters, observers)
        rng = random.Random(self.rng.random())
        self.session_timeout_ms = rng.choice((1000, 2000, 4000))  # broker.session.timeout.ms, scaled down
        self.metadata_checker = MetadataChecker(self.checker)
        self.operations = 0  # entries the controllers proposed
        for node in self.nodes.values():
            node.controller = None  # type: ignore[attr-defined]
        self.brokers = Brokers(self, random.Random(rng.random()), rng.randint(2, 6))
        self.admin_interval_ms = rng.choice((100, 300, 1000))

    # -- trace --------------------------------------------------------------------------

    def trace(self, node: SimNode | None, what: str) -> None:
        if self.raft_trace or what.startswith(KEPT_IN_TRACE):
            super().trace(node, what)

    def mtrace(self, node: SimNode | None, what: str) -> None:
        """A line of the metadata trace (controller operations, brokers)."""
        if self.tracing:
            super().trace(node, what)

    # -- hooks --------------------------------------------------------------------------

    def restore_machine(self, node_id: int, snapshot: Snapshot | None) -> MetadataNodeMachine:
        return MetadataNodeMachine.for_node(node_id, snapshot)

    def node_started(self, node: SimNode) -> None:
        node.controller = SimController(self, node)  # type: ignore[attr-defined]
        self.metadata_checker.restarted(node.id)
        self.node_applied(node)
        self.brokers.node_started(node.id)

    def node_applied(self, node: SimNode) -> None:
        self.metadata_checker.image_changed(node.id, node.sm.image, node.sm.applied_end_offset)  # type: ignore[attr-defined]

    def node_settled(self, node: SimNode) -> None:
        super().node_settled(node)
        controller = node.controller  # type: ignore[attr-defined]
        if controller is not None:
            controller.settled()

    def node_crashed(self, node: SimNode) -> None:
        super().node_crashed(node)
        self.brokers.node_crashed(node.id)

    def _tick(self, node: SimNode) -> None:
        super()._tick(node)
        if node.up and node.paused_until_ms <= self.clock.now_ms:
            node.controller.poll()  # type: ignore[attr-defined]

    # -- the run ------------------------------------------------------------------------

    def _run(self) -> None:
        self.clock.at(0, self._start_metadata)
        super()._run()

    def _start_metadata(self) -> None:
        self.brokers.start()
        self.brokers.start_admin(self.admin_interval_ms)

    def heal(self) -> None:
        super().heal()
        self.brokers.heal()

    def run(self) -> SimResult:
        result = super().run()
        brokers = self.brokers.brokers.values()
        result.events += (f", {self.operations} controller entries proposed, {len(brokers)} brokers "
                          f"({sum(b.incarnations for b in brokers)} incarnations), session timeout "
                          f"{self.session_timeout_ms}ms")
        return result

    def _is_live(self) -> bool:
        if not super()._is_live():
            return False
        leader = self.leader()
        assert leader is not None
        image = leader.sm.image  # type: ignore[attr-defined]
        for broker in self.brokers.brokers.values():
            registered = image.brokers.get(broker.id)
            if not broker.up or broker.epoch == -1 or registered is None or registered.epoch != broker.epoch \
                    or registered.fenced:
                return False
        return True

    def _liveness_report(self) -> str:
        leader = self.leader()
        image = leader.sm.image if leader is not None else None  # type: ignore[attr-defined]
        brokers = "; ".join(
            f"b{b.id} {'up' if b.up else 'down'} epoch {b.epoch} image "
            f"{image.brokers.get(b.id) if image is not None else None}"
            for b in self.brokers.brokers.values()
        )
        return super()._liveness_report() + "; brokers: " + brokers
