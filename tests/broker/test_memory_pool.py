"""The request memory pool: first come first served, one oversize request
alone, cancelled waiters leave nothing behind."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from broker.net.memory_pool import MemoryPool


async def test_waiters_are_served_in_order_as_memory_comes_back(nursery):
    pool = MemoryPool(100)
    assert pool.try_reserve(60)
    got = []

    async def want(size: int) -> None:
        await pool.reserve(size)
        got.append(size)

    nursery.start_soon(want, 50)
    await trio.testing.wait_all_tasks_blocked()
    nursery.start_soon(want, 10)  # fits now, but waits behind the first
    await trio.testing.wait_all_tasks_blocked()
    assert got == [] and pool.waiting == 2 and not pool.try_reserve(1)
    pool.release(60)
    await trio.testing.wait_all_tasks_blocked()
    assert sorted(got) == [10, 50] and pool.reserved == 60 and pool.waiting == 0


async def test_a_request_larger_than_the_pool_goes_alone_once_it_is_empty(nursery):
    pool = MemoryPool(100)
    assert pool.try_reserve(1)
    done = trio.Event()

    async def oversize() -> None:
        await pool.reserve(500)
        done.set()

    nursery.start_soon(oversize)
    await trio.testing.wait_all_tasks_blocked()
    assert not done.is_set()
    pool.release(1)
    await done.wait()
    assert pool.reserved == 500 and not pool.try_reserve(1)
    pool.release(500)
    assert pool.reserved == 0


async def test_a_cancelled_waiter_holds_nothing_and_lets_the_next_through(nursery):
    pool = MemoryPool(100)
    assert pool.try_reserve(90)
    got = []

    async def want(size: int, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            await pool.reserve(size)
            got.append(size)

    first = await nursery.start(want, 50)
    await nursery.start(want, 10)
    await trio.testing.wait_all_tasks_blocked()
    assert got == []
    first.cancel()  # the 10 fits beside the 90 once the 50 ahead of it is gone
    await trio.testing.wait_all_tasks_blocked()
    assert got == [10] and pool.reserved == 100 and pool.waiting == 0


@pytest.mark.parametrize("size", [0, 1, 1 << 40])
def test_an_unbounded_pool_takes_anything(size):
    pool = MemoryPool(-1)
    assert pool.try_reserve(size) and pool.try_reserve(size)
