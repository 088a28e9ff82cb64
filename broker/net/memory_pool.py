"""The broker-wide memory pool for requests (``queued.max.request.bytes``, KIP-72).

A connection reserves a request's announced size as soon as its size prefix
is read, before it allocates anything for the body, and gives it back once
the request has been answered (or its connection is gone). While the pool
cannot give it the memory, the connection reads nothing more: its client is
held back by TCP, the socket stays open. So the requests being read or worked
on across all connections never hold more than the pool.

Waiters are served first come, first served, so a large request is not
starved by a stream of small ones. A request larger than the whole pool
(allowed up to ``socket.request.max.bytes``) would never fit: it is let
through alone, once nothing else holds memory, as Kafka lets one request
overdraw its pool. The bound is then the larger of the pool and that one
request. A capacity of -1 is Kafka's unbounded pool: every reservation
succeeds at once.
"""

from __future__ import annotations

from collections import deque

import trio


class MemoryPool:
    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes  # -1: unbounded
        self.reserved = 0
        self._waiters: deque[tuple[int, trio.Event]] = deque()

    @property
    def waiting(self) -> int:
        """Reservations waiting for memory."""
        return len(self._waiters)

    def _fits(self, size: int) -> bool:
        return self.capacity < 0 or self.reserved + size <= self.capacity or self.reserved == 0

    def try_reserve(self, size: int) -> bool:
        """Reserve ``size`` bytes now if the pool has them and nobody waits ahead."""
        if not self._waiters and self._fits(size):
            self.reserved += size
            return True
        return False

    async def reserve(self, size: int) -> None:
        """Reserve ``size`` bytes, waiting in line until the pool has them."""
        if self.try_reserve(size):
            return
        granted = trio.Event()
        entry = (size, granted)
        self._waiters.append(entry)
        try:
            await granted.wait()
        except BaseException:
            if granted.is_set():
                self.release(size)  # granted as we were cancelled: not used
            else:
                self._waiters.remove(entry)
                self._grant()  # we may have held back those behind us
            raise

    def release(self, size: int) -> None:
        self.reserved -= size
        assert self.reserved >= 0, self.reserved
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            size, granted = self._waiters.popleft()
            self.reserved += size
            granted.set()
