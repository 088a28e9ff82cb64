"""Election time: ticks from a leader's crash to the next leader.

A healthy cluster (perfect network, small delays) elects a leader and
commits a little; then the leader crashes, and the clock runs until another
node leads a later epoch. Over many seeds: median and p99, in ticks and in
simulated milliseconds.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from riverlog.broker.controller.raft.core import Role

from tests.sim.checkers import Violation
from tests.sim.cluster import SimOptions, Simulation
from tests.sim.network import NetworkQuality

SETTLE_MS = 5_000
BOUND_MS = 60_000


def election_ms(seed: int, trace: Callable[[str], None] | None = None, restart_after_ms: int | None = None) -> int:
    """Simulated ms from the leader's crash to a new leader (a Violation if
    none within BOUND_MS, or if a safety rule breaks on the way). With
    ``restart_after_ms`` the old leader comes back after that long."""
    sim = Simulation(seed, SimOptions(faults=False, clients=False), trace=trace)
    sim.network.quality = NetworkQuality(delay_min_ms=1, delay_max_ms=5)
    clock = sim.clock
    for node in sim.nodes.values():
        clock.at(sim.rng.randint(0, sim.tick_ms - 1), sim._tick, node)
        node.start()
    clock.run_until(SETTLE_MS)
    old = sim.leader()
    if old is None:
        raise Violation(seed, clock.now_ms, "liveness", f"no leader {SETTLE_MS}ms into a healthy run")
    assert old.core is not None
    old_epoch = old.core.epoch
    crashed_at = clock.now_ms
    sim.nemesis.crashed = lambda node: None  # type: ignore[method-assign] # it stays down
    old.crash("benchmark")
    if restart_after_ms is not None:
        clock.after(restart_after_ms, old.start)

    def new_leader() -> bool:
        return any(n.up and n.core.role is Role.LEADER and n.core.epoch > old_epoch  # type: ignore[union-attr]
                   for n in sim.nodes.values())

    if not clock.run_until(crashed_at + BOUND_MS, new_leader):
        raise Violation(seed, clock.now_ms, "liveness", f"no new leader {BOUND_MS}ms after the leader crashed")
    return clock.now_ms - crashed_at


def summarize(samples_ms: list[int], tick_ms: int) -> str:
    samples = sorted(samples_ms)
    median = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))]
    return (f"{len(samples)} elections after a leader crash: median {median / tick_ms:.1f} ticks "
            f"({median:.0f} ms), p99 {p99 / tick_ms:.1f} ticks ({p99} ms)")
