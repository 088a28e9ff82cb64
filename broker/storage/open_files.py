"""Open file descriptors of segment files: a bounded, process-wide LRU cache.

A partition at rest holds no descriptor: its indexes are mapped without one
(file_map.py) and its ``.log`` files, the active one included, are opened on
demand through this cache, which keeps at most ``riverlog.log.max.open.files``
of them open and closes the least recently used beyond that (Kafka opens
segment files lazily too). The bound is process-wide because the open-file
limit (RLIMIT_NOFILE) is.

A descriptor is an ``OpenFile`` that closes when its last holder lets it go:
the cache lets go when it evicts, but a read in progress (a FileSlice being
sent with os.sendfile across Trio scheduling points) still holds it, so no
descriptor is ever closed under a read.

When the process is out of descriptors anyway (EMFILE, or ENFILE for the
whole system), an open first gives back half of the cached descriptors and
tries again; if that fails too it raises TooManyOpenFilesError, which
requests answer as a per-request error (KAFKA_STORAGE_ERROR), never a crash.
"""

from __future__ import annotations

import logging
import os
import resource
import threading
import weakref
from collections import OrderedDict, deque
from contextlib import contextmanager
from pathlib import Path

from riverlog.broker.storage.errors import TooManyOpenFilesError, is_out_of_descriptors
from riverlog.broker.throttled_log import ThrottledLog

log = logging.getLogger(__name__)
_SHORTAGE = ThrottledLog(log)  # every request that opens a file meets it: a line per 10 s, not per request

DEFAULT_MAX_OPEN_FILES = 1000  # riverlog.log.max.open.files


class OpenFile:
    """A descriptor closed when the last reference to it goes (or on ``close``)."""

    __slots__ = ("fd", "__weakref__")

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self, _close=os.close) -> None:  # bound here: __del__ may run at interpreter exit
        fd, self.fd = self.fd, -1
        if fd >= 0:
            _close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass


class OpenFileCache:
    """Keyed by a segment's token (``key_for``), not the segment: the cache
    must not keep a segment alive, and a segment never closed (it failed to
    build, or belonged to a log that did) gives its descriptor back when it
    is collected."""

    def __init__(self, max_open_files: int = DEFAULT_MAX_OPEN_FILES) -> None:
        self.max_open_files = max_open_files
        self._files: OrderedDict[object, OpenFile] = OrderedDict()
        # The broker's Trio thread and its storage start/stop thread (and, in
        # tests, several brokers in one process) share the cache.
        self._lock = threading.Lock()
        # Keys of segments collected: a finalizer may run inside any
        # allocation, the cache's own included, so it only queues the key;
        # whoever holds the lock next drops it.
        self._dead: deque[object] = deque()
        # Moves of a file to the most recently used end (opens and hits). A
        # file moved there at tick t is at most ``ticks - t`` places from that
        # end, so while that is below half the bound no eviction takes it:
        # CachedFile skips the lock and the move for such a file (the active
        # segment's .log, on every append). An eviction other than by LRU
        # (shrink) moves ticks on by the bound, so every file goes through
        # the lock again.
        self.ticks = 0

    def __len__(self) -> int:
        return len(self._files)

    def key_for(self, owner: object) -> object:
        """A key for ``owner``'s descriptor, dropped when ``owner`` is collected."""
        key = object()
        weakref.finalize(owner, self._forget, key).atexit = False
        return key

    def _forget(self, key: object) -> None:
        self._dead.append(key)
        if self._lock.acquire(blocking=False):  # not when this thread is inside the cache
            try:
                self._drop_dead()
            finally:
                self._lock.release()

    def _drop_dead(self) -> None:
        while self._dead:
            self._files.pop(self._dead.popleft(), None)

    def get(self, key: object, path: Path, create: bool = False) -> OpenFile:
        """The open file of ``key`` (a segment's), opening ``path`` read-write if needed."""
        return self.get_ticked(key, path, create)[0]

    def get_ticked(self, key: object, path: Path, create: bool = False) -> tuple[OpenFile, int]:
        """``get``, and the tick at which the file became the most recently used."""
        with self._lock:
            f = self._files.get(key)
            if f is not None:
                self._files.move_to_end(key)
                self.ticks += 1
                return f, self.ticks
        f = OpenFile(open_fd(path, os.O_RDWR | (os.O_CREAT if create else 0)))
        with self._lock:
            self._files[key] = f
            self._files.move_to_end(key)
            self.ticks += 1
            tick = self.ticks
            while len(self._files) > self.max_open_files:
                self._files.popitem(last=False)
            self._drop_dead()
        return f, tick

    def discard(self, key: object) -> None:
        """Forget ``key``'s descriptor; it closes once no read holds it."""
        with self._lock:
            self._files.pop(key, None)
            self._drop_dead()

    def shrink(self, keep: int) -> int:
        """Let go of the least recently used descriptors down to ``keep``; returns how many."""
        with self._lock:
            self._drop_dead()
            n = max(0, len(self._files) - keep)
            for _ in range(n):
                self._files.popitem(last=False)
            self.ticks += self.max_open_files  # no file is known to be recent any more
        return n

    def set_max_open_files(self, n: int) -> None:
        self.max_open_files = max(1, n)
        self.shrink(self.max_open_files)


