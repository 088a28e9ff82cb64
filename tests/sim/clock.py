"""A seeded event-driven clock in simulated milliseconds.

No real time, no threads: the simulation is a heap of (time, sequence,
action) events, and time jumps to the next one. The sequence number breaks
ties in scheduling order, so two runs of one seed pop the same events in the
same order.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class SimClock:
    def __init__(self) -> None:
        self.now_ms = 0
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0

    def at(self, time_ms: int, action: Callable[..., None], *args: Any) -> None:
        """Runs ``action(*args)`` at ``time_ms`` (never in the past)."""
        assert time_ms >= self.now_ms, (time_ms, self.now_ms)
        self._seq += 1
        heapq.heappush(self._heap, (time_ms, self._seq, action, args))

    def after(self, delay_ms: int, action: Callable[..., None], *args: Any) -> None:
        self.at(self.now_ms + max(0, delay_ms), action, *args)

    def run_until(self, end_ms: int, stop: Callable[[], bool] | None = None) -> bool:
        """Runs every event due up to ``end_ms``; returns True if ``stop()``
        became true first (checked after each event)."""
        heap = self._heap
        while heap and heap[0][0] <= end_ms:
            time_ms, _, action, args = heapq.heappop(heap)
            self.now_ms = time_ms
            action(*args)
            if stop is not None and stop():
                return True
        self.now_ms = max(self.now_ms, end_ms)
        return False
