"""A simulated network: per-message loss, delay, reordering, duplication,
and partitions, all drawn from the seed.

Links are directed, so a one-way partition is one blocked (src, dst) pair.
A link is checked when a message is sent and again when it arrives: a
message in flight when a partition starts is lost, as on a cut connection.
Reordering comes from the delay spread plus an occasional long straggler.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from riverlog.broker.controller.raft.messages import Message

from tests.sim.clock import SimClock


@dataclass
class NetworkQuality:
    loss: float = 0.0  # probability that a message is dropped
    duplicate: float = 0.0  # probability that a message arrives twice
    delay_min_ms: int = 1
    delay_max_ms: int = 10
    straggler: float = 0.0  # probability of a long extra delay (reordering)
    straggler_max_ms: int = 500

    @classmethod
    def perfect(cls) -> NetworkQuality:
        return cls()

    @classmethod
    def random(cls, rng: random.Random) -> NetworkQuality:
        delay_min_ms = rng.randint(0, 5)
        return cls(
            loss=rng.choice((0.0, 0.0, 0.01, 0.05, 0.2)),
            duplicate=rng.choice((0.0, 0.01, 0.05)),
            delay_min_ms=delay_min_ms,
            delay_max_ms=delay_min_ms + rng.choice((2, 10, 50, 200)),
            straggler=rng.choice((0.0, 0.01, 0.05)),
            straggler_max_ms=rng.choice((100, 500, 3000)),
        )


class SimNetwork:
    def __init__(self, clock: SimClock, rng: random.Random, deliver: Callable[[Message, object], None]) -> None:
        self._clock = clock
        self._rng = rng
        self._deliver = deliver
        self.quality = NetworkQuality.perfect()
        self.blocked: set[tuple[int, int]] = set()  # directed (src, dst) links that carry nothing
        self.sent = 0
        self.dropped = 0

    def send(self, message: Message, tag: object = None) -> None:
        """``tag`` comes back with the message on delivery (the cluster uses
        it to drop messages across a restart, as a broken connection would)."""
        self.sent += 1
        q, rng = self.quality, self._rng
        if (message.src, message.dst) in self.blocked or (q.loss and rng.random() < q.loss):
            self.dropped += 1
            return
        copies = 2 if q.duplicate and rng.random() < q.duplicate else 1
        for _ in range(copies):
            delay_ms = rng.randint(q.delay_min_ms, q.delay_max_ms)
            if q.straggler and rng.random() < q.straggler:
                delay_ms += rng.randint(0, q.straggler_max_ms)
            self._clock.after(delay_ms, self._arrive, message, tag)

    def _arrive(self, message: Message, tag: object) -> None:
        if (message.src, message.dst) in self.blocked:
            self.dropped += 1
            return
        self._deliver(message, tag)

    # -- partitions ----------------------------------------------------------------

    def heal(self) -> None:
        self.blocked.clear()

    def cut(self, src: int, dst: int) -> None:
        """One-way: ``src`` can no longer reach ``dst``."""
        self.blocked.add((src, dst))

    def restore(self, src: int, dst: int) -> None:
        self.blocked.discard((src, dst))

    def split(self, side: set[int], nodes: list[int]) -> None:
        """Two-way partition between ``side`` and everyone else; isolating
        one node is ``split({n}, nodes)``."""
        for a in nodes:
            for b in nodes:
                if (a in side) != (b in side):
                    self.blocked.add((a, b))
