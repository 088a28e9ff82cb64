"""A hand-driven quorum for rule tests: cores, an outbox, and explicit
delivery, so a test decides exactly which message arrives when (the seeded
random version of this is tests/sim)."""

from __future__ import annotations

import random
from collections.abc import Callable

from riverlog.broker.controller.raft.core import RaftCore
from riverlog.broker.controller.raft.messages import Entry, HardState, Message, Ready
from riverlog.broker.controller.raft.roles import RaftConfig, Role


class Quorum:
    def __init__(self, voters=(1, 2, 3), observers=(), seed: int = 0, **config) -> None:
        self.voters = frozenset(voters)
        self.configs = {n: RaftConfig(n, self.voters, **config) for n in (*voters, *observers)}
        self.nodes: dict[int, RaftCore] = {n: RaftCore(c, random.Random(seed + n)) for n, c in self.configs.items()}
        self.outbox: list[Message] = []
        self.readies: dict[int, list[Ready]] = {n: [] for n in self.nodes}  # every ready, in order
        self.applied: dict[int, list[Entry]] = {n: [] for n in self.nodes}

    def __getitem__(self, node: int) -> RaftCore:
        return self.nodes[node]

    def drain(self, node: int) -> None:
        core = self.nodes[node]
        while ready := core.ready():
            self.readies[node].append(ready)
            core.persisted(ready)
            self.outbox.extend(ready.messages)
            self.applied[node].extend(ready.committed)

    def tick(self, node: int, times: int = 1) -> None:
        for _ in range(times):
            self.nodes[node].tick()
            self.drain(node)

    def deliver(self, accept: Callable[[Message], bool] = lambda m: True, rounds: int = 50) -> int:
        """Deliver queued messages that ``accept`` lets through (dropping the
        rest), until none is left or ``rounds`` pass; the number delivered."""
        delivered = 0
        for _ in range(rounds):
            batch, self.outbox = self.outbox, []
            if not batch:
                break
            for m in batch:
                if accept(m) and m.dst in self.nodes:
                    self.nodes[m.dst].step(m)
                    self.drain(m.dst)
                    delivered += 1
        return delivered

    def elect(self, node: int) -> None:
        """Run ``node``'s election timer out and deliver everything."""
        core = self.nodes[node]
        while core.role not in (Role.PROSPECTIVE, Role.CANDIDATE, Role.LEADER):
            self.tick(node)
        self.deliver()
        assert core.role is Role.LEADER, core.role

    def restart(self, node: int, keep_entries: int | None = None) -> RaftCore:
        """A new core from what ``node`` persisted (all of it, or its first
        ``keep_entries`` log entries)."""
        hard = HardState()
        entries: list[Entry] = []
        snapshot = None
        for ready in self.readies[node]:
            if ready.snapshot is not None:
                snapshot, entries = ready.snapshot, []
            if ready.truncate_to is not None:
                entries = [e for e in entries if e.offset < ready.truncate_to]
            entries += ready.entries
            if ready.hard_state is not None:
                hard = ready.hard_state
        if keep_entries is not None:
            entries = entries[:keep_entries]
        core = RaftCore(self.configs[node], random.Random(node), hard, snapshot, entries)
        self.nodes[node] = core
        self.readies[node] = [Ready(hard_state=hard, snapshot=snapshot, entries=entries)]
        return core

    def leaders(self) -> list[int]:
        return [n for n, c in self.nodes.items() if c.role is Role.LEADER]
