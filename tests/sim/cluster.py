"""One seed's run: the cluster, its faults, the checkers, then liveness.

Everything random comes from ``random.Random(seed)`` (and per-node streams
derived from it), events run on the simulated clock, and nothing depends on
hashing or real time: a seed always replays the same trace.

A run has two phases. During ``duration_ms`` the nemesis injects faults
while clients propose. Then every fault heals (perfect network, every node
up, no more crashes or resignations) and within ``liveness_ticks`` a leader
must be known to every node, every outstanding proposal must be
acknowledged and every node must have applied up to the leader's high
watermark; otherwise that is a liveness violation.

Connections are modelled as a real driver sees them: a message sent across
a restart of either end is lost; a message to a node that is down, in
flight when its receiver restarts, or a crash of a peer it can reach,
makes the driver call ``core.peer_unreachable`` (refused or reset), while
a partition is silent. A stalled node (the nemesis's pause) neither ticks
nor reads its socket until it resumes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from riverlog.broker.controller.raft.core import RaftConfig, Role
from riverlog.broker.controller.raft.messages import Message, Snapshot

from tests.sim.checkers import Checker, Violation
from tests.sim.client import Clients
from tests.sim.clock import SimClock
from tests.sim.disk import ReadyContractError
from tests.sim.network import NetworkQuality, SimNetwork
from tests.sim.nemesis import Nemesis
from tests.sim.state_machine import StateMachine
from tests.sim.node import SimNode
from tests.sim.trace import describe_message

FULL_CHECK_EVERY_MS = 2_000


@dataclass
class SimOptions:
    duration_ms: int = 15_000  # the faulty phase
    liveness_ticks: int = 600  # bound on the healed phase, in ticks of tick_ms
    faults: bool = True
    clients: bool = True


@dataclass
class SimResult:
    seed: int
    violation: Violation | None
    end_ms: int
    events: str  # a one-line summary: nodes, crashes, messages, commits


class Simulation:
    def __init__(self, seed: int, options: SimOptions | None = None, trace: Callable[[str], None] | None = None,
                 voters: int | None = None, observers: int | None = None) -> None:
        self.seed = seed
        self.options = options or SimOptions()
        self._trace = trace
        self.tracing = trace is not None
        self.rng = random.Random(seed)
        rng = self.rng
        self.clock = SimClock()
        self.network = SimNetwork(self.clock, random.Random(rng.random()), self._deliver)
        n_voters = voters if voters is not None else rng.choice((3, 5))
        n_observers = observers if observers is not None else rng.choice((0, 0, 1, 2))
        self.voter_ids = list(range(n_voters))
        voter_set = frozenset(self.voter_ids)
        self.tick_ms = 50
        self.checker = Checker(seed, lambda: self.clock.now_ms, self._durable_holders, n_voters // 2 + 1)
        snapshot_every = rng.choice((5, 20, 100, 1_000_000))
        self.nodes: dict[int, SimNode] = {}
        for node_id in range(n_voters + n_observers):
            config = RaftConfig(node_id=node_id, voters=voter_set, tick_ms=self.tick_ms)
            self.nodes[node_id] = SimNode(self, config, snapshot_every)
        self.clients = Clients(self, random.Random(rng.random()), rng.randint(1, 3), rng.randint(5, 60))
        self.nemesis = Nemesis(self, random.Random(rng.random()))
        self.healed = False

    # -- plumbing ------------------------------------------------------------------

    def trace(self, node: SimNode | None, what: str) -> None:
        if self._trace is not None:
            who = f"n{node.id} {node.describe():<16}" if node is not None else f"{'--':<20}"
            self._trace(f"{self.clock.now_ms:>8}ms {who} {what}")

    def send(self, node: SimNode, message: Message) -> None:
        dst = self.nodes.get(message.dst)
        if dst is None:
            self.checker.fail("messages go to known nodes", f"node {node.id} sent {message}")
        if not dst.up:  # connection refused, one round trip later
            self.clock.after(self.network.quality.delay_max_ms, self._unreachable, node, node.incarnation, dst.id)
            return
        self.network.send(message, (node.incarnation, dst.incarnation))

    def _deliver(self, message: Message, tag: object) -> None:
        src, dst = self.nodes[message.src], self.nodes[message.dst]
        src_incarnation, dst_incarnation = tag  # type: ignore[misc]
        if src_incarnation != src.incarnation:
            return  # the sender restarted: its connection is gone
        if dst_incarnation != dst.incarnation or not dst.up:
            self._unreachable(src, src_incarnation, dst.id)  # connection reset
            return
        if dst.paused_until_ms > self.clock.now_ms:  # the process is stalled: the message waits in its socket
            self.clock.at(dst.paused_until_ms, self._deliver, message, tag)
            return
        if self.tracing:
            self.trace(dst, f"<- {describe_message(message)}")
        dst.step(message)

    def _unreachable(self, node: SimNode, incarnation: int, peer: int) -> None:
        """The driver tells the core a connection to ``peer`` was refused or
        reset (a partition, by contrast, is silent)."""
        if node.up and node.incarnation == incarnation:
            if node.paused_until_ms > self.clock.now_ms:
                self.clock.at(node.paused_until_ms, self._unreachable, node, incarnation, peer)
                return
            self.trace(node, f"peer {peer} unreachable")
            node.peer_unreachable(peer)

    def _durable_holders(self, offset: int, epoch: int) -> int:
        count = 0
        for node_id in self.voter_ids:
            disk = self.nodes[node_id].disk
            if offset < disk.log_start_offset:
                count += 1
            elif offset < disk.log_end_offset and disk.entries[offset - disk.log_start_offset].epoch == epoch:
                count += 1
        return count

    # -- hooks a richer simulation (metadata_cluster.py) extends ---------------------

    def restore_machine(self, node_id: int, snapshot: Snapshot | None) -> StateMachine:
        """A node's state machine, empty or from a snapshot."""
        return StateMachine.restore(snapshot)

    def node_started(self, node: SimNode) -> None:
        """A node (re)started from its disk, before its first Ready."""

    def node_applied(self, node: SimNode) -> None:
        """A node's state machine changed (entries applied or a snapshot installed)."""

    def node_settled(self, node: SimNode) -> None:
        """A node has no more Readys for now."""
        self.clients.check(node)

    def node_crashed(self, node: SimNode) -> None:
        """Its open connections reset: every peer it can still reach hears so."""
        self.clients.check(node)
        self.nemesis.crashed(node)
        for peer in self.nodes.values():
            if peer is not node and peer.up and (node.id, peer.id) not in self.network.blocked:
                self.clock.after(self.rng.randint(1, self.network.quality.delay_max_ms), self._unreachable, peer,
                                 peer.incarnation, node.id)

    def leader(self) -> SimNode | None:
        leaders = [n for n in self.nodes.values() if n.up and n.core.role is Role.LEADER]  # type: ignore[union-attr]
        return max(leaders, key=lambda n: n.core.epoch) if leaders else None  # type: ignore[union-attr]

    # -- the run -------------------------------------------------------------------

    def run(self) -> SimResult:
        try:
            self._run()
            violation = None
        except Violation as v:
            violation = v
        except ReadyContractError as e:
            violation = Violation(self.seed, self.clock.now_ms, "the Ready contract (messages.py)", str(e))
        except Exception as e:  # noqa: BLE001 - an assertion failing in the core is a finding too
            import traceback

            where = traceback.extract_tb(e.__traceback__)[-1]
            violation = Violation(self.seed, self.clock.now_ms, "no exception escapes the core",
                                  f"{type(e).__name__}: {e} at {where.filename}:{where.lineno}")
        if violation is not None:
            self.trace(None, f"VIOLATION {violation}")
        crashes = sum(n.crashes for n in self.nodes.values())
        summary = (f"{len(self.voter_ids)} voters, {len(self.nodes) - len(self.voter_ids)} observers, "
                   f"{crashes} crashes, {self.network.sent} messages ({self.network.dropped} dropped), "
                   f"{len(self.checker.history)} committed, {len(self.checker.acked)} acknowledged, "
                   f"{len(self.checker.leaders)} epochs with a leader")
        return SimResult(self.seed, violation, self.clock.now_ms, summary)

    def _run(self) -> None:
        clock, options = self.clock, self.options
        for node in self.nodes.values():
            clock.at(self.rng.randint(0, self.tick_ms - 1), self._tick, node)
            node.start()
        if options.clients:
            self.clients.start(interval_ms=self.rng.choice((20, 100, 400)))
        if options.faults:
            self.nemesis.start()
        clock.at(FULL_CHECK_EVERY_MS, self._full_check)
        clock.run_until(options.duration_ms)
        self.heal()
        deadline = clock.now_ms + options.liveness_ticks * self.tick_ms
        self._live = False
        clock.after(self.tick_ms, self._probe)
        if not clock.run_until(deadline, lambda: self._live):
            self.checker.fail("liveness", self._liveness_report())
        self._full_check(again=False)
        self.checker.acked_are_committed()
        self.trace(None, f"healed and live at {clock.now_ms}ms")

    def _tick(self, node: SimNode) -> None:
        self.clock.after(self.tick_ms, self._tick, node)
        if node.paused_until_ms <= self.clock.now_ms:
            node.tick()

    def _full_check(self, again: bool = True) -> None:
        for node in self.nodes.values():
            if node.up:
                node.full_check()
        if again:
            self.clock.after(FULL_CHECK_EVERY_MS, self._full_check)

    def heal(self) -> None:
        self.healed = True
        self.trace(None, "HEAL: perfect network, every node up, no more faults")
        self.network.heal()
        self.network.quality = NetworkQuality.perfect()
        self.clients.producing = False
        for node in self.nodes.values():
            node.crash_armed = False
            node.paused_until_ms = min(node.paused_until_ms, self.clock.now_ms)
            if not node.up:
                node.start()

    def _probe(self) -> None:
        self._live = self._is_live()
        if not self._live:
            self.clock.after(self.tick_ms, self._probe)

    def _is_live(self) -> bool:
        leader = self.leader()
        if leader is None or self.clients.outstanding():
            return False
        core = leader.core
        assert core is not None
        hw = core.high_watermark
        if hw != core.log_end_offset:
            return False
        for node in self.nodes.values():
            c = node.core
            if c is None or c.leader_id != leader.id or c.epoch != core.epoch or c.high_watermark != hw:
                return False
            if node.sm.applied_end_offset != hw:
                return False
        return True

    def _liveness_report(self) -> str:
        leader = self.leader()
        states = "; ".join(
            f"n{n.id} {n.describe()} leader {n.core.leader_id} hw {n.core.high_watermark} "  # type: ignore[union-attr]
            f"leo {n.core.log_end_offset} applied {n.sm.applied_end_offset}"  # type: ignore[union-attr]
            for n in self.nodes.values() if n.up
        )
        return (f"not live {self.options.liveness_ticks} ticks after healing: leader "
                f"{leader.id if leader else None}, {self.clients.outstanding()} proposals outstanding; {states}")
