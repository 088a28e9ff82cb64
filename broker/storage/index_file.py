"""The memory-mapped, preallocated file behind OffsetIndex and TimeIndex.

As Kafka's AbstractIndex: the file of a segment that is still written to is
preallocated to ``segment.index.bytes`` (rounded down to whole entries) and
memory-mapped; entries are written into the map. When the segment stops being
written (roll, clean close) the file is trimmed to exactly ``entries *
entry_size`` bytes, so the entry count of a closed index is its file length.
Lookups run the native binary search over the map.

The preallocation is sparse (as Kafka's ``setLength``): a full filesystem must
not cost ``segment.index.bytes`` per active segment. Pages are allocated with
``posix_fallocate`` just ahead of the entries written into them, so a full disk
is an OSError at allocation, which the log turns into a log-directory failure,
and never a SIGBUS at the first touch of a page the filesystem cannot provide.

An index holds no file descriptor: the file is mapped and its descriptor
closed at once (see file_map.py), resized by path. So a partition's indexes
cost nothing against the open-file limit however many partitions there are.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

from riverlog import native
from riverlog.broker.storage import faults
from riverlog.broker.storage.file_map import FileMap
from riverlog.broker.storage.open_files import opened

ALLOCATION_STEP_BYTES = 16 * mmap.PAGESIZE  # allocated ahead of the entries: one fallocate per 64 KiB


class CorruptIndexError(ValueError):
    pass


class IndexFile:
    ENTRY_SIZE = 0  # set by subclasses

    def __init__(self, path: Path, base_offset: int, max_index_bytes: int, writable: bool = True) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max_index_bytes // self.ENTRY_SIZE
        if self.max_entries < 1:
            raise ValueError(f"segment.index.bytes {max_index_bytes} holds no {self.ENTRY_SIZE}-byte entry")
        with opened(path, os.O_RDWR | os.O_CREAT) as fd:  # none kept: it is mapped, and resized by path
            length = os.fstat(fd).st_size
            written = os.lseek(fd, 0, os.SEEK_HOLE) if length else 0
        # A length that is not whole entries means a torn write: sanity_check fails.
        self._torn = length % self.ENTRY_SIZE != 0
        # A file a crash left preallocated is sparse after its entries: only the
        # prefix before its first hole can hold any, and a page of a hole must
        # not be touched (on a full tmpfs, even reading one is SIGBUS).
        self.entries = min(min(length, written) // self.ENTRY_SIZE, self.max_entries)
        self._mmap: FileMap | None = None
        self._pinned = None  # native.pin_buffer of the map, for lookups
        self._writable = False
        self._allocated_bytes = 0  # of the writable map, the prefix known to be backed by disk space
        try:
            if writable:
                self.make_writable()
            else:
                self._map(length)
        except BaseException:
            self.release()
            raise

    # -- mapping -------------------------------------------------------------

    def _map(self, length: int) -> None:
        if self._pinned is not None:
            native.unpin_buffer(self._pinned)
            self._pinned = None
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None
        if length > 0:
            self._mmap = FileMap(self.path, length)
            self._pinned = native.pin_buffer(self._mmap.view)

    def make_writable(self) -> None:
        """Grow the file to its preallocated size so entries can be appended."""
        if self._writable:
            return
        # The entries there were written, so their pages are allocated.
        self._allocated_bytes = self.entries * self.ENTRY_SIZE
        os.truncate(self.path, self.max_entries * self.ENTRY_SIZE)
        self._map(self.max_entries * self.ENTRY_SIZE)
        self._allocate_to((self.entries + 1) * self.ENTRY_SIZE)
        self._writable = True

    def _allocate_to(self, end: int) -> None:
        """Back ``[0, end)`` of the map with disk space before it is written:
        ENOSPC here is an OSError, where a write into a hole would be SIGBUS.

        The slot after the last entry is always backed too, so the final
        time-index entry of a segment that stops being written (a roll, a
        clean close) never needs space the disk may no longer have."""
        length = self.max_entries * self.ENTRY_SIZE
        upto = min(length, -(-end // ALLOCATION_STEP_BYTES) * ALLOCATION_STEP_BYTES)
        if upto <= self._allocated_bytes:
            return
        if faults.installed:
            faults.fire("allocate", self.path)
        with opened(self.path, os.O_RDWR) as fd:
            os.posix_fallocate(fd, self._allocated_bytes, upto - self._allocated_bytes)
        self._allocated_bytes = upto

    def trim(self) -> None:
        """Shrink the file to its entries: the segment takes no more appends."""
        length = self.entries * self.ENTRY_SIZE
        if self._mmap is not None:
            self._mmap.flush(length)
        self._map(0)
        os.truncate(self.path, length)
        self._map(length)
        self._writable = False

    @property
    def buffer(self) -> memoryview | bytes:
        return self._mmap.view if self._mmap is not None else b""

    @property
    def search_buffer(self):
        """What the native lookups take: the pinned map (or empty bytes)."""
        return self._pinned if self._pinned is not None else b""

    # -- entries -------------------------------------------------------------

    @property
    def is_full(self) -> bool:
        return self.entries >= self.max_entries

    def _write_entry(self, entry: struct.Struct, a: int, b: int, final: bool = False) -> None:
        """Pack (a, b) as the next entry, straight into the map. An entry
        backs the slot after it too; the ``final`` one may be written into
        that slot without new space."""
        n = self.entries
        if not self._writable or n >= self.max_entries:
            raise RuntimeError(f"{self.path} is not writable or full")
        end = (n + 1 if final else n + 2) * self.ENTRY_SIZE
        if end > self._allocated_bytes:
            self._allocate_to(end)
        entry.pack_into(self._mmap.view, n * self.ENTRY_SIZE, a, b)
        self.entries = n + 1

    def _truncate_to_entries(self, entries: int) -> None:
        self.entries = max(0, min(entries, self.entries))

    def reset(self) -> None:
        """Drop every entry (before a rebuild)."""
        self.entries = 0
        self._torn = False
        self._allocated_bytes = 0
        if self._writable:
            self._map(0)
            os.truncate(self.path, 0)
            os.truncate(self.path, self.max_entries * self.ENTRY_SIZE)
            self._map(self.max_entries * self.ENTRY_SIZE)
            self._allocate_to(self.ENTRY_SIZE)
        else:
            self._map(0)
            os.truncate(self.path, 0)

    def flush(self) -> None:
        if self._mmap is not None:
            self._mmap.flush(self.entries * self.ENTRY_SIZE)  # nothing beyond the entries was written
        # The file's length (preallocated, trimmed) is metadata msync leaves
        # out: fsync it through a descriptor held just for that.
        with opened(self.path, os.O_RDONLY) as fd:
            os.fsync(fd)

    def close(self) -> None:
        if self._writable:
            self.trim()
        self._map(0)

    def release(self) -> None:
        """Unmap without finishing the file: after a failure, or when it goes.
        A reader still holding a view of the map keeps it until it lets go
        (file_map.py)."""
        pinned, self._pinned = self._pinned, None
        fmap, self._mmap = self._mmap, None
        self._writable = False
        if pinned is not None:
            native.unpin_buffer(pinned)
        if fmap is not None:
            try:
                fmap.close()
            except BufferError:
                pass

    def rename(self, path: Path) -> None:
        os.rename(self.path, path)
        self.path = path

    def delete(self) -> None:
        self._map(0)
        self.path.unlink(missing_ok=True)
