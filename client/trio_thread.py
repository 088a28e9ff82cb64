"""Trio on a background thread, for the client's blocking face.

``SyncProducer`` and friends are ordinary blocking objects, but the client
underneath is Trio code. A :class:`TrioThread` runs one ``trio.run`` on a
daemon thread, keeps a nursery open in it, and lets any other thread call
into it::

    with TrioThread() as loop:
        meta = loop.run(client.metadata, ["t"], timeout=5.0)
        fut = loop.submit(producer.send, "t", b"v")   # concurrent.futures.Future
        fut.result()

Calls from other threads are queued with the loop's ``TrioToken``
(``run_sync_soon``) and run as tasks in the nursery; their outcome comes
back through a :class:`concurrent.futures.Future`, which is the future type
of the blocking API (thread-safe, ``result(timeout)``, done callbacks). We
track those futures ourselves rather than use ``trio.from_thread.run`` so
that close and crash can fail every call still pending: none may hang.

Lifecycle::

    NEW --start()--> RUNNING --close()--> CLOSED
                        |
                        +-- a start_soon task raises --> CRASHED

In CLOSED and CRASHED every pending call fails with :class:`RuntimeError`
(chaining the crash in CRASHED), and so does every new call.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, InvalidStateError
from types import TracebackType
from typing import Any, TypeVar

import trio

T = TypeVar("T")


class _State(enum.Enum):
    NEW = "new"  # not started; start() -> RUNNING
    RUNNING = "running"  # loop accepts calls; close() -> CLOSED, task crash -> CRASHED
    CLOSED = "closed"  # loop ended by close(); terminal
    CRASHED = "crashed"  # loop ended by a task's exception; terminal


class TrioThread:
    """One ``trio.run`` on a daemon thread, callable from any other thread.

    Single use: once closed (or crashed) it cannot be started again.
    """

    def __init__(self, *, name: str = "riverlog-trio") -> None:
        self._name = name
        self._lock = threading.Lock()  # guards _state, _pending, _crash_observed
        self._state = _State.NEW
        self._ready = threading.Event()  # set once the loop runs, or failed to
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._cancel_scope: trio.CancelScope | None = None
        # Calls queued or running in the loop; each is resolved before the
        # thread ends (by its task, or by _finish()).
        self._pending: set[Future[Any]] = set()
        self._crash: BaseException | None = None
        self._crash_observed = False  # whether the crash reached some caller

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Start the thread and wait until its loop accepts calls. Idempotent
        while running; a closed TrioThread cannot be restarted."""
        with self._lock:
            if self._state is _State.RUNNING:
                return
            if self._state is not _State.NEW:
                raise RuntimeError(f"TrioThread is {self._state.value}; it cannot be restarted")
            self._state = _State.RUNNING
            self._thread = threading.Thread(target=self._thread_main, name=self._name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._token is None:  # trio.run failed before the loop came up
            self._thread.join()
            self._raise_unusable()

    def close(self) -> None:
        """Cancel the nursery (and with it every task and pending call), then
        join the thread. Idempotent.

        Raises RuntimeError chaining the crash if a background task crashed
        the loop and no caller has been told yet, so a crash is never lost.
        """
        if self._in_trio_thread():
            raise RuntimeError("TrioThread.close() called from its own Trio thread")
        with self._lock:
            if self._state is _State.NEW:
                self._state = _State.CLOSED
                return
            token = self._token
        if token is not None:
            try:
                token.run_sync_soon(self._cancel)
            except trio.RunFinishedError:
                pass
        assert self._thread is not None
        self._thread.join()
        with self._lock:
            report = self._state is _State.CRASHED and not self._crash_observed
            self._crash_observed = True
        if report:
            raise RuntimeError("TrioThread's loop crashed") from self._crash

    def __enter__(self) -> TrioThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._state is _State.RUNNING

    @property
    def nursery(self) -> trio.Nursery:
        """The loop's long-lived nursery, for Trio code running in the loop
        (a connection's reader task). Tasks started here crash the loop if
        they raise. Only usable from the Trio thread."""
        if not self._in_trio_thread() or self._nursery is None:
            raise RuntimeError("TrioThread.nursery is only available inside its Trio thread")
        return self._nursery

    # -- calls from other threads -----------------------------------------

    def submit(
        self, async_fn: Callable[..., Awaitable[T]], *args: Any, timeout: float | None = None
    ) -> Future[T]:
        """Start ``async_fn(*args)`` in the loop; its outcome resolves the
        returned future. ``timeout`` (seconds) cancels the call in the loop
        and fails the future with :class:`TimeoutError`. An exception of the
        call goes to the future only; it does not crash the loop.

        Cancelling the future before the call starts skips it; once running
        it cannot be cancelled from outside (Future semantics).
        """
        fut: Future[T] = Future()
        self._enqueue(fut, self._spawn_call, fut, async_fn, args, timeout)
        return fut

    def run(
        self, async_fn: Callable[..., Awaitable[T]], *args: Any, timeout: float | None = None
    ) -> T:
        """Run ``async_fn(*args)`` in the loop and block for its result,
        re-raising its exception here. ``timeout`` in seconds, enforced in
        the loop (``trio.move_on_after``), raises :class:`TimeoutError`.

        Raises RuntimeError when called from the Trio thread (it would
        deadlock), when not running, or when the loop ends first. If the
        waiting thread is interrupted (KeyboardInterrupt), the call keeps
        running in the loop until close().
        """
        self._check_not_trio_thread("run")
        return self.submit(async_fn, *args, timeout=timeout).result()

    def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Call the sync ``fn(*args)`` in the Trio thread, block for its
        result (for touching loop-owned state without locks)."""
        self._check_not_trio_thread("run_sync")
        fut: Future[T] = Future()
        self._enqueue(fut, self._call_sync, fut, fn, args)
        return fut.result()

    def start_soon(self, async_fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        """Start a background task in the nursery, from any thread.

        Fire and forget: if the task raises, the loop crashes (every pending
        and later call fails with RuntimeError). Use :meth:`submit` when the
        failure belongs to a caller.
        """
        if self._in_trio_thread():
            self.nursery.start_soon(async_fn, *args)
            return
        self._enqueue(None, self._spawn_background, async_fn, args)

    # -- internals: caller side --------------------------------------------

    def _in_trio_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _check_not_trio_thread(self, what: str) -> None:
        if self._in_trio_thread():
            raise RuntimeError(
                f"TrioThread.{what}() called from its own Trio thread; await the function instead"
            )

    def _raise_unusable(self) -> None:
        with self._lock:
            state = self._state
            if state is _State.CRASHED:
                self._crash_observed = True
        if state is _State.CRASHED:
            raise RuntimeError("TrioThread's loop crashed") from self._crash
        raise RuntimeError(f"TrioThread is {state.value}, not running")

    def _enqueue(self, fut: Future[Any] | None, callback: Callable[..., None], *args: Any) -> None:
        """Queue ``callback(*args)`` in the loop, registering ``fut`` as
        pending first so that _finish() fails it if the loop ends before."""
        with self._lock:
            if self._state is not _State.RUNNING or self._token is None:
                fail = True
            else:
                fail = False
                if fut is not None:
                    self._pending.add(fut)
                    fut.add_done_callback(self._forget)
                try:
                    self._token.run_sync_soon(callback, *args)
                except trio.RunFinishedError:
                    pass  # the thread's _finish() fails fut
        if fail:
            self._raise_unusable()

    def _forget(self, fut: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(fut)

    # -- internals: Trio thread ----------------------------------------------

    def _thread_main(self) -> None:
        crash: BaseException | None = None
        try:
            trio.run(self._main)
        except BaseException as exc:  # noqa: BLE001 - reported to callers, not lost
            crash = exc
            # trio wraps a task's exception in a group; one leaf reads better.
            while isinstance(crash, BaseExceptionGroup) and len(crash.exceptions) == 1:
                crash = crash.exceptions[0]
        finally:
            self._finish(crash)

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._cancel_scope = nursery.cancel_scope
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await trio.sleep_forever()

    def _cancel(self) -> None:
        assert self._cancel_scope is not None
        self._cancel_scope.cancel()

    def _finish(self, crash: BaseException | None) -> None:
        """The loop has ended: settle the state and fail what is pending."""
        with self._lock:
            self._crash = crash
            self._state = _State.CRASHED if crash is not None else _State.CLOSED
            pending = list(self._pending)
            self._pending.clear()
            if pending and crash is not None:
                self._crash_observed = True
        self._nursery = None
        self._ready.set()
        for fut in pending:
            if crash is not None:
                err = RuntimeError("TrioThread's loop crashed before the call completed")
                err.__cause__ = crash
            else:
                err = RuntimeError("TrioThread closed before the call completed")
            try:
                fut.set_exception(err)
            except InvalidStateError:
                pass  # resolved or cancelled meanwhile

    def _spawn_call(
        self,
        fut: Future[T],
        async_fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        timeout: float | None,
    ) -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            assert self._nursery is not None
            self._nursery.start_soon(self._call, fut, async_fn, args, timeout)
        except RuntimeError:
            pass  # nursery closing: _finish() fails fut

    async def _call(
        self,
        fut: Future[T],
        async_fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        timeout: float | None,
    ) -> None:
        # trio.Cancelled from outside (close or crash) propagates and leaves
        # fut pending for _finish(), which knows which of the two it was.
        try:
            if timeout is None:
                result = await async_fn(*args)
            else:
                with trio.move_on_after(timeout) as scope:
                    result = await async_fn(*args)
                if scope.cancelled_caught:
                    fut.set_exception(TimeoutError(f"call did not complete within {timeout} s"))
                    return
        except Exception as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    def _call_sync(self, fut: Future[T], fn: Callable[..., T], args: tuple[Any, ...]) -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - belongs to the caller
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    def _spawn_background(self, async_fn: Callable[..., Awaitable[object]], args: tuple[Any, ...]) -> None:
        try:
            assert self._nursery is not None
            self._nursery.start_soon(async_fn, *args)
        except RuntimeError:
            pass  # nursery closing: the loop is ending anyway
