"""Clients that propose payloads to whoever is leader.

A client sends to the node it believes leads (first a random voter); a
NotLeaderError points it at the leader that node knows, and it tries again
later. A proposal is *acknowledged* once its offset is below the high
watermark of the leader it went to, while that node still leads in the
epoch it proposed in and the entry there still carries that epoch: what a
real controller would answer its caller on. A proposal whose leader lost
its epoch first is unknown, and the client proposes the payload again
(a payload may so commit twice; only acknowledged ones are promised).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from riverlog.broker.controller.raft.core import NotLeaderError, Role

if TYPE_CHECKING:
    from tests.sim.cluster import Simulation
    from tests.sim.node import SimNode


@dataclass
class Pending:
    client: int
    data: bytes
    node: int
    incarnation: int
    epoch: int
    offset: int


class Clients:
    def __init__(self, sim: Simulation, rng: random.Random, count: int, proposals_each: int) -> None:
        self.sim = sim
        self._rng = rng
        self.count = count
        self.remaining = [proposals_each] * count  # new payloads each client still has to send
        self.retry: list[list[bytes]] = [[] for _ in range(count)]  # payloads whose fate is unknown
        self.sequence = [0] * count
        self.guess = [-1] * count  # the node each client believes leads
        self.pending: dict[int, list[Pending]] = {}  # node -> proposals in flight there
        self.acked = 0
        self.producing = True

    def outstanding(self) -> int:
        """Payloads not yet acknowledged (in flight or to be retried)."""
        return sum(len(p) for p in self.pending.values()) + sum(len(r) for r in self.retry)

    def start(self, interval_ms: int) -> None:
        for client in range(self.count):
            self.sim.clock.after(self._rng.randint(0, interval_ms), self._act, client, interval_ms)

    def _act(self, client: int, interval_ms: int) -> None:
        self.sim.clock.after(self._rng.randint(1, interval_ms), self._act, client, interval_ms)
        batch = self.retry[client][:3]
        del self.retry[client][:3]
        while len(batch) < 3 and self.producing and self.remaining[client] and self._rng.random() < 0.7:
            self.remaining[client] -= 1
            self.sequence[client] += 1
            batch.append(b"c%d-%d" % (client, self.sequence[client]))
        if not batch:
            return
        node = self._target(client)
        if node is None:
            self.retry[client][:0] = batch
            return
        core = node.core
        assert core is not None
        try:
            last = node.propose(batch)
        except NotLeaderError:
            self.guess[client] = core.leader_id if core.leader_id not in (-1, node.id) else -1
            self.retry[client][:0] = batch
            return
        if node.core is None:  # crashed while persisting the proposal
            self.retry[client][:0] = batch
            return
        first = last - len(batch) + 1
        self.sim.trace(node, f"client {client} proposed {[d.decode() for d in batch]} at [{first}..{last}]")
        pending = self.pending.setdefault(node.id, [])
        pending.extend(Pending(client, data, node.id, node.incarnation, core.epoch, first + i)
                       for i, data in enumerate(batch))
        self.check(node)

    def _target(self, client: int) -> SimNode | None:
        nodes = self.sim.nodes
        guess = self.guess[client]
        now_ms = self.sim.clock.now_ms
        if guess != -1 and nodes[guess].up and nodes[guess].paused_until_ms <= now_ms and self._rng.random() < 0.9:
            return nodes[guess]
        up = [n for n in nodes.values() if n.up and n.voter and n.paused_until_ms <= now_ms]
        if not up:
            return None
        node = self._rng.choice(up)
        self.guess[client] = node.id
        return node

    def check(self, node: SimNode) -> None:
        """Acknowledges or gives up the proposals in flight at ``node``."""
        pending = self.pending.get(node.id)
        if not pending:
            return
        core = node.core
        keep = []
        for p in pending:
            gone = core is None or node.incarnation != p.incarnation
            if gone or core.role is not Role.LEADER or core.epoch != p.epoch:  # type: ignore[union-attr]
                self._give_up(p)
            elif core.high_watermark > p.offset:  # type: ignore[union-attr]
                if entry_at(node, p.offset) != (p.epoch, p.data):
                    self._give_up(p)
                    continue
                self.acked += 1
                self.sim.checker.ack(p.offset, p.epoch, p.data)
                self.sim.trace(node, f"acknowledged {p.data.decode()} at offset {p.offset}")
            else:
                keep.append(p)
        self.pending[node.id] = keep

    def _give_up(self, p: Pending) -> None:
        self.retry[p.client].append(p.data)


def entry_at(node: SimNode, offset: int) -> tuple[int, bytes] | None:
    """(epoch, data) at ``offset`` in the node's log, or in its state
    machine when a snapshot has already taken the log there."""
    core = node.core
    assert core is not None
    if offset >= core.log_start_offset:
        entries = core.entries_from(offset)
        return (entries[0].epoch, entries[0].data) if entries else None
    for applied_offset, epoch, data in reversed(node.sm.applied):
        if applied_offset == offset:
            return epoch, data
        if applied_offset < offset:
            break
    return None
