"""A shared memory map of a file that holds no file descriptor.

A mapping stays valid after its descriptor is closed (POSIX), so an index
needs no descriptor once mapped. Python's ``mmap.mmap`` keeps a duplicate of
the descriptor for as long as the map lives (``trackfd=False`` arrives only
in 3.13): two descriptors per mapped index, most of a partition's share. So
the map is made here with libc's ``mmap`` through ctypes and the descriptor
is closed at once.

``view`` is a writable byte memoryview of the map. Whoever takes a buffer
from it (a pinned native view) must give it back before ``close``: closing
releases the view first, which raises BufferError while a buffer is still
exported, so the memory is never unmapped under a reader.

A map never closed (its index failed to build, or was dropped on an error
path) is unmapped when the last view of its memory goes, as ``mmap.mmap``
is: the finalizer hangs on the ctypes array under every view, which each
view and each buffer exported from one keeps alive, so it cannot run while
anything can still read the memory.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import weakref
from pathlib import Path

from riverlog.broker.storage.open_files import open_fd

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.msync.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_MAP_FAILED = ctypes.c_void_p(-1).value
_MS_SYNC = 4  # <sys/mman.h> on Linux


def _munmap(addr: int, length: int) -> None:
    _libc.munmap(addr, length)


class FileMap:
    def __init__(self, path: Path, length: int) -> None:
        """Map the first ``length`` (> 0) bytes of ``path`` read-write, shared."""
        fd = open_fd(path, os.O_RDWR)
        try:
            addr = _libc.mmap(None, length, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
            if addr is None or addr == _MAP_FAILED:
                err = ctypes.get_errno()
                raise OSError(err, f"mmap of {path}: {os.strerror(err)}")
        finally:
            os.close(fd)  # the map outlives its descriptor
        self._addr = addr
        self.length = length
        memory = (ctypes.c_char * length).from_address(addr)
        self.view = memoryview(memory).cast("B")
        self._unmap = weakref.finalize(memory, _munmap, addr, length)
        self._unmap.atexit = False  # the process's end unmaps it; a late reader must not fault first

    def flush(self, length: int | None = None) -> None:
        """msync: the map's first ``length`` bytes (all by default) on disk, as
        MappedByteBuffer.force in Kafka's index flush. An index preallocated to
        10 MiB holds a few entries: syncing only those saves walking the rest."""
        n = self.length if length is None else min(self.length, -(-length // mmap.PAGESIZE) * mmap.PAGESIZE)
        if self._addr is not None and n > 0 and _libc.msync(self._addr, n, _MS_SYNC) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"msync: {os.strerror(err)}")

    def close(self) -> None:
        if self._addr is None:
            return
        self.view.release()  # BufferError if someone still holds a view: nothing is unmapped then
        self._unmap()
        self._addr = None

    def __len__(self) -> int:
        return self.length
