"""The request memory pool's rules (queued.max.request.bytes): memory to
whoever asks while some is free, no deadlock when only waiters hold it,
cancelled waiters leave nothing behind."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from riverlog.broker.net.memory_pool import MemoryPool


async def _settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


async def test_any_size_is_granted_while_some_memory_is_free_and_none_when_none_is():
    pool = MemoryPool(100)
    assert pool.try_reserve(60)
    assert pool.try_reserve(1000)  # overdrawn by this one request
    assert not pool.try_reserve(1)
    pool.release(1000)
    assert pool.try_reserve(1)


async def test_a_small_request_does_not_wait_behind_a_large_one_while_memory_is_free():
    pool = MemoryPool(100)
    assert pool.try_reserve(100)
    granted: list[str] = []

    async def ask(name: str, size: int) -> None:
        await pool.reserve(size)
        granted.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask, "large", 10_000)
        await _settle()
        assert pool.try_reserve(0) is False and pool.waiting == 1
        pool.release(50)  # 50 free: whoever is waiting may go on
        await _settle()
        assert granted == ["large"]
        pool.release(10_000)
        assert pool.try_reserve(10)  # the large one no longer in line: the small one at once
    assert pool.reserved == 60


async def test_when_only_waiters_hold_memory_the_one_holding_most_goes_on():
    """Two partial frames that together took the pool, each waiting to grow:
    nothing would ever be given back, so the larger one is let through
    (and can finish its request); the other waits for it."""
    pool = MemoryPool(100)
    assert pool.try_reserve(60)  # x's partial frame
    assert pool.try_reserve(70)  # y's
    granted: list[str] = []

    async def grow(name: str, held: int) -> None:
        await pool.reserve(held, held)
        granted.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(grow, "x", 60)
        await _settle()
        assert granted == [] and pool.waiting == 1  # y holds memory and does not wait: it may give it back
        nursery.start_soon(grow, "y", 70)
        await _settle()
        assert granted == ["y"] and pool.waiting == 1
        pool.release(140)  # y's request answered
        await _settle()
        assert granted == ["y", "x"]
    assert pool.reserved == 120


async def test_a_cancelled_waiter_holds_nothing_and_lets_the_others_on(nursery):
    """Two partial frames took the pool; x waits to grow, and so does y: y
    goes on. Cancelled instead, x gives back nothing it was not granted
    and, as only y is left holding, lets it through."""
    pool = MemoryPool(100)
    assert pool.try_reserve(60)  # x's partial frame
    assert pool.try_reserve(70)  # y's
    got = []

    async def grow(held: int, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            await pool.reserve(held, held)
            got.append(held)

    y = await nursery.start(grow, 70)
    await trio.testing.wait_all_tasks_blocked()
    assert got == [] and pool.waiting == 1  # x may still give back its 60
    y.cancel()
    await trio.testing.wait_all_tasks_blocked()
    assert got == [] and pool.waiting == 0 and pool.reserved == 130
    await nursery.start(grow, 60)
    await trio.testing.wait_all_tasks_blocked()
    assert got == [] and pool.waiting == 1
    pool.release(70)  # y's connection closed: memory is free again
    await trio.testing.wait_all_tasks_blocked()
    assert got == [60] and pool.reserved == 120


@pytest.mark.parametrize("size", [0, 1, 1 << 40])
def test_an_unbounded_pool_takes_anything(size):
    pool = MemoryPool(-1)
    assert pool.try_reserve(size) and pool.try_reserve(size)
