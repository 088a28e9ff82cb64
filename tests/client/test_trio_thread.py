"""TrioThread: blocking calls into a Trio loop on a background thread.

Plain sync tests: the loop under test runs on its own thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future

import pytest
import trio

from riverlog.client.trio_thread import TrioThread


class Boom(Exception):
    pass


@pytest.fixture
def loop() -> Iterator[TrioThread]:
    with TrioThread() as tt:
        yield tt


async def add(a: int, b: int) -> int:
    await trio.sleep(0)
    return a + b


async def fail(message: str) -> None:
    await trio.sleep(0)
    raise Boom(message)


def test_run_returns_the_async_functions_result(loop: TrioThread) -> None:
    assert loop.run(add, 2, 3) == 5


def test_run_reraises_the_exception_with_its_type(loop: TrioThread) -> None:
    with pytest.raises(Boom, match="nope"):
        loop.run(fail, "nope")
    assert loop.run(add, 1, 1) == 2  # a failed call does not hurt the loop


def test_run_executes_in_the_trio_thread(loop: TrioThread) -> None:
    async def where() -> threading.Thread:
        trio.lowlevel.current_trio_token()  # raises outside Trio
        return threading.current_thread()

    assert loop.run(where) is not threading.current_thread()


def test_run_with_timeout_raises_timeout_error_and_cancels_the_call(loop: TrioThread) -> None:
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            cancelled.set()
            raise

    start = time.monotonic()
    with pytest.raises(TimeoutError):
        loop.run(slow, timeout=0.05)
    assert time.monotonic() - start < 5
    assert cancelled.is_set()


def test_run_within_timeout_returns_normally(loop: TrioThread) -> None:
    assert loop.run(add, 4, 5, timeout=5.0) == 9


def test_an_inner_trio_timeout_is_not_mistaken_for_the_calls_timeout(loop: TrioThread) -> None:
    async def own_deadline() -> None:
        with trio.fail_after(0.01):
            await trio.sleep(10)

    with pytest.raises(trio.TooSlowError):
        loop.run(own_deadline, timeout=5.0)


def test_run_sync_calls_a_sync_function_in_the_trio_thread(loop: TrioThread) -> None:
    def token() -> object:
        return trio.lowlevel.current_trio_token()

    assert loop.run_sync(token) is not None
    assert loop.run_sync(max, 3, 9) == 9
    with pytest.raises(ZeroDivisionError):
        loop.run_sync(lambda: 1 / 0)


def test_submit_returns_a_concurrent_future(loop: TrioThread) -> None:
    fut = loop.submit(add, 20, 22)
    assert isinstance(fut, Future)
    assert fut.result(timeout=5) == 42
    bad = loop.submit(fail, "later")
    assert isinstance(bad.exception(timeout=5), Boom)


def test_start_soon_runs_a_background_task(loop: TrioThread) -> None:
    done = threading.Event()

    async def task(flag: threading.Event) -> None:
        await trio.sleep(0)
        flag.set()

    loop.start_soon(task, done)
    assert done.wait(5)


def test_nursery_is_usable_from_inside_the_trio_thread(loop: TrioThread) -> None:
    started = threading.Event()

    async def reader() -> None:
        started.set()
        await trio.sleep_forever()

    async def open_reader() -> None:
        loop.nursery.start_soon(reader)
        loop.start_soon(trio.sleep, 0)  # start_soon works in-thread too

    loop.run(open_reader)
    assert started.wait(5)


def test_nursery_is_refused_outside_the_trio_thread(loop: TrioThread) -> None:
    with pytest.raises(RuntimeError):
        loop.nursery


def test_blocking_calls_from_the_trio_thread_are_refused(loop: TrioThread) -> None:
    async def reenter() -> None:
        loop.run(add, 1, 2)

    with pytest.raises(RuntimeError, match="own Trio thread"):
        loop.run(reenter)
    with pytest.raises(RuntimeError, match="own Trio thread"):
        loop.run_sync(loop.run_sync, int)


def test_close_is_idempotent_and_joins_the_thread() -> None:
    before = threading.active_count()
    tt = TrioThread()
    tt.start()
    tt.start()  # idempotent while running
    assert threading.active_count() == before + 1
    tt.close()
    tt.close()
    assert threading.active_count() == before
    assert not tt.running


def test_close_without_start_is_allowed() -> None:
    tt = TrioThread()
    tt.close()
    with pytest.raises(RuntimeError):
        tt.start()


def test_calls_after_close_raise_runtime_error() -> None:
    tt = TrioThread()
    with tt:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        tt.run(add, 1, 2)
    with pytest.raises(RuntimeError, match="closed"):
        tt.run_sync(int)
    with pytest.raises(RuntimeError, match="closed"):
        tt.start_soon(add, 1, 2)
    with pytest.raises(RuntimeError, match="closed"):
        tt.submit(add, 1, 2)
    with pytest.raises(RuntimeError):
        tt.start()


def test_calls_before_start_raise_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        TrioThread().run(add, 1, 2)


def test_close_fails_calls_still_running() -> None:
    tt = TrioThread()
    tt.start()
    fut = tt.submit(trio.sleep_forever)
    tt.run(trio.sleep, 0.01)  # let it start
    tt.close()
    with pytest.raises(RuntimeError, match="closed"):
        fut.result(timeout=5)


def test_close_unblocks_a_thread_waiting_in_run() -> None:
    tt = TrioThread()
    tt.start()
    errors: list[BaseException] = []
    entered = threading.Event()

    async def forever() -> None:
        entered.set()
        await trio.sleep_forever()

    def caller() -> None:
        try:
            tt.run(forever)
        except BaseException as exc:
            errors.append(exc)

    waiter = threading.Thread(target=caller)
    waiter.start()
    assert entered.wait(5)
    tt.close()
    waiter.join(5)
    assert not waiter.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)


def test_a_crashing_background_task_fails_pending_and_later_calls() -> None:
    before = threading.active_count()
    tt = TrioThread()
    tt.start()
    pending = tt.submit(trio.sleep_forever)
    tt.run(trio.sleep, 0.01)

    async def crash() -> None:
        raise Boom("background")

    tt.start_soon(crash)
    with pytest.raises(RuntimeError, match="crashed") as info:
        pending.result(timeout=5)
    assert isinstance(info.value.__cause__, Boom)
    with pytest.raises(RuntimeError, match="crashed") as info:
        tt.run(add, 1, 2)
    assert isinstance(info.value.__cause__, Boom)
    assert not tt.running
    tt.close()  # crash already reported: close is quiet
    tt.close()
    assert threading.active_count() == before


def test_close_reports_a_crash_nobody_saw() -> None:
    tt = TrioThread()
    tt.start()

    async def crash() -> None:
        raise Boom("unseen")

    tt.start_soon(crash)
    deadline = time.monotonic() + 5
    while tt.running and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(RuntimeError, match="crashed") as info:
        tt.close()
    assert isinstance(info.value.__cause__, Boom)
    tt.close()  # reported once


def test_many_threads_call_concurrently(loop: TrioThread) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        for j in range(50):
            value = loop.run(add, i, j)
            with lock:
                results.append(value)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == sorted(i + j for i in range(8) for j in range(50))


def test_no_thread_leaks_over_many_lifecycles() -> None:
    before = threading.active_count()
    for _ in range(20):
        with TrioThread() as tt:
            tt.run(add, 1, 2)
    assert threading.active_count() == before
