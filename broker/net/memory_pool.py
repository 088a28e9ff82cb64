"""The broker-wide memory pool for requests (``queued.max.request.bytes``, KIP-72).

A connection charges the pool for the memory it actually takes for a
request as its bytes arrive, not for the size the request announces: a
frame cut whole from the read buffer is charged its size, a large frame the
buffer it is received into, as that buffer is allocated and doubled. So a
size prefix alone costs nothing. The charge is given back once the request
has been answered (or its connection is gone). While the pool cannot give a
connection memory it reads nothing more: its client is held back by TCP,
the socket stays open.

As Kafka's non-strict SimpleMemoryPool, any charge is granted while some
memory is free, whatever its size (the pool is overdrawn by at most one
charge), and the waiters are woken in turn whenever memory is free again:
a small request never waits in line behind a large one. If every byte
held is held by connections that themselves wait for more (their partial
frames together fill the pool), nothing would ever be given back: the
waiter holding the most goes on alone, so the one request closest to whole
finishes, as Kafka lets one request overdraw its pool. The bound on partly
read requests is then the pool plus about one request (socket.request.max.bytes).
A capacity of -1 is Kafka's unbounded pool: every charge is granted at once.
"""

from __future__ import annotations

import trio


class _Waiter:
    __slots__ = ("size", "held", "granted")

    def __init__(self, size: int, held: int) -> None:
        self.size = size
        self.held = held  # of the pool's reserved bytes, what this waiter holds already
        self.granted = trio.Event()


class MemoryPool:
    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes  # -1: unbounded
        self.reserved = 0
        self._waiters: list[_Waiter] = []
        self._held_by_waiters = 0

    @property
    def waiting(self) -> int:
        """Charges waiting for memory."""
        return len(self._waiters)

    def try_reserve(self, size: int) -> bool:
        """Reserve ``size`` bytes now if some memory is free."""
        if self.capacity < 0 or self.reserved < self.capacity:
            self.reserved += size
            return True
        return False

    async def reserve(self, size: int, held: int = 0) -> None:
        """Reserve ``size`` bytes, waiting until some memory is free. ``held``:
        what the caller holds of the pool already and cannot give back before
        this is granted (a frame part read)."""
        if self.try_reserve(size):
            return
        waiter = _Waiter(size, held)
        self._waiters.append(waiter)
        self._held_by_waiters += held
        self._grant()  # perhaps only waiters hold memory now
        try:
            await waiter.granted.wait()
        except BaseException:
            if waiter.granted.is_set():
                self.release(size)  # granted as we were cancelled: not used
            else:
                self._drop(waiter)
                self._grant()  # what we held may be all that held the others back
            raise

    def release(self, size: int) -> None:
        self.reserved -= size
        assert self.reserved >= 0, self.reserved
        self._grant()

    def _drop(self, waiter: _Waiter) -> None:
        self._waiters.remove(waiter)
        self._held_by_waiters -= waiter.held

    def _give(self, waiter: _Waiter) -> None:
        self._drop(waiter)
        self.reserved += waiter.size
        waiter.granted.set()

    def _grant(self) -> None:
        while self._waiters and self.reserved < self.capacity:
            self._give(self._waiters[0])
        if self._waiters and self._held_by_waiters >= self.reserved:
            # Only waiters hold memory: none of it would ever come back.
            self._give(max(self._waiters, key=lambda w: w.held))
