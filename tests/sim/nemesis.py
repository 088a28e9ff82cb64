"""The fault schedule, drawn from the seed.

Every so often the nemesis picks one fault: crash a node (at once, or in
the middle of its next Ready) and restart it later; isolate a node; split
the voters into a minority and a majority; cut one direction of a link;
flap a link on and off; change the network's loss, delay and duplication;
make the leader resign; stall a node's process for a while (a stale
leader keeps believing it leads). Partitions heal on their own after a while. Once
the simulation heals, the nemesis does nothing more.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from tests.sim.network import NetworkQuality

if TYPE_CHECKING:
    from tests.sim.cluster import Simulation
    from tests.sim.node import SimNode


class Nemesis:
    def __init__(self, sim: Simulation, rng: random.Random) -> None:
        self.sim = sim
        self.rng = rng
        self.mean_gap_ms = rng.choice((200, 1000, 3000))
        self.faults = [
            (self.crash, 3), (self.crash_mid_ready, 3), (self.isolate, 2), (self.split, 2),
            (self.one_way, 1), (self.flap, 1), (self.quality, 2), (self.resign, 2), (self.heal_network, 1),
            (self.pause, 1),
        ]
        self._weights = [w for _, w in self.faults]

    def start(self) -> None:
        self.sim.network.quality = NetworkQuality.random(self.rng)
        self._schedule()

    def _schedule(self) -> None:
        self.sim.clock.after(self.rng.randint(1, 2 * self.mean_gap_ms), self._strike)

    def _strike(self) -> None:
        if self.sim.healed:
            return
        self._schedule()
        fault = self.rng.choices(self.faults, self._weights)[0][0]
        fault()

    def _note(self, what: str) -> None:
        self.sim.trace(None, f"NEMESIS {what}")

    def _later(self, action, *args) -> None:  # type: ignore[no-untyped-def]
        """An undo that only runs while the faulty phase lasts."""
        def run() -> None:
            if not self.sim.healed:
                action(*args)
        self.sim.clock.after(self.rng.randint(200, 6000), run)

    # -- crashes ---------------------------------------------------------------------

    def _victim(self) -> SimNode | None:
        up = [n for n in self.sim.nodes.values() if n.up]
        down_voters = sum(1 for n in self.sim.nodes.values() if n.voter and not n.up)
        if down_voters > len(self.sim.voter_ids) // 2:
            up = [n for n in up if not n.voter]  # keep the chance of a live majority
        leader = self.sim.leader()
        if leader is not None and leader in up and self.rng.random() < 0.4:
            return leader
        return self.rng.choice(up) if up else None

    def crash(self) -> None:
        node = self._victim()
        if node is not None:
            node.crash("nemesis")

    def crash_mid_ready(self) -> None:
        node = self._victim()
        if node is not None:
            self._note(f"node {node.id} will crash in the middle of its next Ready")
            node.crash_armed = True

    def crashed(self, node: SimNode) -> None:
        def restart() -> None:
            if not node.up:
                node.start()
        self.sim.clock.after(self.rng.choice((10, 100, 1000, 5000)), restart)

    # -- partitions ------------------------------------------------------------------

    def _ids(self) -> list[int]:
        return list(self.sim.nodes)

    def isolate(self) -> None:
        node = self.rng.choice(self._ids())
        self._note(f"isolate node {node}")
        self.sim.network.split({node}, self._ids())
        self._later(self.heal_network)

    def split(self) -> None:
        voters = list(self.sim.voter_ids)
        self.rng.shuffle(voters)
        side = set(voters[: len(voters) // 2])  # a minority of the voters
        side.update(n for n in self._ids() if n not in self.sim.voter_ids and self.rng.random() < 0.5)
        self._note(f"split {sorted(side)} from the rest")
        self.sim.network.split(side, self._ids())
        self._later(self.heal_network)

    def one_way(self) -> None:
        src, dst = self.rng.sample(self._ids(), 2)
        self._note(f"cut the link {src}->{dst}")
        self.sim.network.cut(src, dst)
        self._later(self.sim.network.restore, src, dst)

    def flap(self) -> None:
        a, b = self.rng.sample(self._ids(), 2)
        period_ms = self.rng.choice((30, 200, 1000))
        flips = self.rng.randint(4, 20)
        self._note(f"flap the link {a}<->{b} every {period_ms}ms, {flips} times")
        network = self.sim.network

        def flip(left: int) -> None:
            if self.sim.healed:
                return
            if (a, b) in network.blocked:
                network.restore(a, b)
                network.restore(b, a)
            elif left > 0:
                network.cut(a, b)
                network.cut(b, a)
            if left > 0:
                self.sim.clock.after(period_ms, flip, left - 1)
        flip(flips)

    def heal_network(self) -> None:
        self._note("partitions heal")
        self.sim.network.heal()

    # -- the rest --------------------------------------------------------------------

    def quality(self) -> None:
        q = NetworkQuality.random(self.rng)
        self._note(f"network now {q}")
        self.sim.network.quality = q

    def pause(self) -> None:
        node = self._victim()
        if node is not None:
            stall_ms = self.rng.choice((500, 2500, 6000))
            self._note(f"node {node.id} stalls for {stall_ms}ms")
            node.paused_until_ms = self.sim.clock.now_ms + stall_ms

    def resign(self) -> None:
        leader = self.sim.leader()
        if leader is not None and leader.paused_until_ms <= self.sim.clock.now_ms:
            self._note(f"leader {leader.id} resigns")
            leader.resign()