CACHE = OpenFileCache()


def _no_file() -> None:
    return None


class CachedFile:
    """One file's entry in the cache (a segment's ``.log``), with a fast path
    for a file in steady use: the cache's lock and its LRU move cost about
    as much as the rest of a small append together.

    It remembers the file weakly (the cache alone keeps it open) and the
    tick it was last moved at. While the file is alive and fewer than half
    the cache's bound of moves have happened since, it is handed out as it
    is: nothing could have evicted it by LRU in between. So the bound on
    open files holds as before, and a file in use at least once every
    ``max_open_files / 2`` moves is never evicted (exact LRU would keep it
    as well; a file used less often is ordered by its last move instead of
    its last use)."""

    __slots__ = ("key", "_ref", "_tick")

    def __init__(self, owner: object) -> None:
        self.key = CACHE.key_for(owner)
        self._ref = _no_file
        self._tick = 0

    def get(self, path: Path, create: bool = False) -> OpenFile:
        f = self._ref()
        if f is not None and f.fd >= 0 and CACHE.ticks - self._tick < CACHE.max_open_files >> 1:
            return f
        f, self._tick = CACHE.get_ticked(self.key, path, create)
        self._ref = weakref.ref(f)
        return f

    def discard(self) -> None:
        """Forget the descriptor (the segment is closed); it closes once no read holds it."""
        self._ref = _no_file
        CACHE.discard(self.key)


def open_fd(path: Path | str, flags: int, mode: int = 0o644) -> int:
    """``os.open``; out of descriptors, give back half of the cache and try once more."""
    try:
        return os.open(path, flags, mode)
    except OSError as e:
        if not is_out_of_descriptors(e):
            raise
        freed = CACHE.shrink(len(CACHE) // 2)
        _SHORTAGE.warning("out of file descriptors opening %s (%s): closed %d cached segment files", path,
                          os.strerror(e.errno), freed)  # fmt: skip
    try:
        return os.open(path, flags, mode)
    except OSError as e:
        if is_out_of_descriptors(e):
            raise TooManyOpenFilesError(f"out of file descriptors opening {path}: {e.strerror}") from e
        raise


@contextmanager
def opened(path: Path | str, flags: int, mode: int = 0o644):
    """A descriptor of ``path`` (``open_fd``) for the block only, closed after it."""
    fd = open_fd(path, flags, mode)
    try:
        yield fd
    finally:
        os.close(fd)


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (as Kafka's scripts expect
    of an administrator; many machines start at 1024). Returns (before, now)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        # Linux refuses an infinite soft limit for files: the kernel's cap is the most.
        try:
            with open("/proc/sys/fs/nr_open") as f:
                hard = int(f.read())
        except (OSError, ValueError):
            return soft, soft
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    except (OSError, ValueError) as e:
        log.warning("could not raise the open-file limit (RLIMIT_NOFILE) from %d to %d: %s", soft, hard, e)
        return soft, soft
    return soft, hard


def configure(max_open_files: int) -> None:
    """At broker start: raise the open-file limit, then bound the cache to
    ``max_open_files`` but at most half the limit, leaving the rest for
    connections, checkpoints and the metadata log."""
    before, now = raise_open_file_limit()
    if now != before:
        log.info("raised the open-file limit (RLIMIT_NOFILE) from %d to %d, the hard limit", before, now)
    bound = min(max_open_files, max(1, now // 2)) if now != resource.RLIM_INFINITY else max_open_files
    CACHE.set_max_open_files(bound)
    log.info("at most %d segment files open at once (riverlog.log.max.open.files %d, open-file limit %s)",
             bound, max_open_files, now)  # fmt: skip
