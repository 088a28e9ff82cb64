"""LogSegment: one ``.log`` file of record batches and its two sparse indexes.

Files, named by the segment's base offset in 20 digits (Kafka's layout)::

    00000000000000001200.log         record batches v2, byte for byte as appended
    00000000000000001200.index       OffsetIndex  (offset -> position)
    00000000000000001200.timeindex   TimeIndex    (timestamp -> offset)

The ``.log`` holds whole batches back to back; batch i+1 starts where batch i
ends, and every offset in the file is >= the base offset and < the next
segment's base offset. Positions are u32, so a segment stays below 2 GiB
(``segment.bytes`` <= 2^31 - 1). A suffix (``.deleted``, ``.cleaned``,
``.swap``) marks files on their way out or in, as Kafka does.

A segment holds no descriptor of its own: the ``.log`` is opened on demand
through the process-wide cache of open files (open_files.py), the indexes
are mapped without one. A segment made with ``keep_open`` (the metadata
log's) holds its ``.log`` open, so reading and appending to it need no
descriptor; making one (its files, their maps) still opens files.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from riverlog.broker.storage import faults
from riverlog.broker.storage.errors import InvariantError, SegmentClosedError, StorageError
from riverlog.broker.storage.index_file import CorruptIndexError
from riverlog.broker.storage.log_config import LogConfig
from riverlog.broker.storage.offset_index import MAX_RELATIVE_OFFSET, OffsetIndex
from riverlog.broker.storage.open_files import CachedFile, OpenFile, open_fd
from riverlog.broker.storage.segment_recovery import SegmentRecovery
from riverlog.broker.storage.time_index import NO_TIMESTAMP, TimeIndex
from riverlog.client.records.layout import LOG_OVERHEAD, header_struct
from riverlog.client.records.layout import BATCH_HEADER_BYTES as HEADER_BYTES
from riverlog.native import BatchInfo

log = logging.getLogger(__name__)

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes,
# lastOffsetDelta, baseTimestamp, maxTimestamp: the header fields we walk by.
_HEADER = header_struct("base_offset", "batch_length", "partition_leader_epoch", "last_offset_delta", "max_timestamp")
_IOV_MAX = 1024  # Linux's limit on pieces per pwritev
MAX_SEGMENT_BYTES = 2**31 - 1  # positions are u32 in the index, int32 in Kafka: segment.bytes' cap
DELETED_SUFFIX = ".deleted"
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
SEGMENT_FILE = re.compile(r"^(\d{20})\.(log|index|timeindex)((?:\.deleted|\.cleaned|\.swap)?)$")


def segment_file_name(base_offset: int, ext: str, suffix: str = "") -> str:
    return f"{base_offset:020d}{ext}{suffix}"


@dataclass(frozen=True)
class FileSlice:
    """Bytes ``[position, position + length)`` of an open log file, for ``os.sendfile``.

    The slice may end inside a batch (as Kafka's fetch does); readers drop a
    trailing partial batch. It holds the open file, so the descriptor stays
    valid while the slice lives: evicted from the cache of open files, its
    segment closed or deleted meanwhile, it closes only once the send is done.
    """

    file: OpenFile
    position: int
    length: int

    @property
    def fd(self) -> int:
        return self.file.fd

    def __len__(self) -> int:
        return self.length

    def read(self) -> bytes:
        return os.pread(self.file.fd, self.length, self.position)


@dataclass(frozen=True)
class BatchHeader:
    position: int
    length: int
    base_offset: int
    last_offset: int
    max_timestamp: int
    partition_leader_epoch: int


class LogSegment(SegmentRecovery):
    """One segment's files. Recovery (the scan that validates batches and
    rebuilds the indexes after a crash) is in segment_recovery.py."""

    def __init__(
        self, directory: Path, base_offset: int, config: LogConfig, *, suffix: str = "", keep_open: bool = False
    ) -> None:
        self.dir = directory
        self.base_offset = base_offset
        self.config = config
        self.suffix = suffix
        self.log_path = directory / segment_file_name(base_offset, ".log", suffix)
        self._closed = False
        # The cache's key for the .log: dropped, with the descriptor, when the
        # segment is collected, closed or not.
        self._cached_file = CachedFile(self)
        self._own_file = None
        self.offset_index = self.time_index = None
        try:
            if keep_open:
                log_file = self._own_file = OpenFile(open_fd(self.log_path, os.O_RDWR | os.O_CREAT))
            else:
                log_file = self._cached_file.get(self.log_path, create=True)
            self.size = os.fstat(log_file.fd).st_size
            index_bytes = config.segment_index_bytes
            index_path = directory / segment_file_name(base_offset, ".index", suffix)
            time_index_path = directory / segment_file_name(base_offset, ".timeindex", suffix)
            self._index_missing = not (index_path.exists() and time_index_path.exists())
            self.offset_index = OffsetIndex(index_path, base_offset, index_bytes, writable=False)
            self.time_index = TimeIndex(time_index_path, base_offset, index_bytes, writable=False)
        except BaseException:
            self.close()  # what was made so far: a descriptor, a map
            raise
        self._bytes_since_last_index_entry = 0
        ts, off = self.time_index.last_entry if self.time_index.entries else (NO_TIMESTAMP, base_offset)
        self.max_timestamp = ts  # largest batch max timestamp in the segment, -1 if unknown
        self.offset_of_max_timestamp = off
        self._rolling_based_timestamp: int | None = None  # first batch's max timestamp
        self._next_offset: int | None = None  # cached end offset, computed on demand

    # -- facts ---------------------------------------------------------------

    def _file(self) -> OpenFile:
        """The open ``.log``, from the cache (opened again if it was evicted)."""
        if self._closed:
            raise SegmentClosedError(f"{self.log_path} is closed")
        return self._own_file or self._cached_file.get(self.log_path)

    def _check_open(self) -> None:
        """Before an index lookup: a closed segment's indexes are unmapped."""
        if self._closed:
            raise SegmentClosedError(f"{self.log_path} is closed")

    @property
    def fd(self) -> int:
        """The ``.log``'s own descriptor, which only a segment made with
        ``keep_open`` has: one from the cache would be no one's to use (it may
        be closed on eviction, and its number given to another file)."""
        if self._own_file is None:
            raise ValueError(f"{self.log_path} holds no descriptor of its own (made without keep_open)")
        return self._own_file.fd

    # Each use holds the OpenFile in a local: the descriptor cannot close
    # under the call, whatever the cache does meanwhile.

    def pread(self, length: int, position: int) -> bytes:
        log_file = self._file()
        return os.pread(log_file.fd, length, position)

    def read_header(self, position: int) -> BatchHeader | None:
        """The header of the batch at ``position``; None past the end or if torn."""
        if position + HEADER_BYTES > self.size:
            return None
        raw = self.pread(HEADER_BYTES, position)
        if len(raw) < HEADER_BYTES:
            return None
        base, blen, epoch, lod, max_ts = _HEADER.unpack_from(raw)
        return BatchHeader(position, blen + LOG_OVERHEAD, base, base + lod, max_ts, epoch)

    def walk(self, position: int = 0):
        """Batch headers from ``position`` (a batch boundary) to the end of the file."""
        while True:
            header = self.read_header(position)
            if header is None or header.length < HEADER_BYTES or position + header.length > self.size:
                return
            yield header
            position += header.length

    @property
    def next_offset(self) -> int:
        """The offset after the last batch in this segment (base offset when empty)."""
        if self._next_offset is None:
            self._check_open()
            offset, pos = self.offset_index.lookup(2**62)
            nxt = self.base_offset
            for header in self.walk(pos if self.offset_index.entries else 0):
                nxt = header.last_offset + 1
            self._next_offset = nxt
        return self._next_offset

    @property
    def largest_timestamp(self) -> int:
        """Max record timestamp, or the file's mtime when no timestamp is known (as Kafka)."""
        if self.max_timestamp >= 0:
            return self.max_timestamp
        return int(os.stat(self.log_path).st_mtime * 1000)

    @property
    def rolling_based_timestamp(self) -> int | None:
        if self._rolling_based_timestamp is None and self.size > 0:
            header = self.read_header(0)
            self._rolling_based_timestamp = header.max_timestamp if header else None
        return self._rolling_based_timestamp

    def should_roll(self, batch_bytes: int, batches: int, max_timestamp: int, last_offset: int) -> bool:
        """Kafka's roll rule: full by size, by time, by index, or by relative offset range.

        An index is "full" when it could not take one entry per batch of this
        append, so an append never runs out of index room halfway.
        """
        if self.size == 0:
            return False
        if self.size + batch_bytes > self.config.segment_bytes:
            return True
        first_ts = self.rolling_based_timestamp
        if first_ts is not None and max_timestamp - first_ts > self.config.segment_ms:
            return True
        if self.offset_index.entries + batches > self.offset_index.max_entries:
            return True
        if self.time_index.entries + batches > self.time_index.max_entries - 1:  # one slot is the roll's
            return True
        return last_offset - self.base_offset > MAX_RELATIVE_OFFSET

    # -- writing -------------------------------------------------------------

    def make_active(self) -> None:
        """Prepare the indexes for appends (preallocated, mapped)."""
        self.offset_index.make_writable()
        self.time_index.make_writable()

    def append(self, pieces: list[bytes | bytearray | memoryview], infos: list[BatchInfo], total: int) -> None:
        """Append whole batches whose offsets are assigned; index them sparsely.

        ``pieces`` concatenated are the ``total`` bytes of the non-empty
        ``infos`` batches (positions relative to the first piece), whose
        offsets the caller keeps within MAX_RELATIVE_OFFSET of the base; they
        go out in one ``pwritev``. Bytes and index entries land together or
        not at all.

        Invariants, checked before a byte is written: the batches' offsets
        start at or past the segment's next offset and stay within
        MAX_RELATIVE_OFFSET of its base; the segment stays within
        MAX_SEGMENT_BYTES (u32 index positions). Each index entry points
        into the bytes just written.
        """
        start = self.size
        first, last = infos[0].base_offset, infos[-1].base_offset + infos[-1].last_offset_delta
        next_offset = self._next_offset  # the property's cache, read inline: this is on every append
        if next_offset is None:
            next_offset = self.next_offset
        if first < next_offset or last - self.base_offset > MAX_RELATIVE_OFFSET or start + total > MAX_SEGMENT_BYTES:
            raise InvariantError(
                f"{self.log_path.name}: an append of offsets {first}..{last}, {total} bytes, does not fit "
                f"after offset {self.next_offset - 1} at byte {start} (at most offset "
                f"{self.base_offset + MAX_RELATIVE_OFFSET}, byte {MAX_SEGMENT_BYTES})"
            )
        log_file = self._file()
        _pwrite_all(log_file.fd, pieces, total, start, self.log_path)
        self.size = start + total
        saved = (self.max_timestamp, self.offset_of_max_timestamp, self._rolling_based_timestamp,
                 self._bytes_since_last_index_entry, self._next_offset)  # fmt: skip
        try:
            if start == 0:
                self._rolling_based_timestamp = infos[0].max_timestamp
            interval = self.config.index_interval_bytes
            since = self._bytes_since_last_index_entry
            for info in infos:
                last_offset = info.base_offset + info.last_offset_delta
                if info.max_timestamp > self.max_timestamp:
                    self.max_timestamp = info.max_timestamp
                    self.offset_of_max_timestamp = last_offset
                # A full index skips entries (lookups then walk a little
                # further): an append never fails halfway for want of room.
                if since > interval and self.offset_index.entries < self.offset_index.max_entries:
                    if not 0 <= info.position < total:
                        raise InvariantError(f"{self.log_path.name}: batch at {info.position} is not in the append")
                    self.offset_index.append(last_offset, start + info.position)
                    self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
                    since = 0
                since += info.length
            self._bytes_since_last_index_entry = since
            self._next_offset = last_offset + 1
        except BaseException:
            self.offset_index.truncate_to(infos[0].base_offset)
            self.time_index.truncate_to(infos[0].base_offset)
            self.truncate_bytes(start)
            (self.max_timestamp, self.offset_of_max_timestamp, self._rolling_based_timestamp,
             self._bytes_since_last_index_entry, self._next_offset) = saved  # fmt: skip
            raise

    def on_become_inactive(self) -> None:
        """No more appends: record the final max timestamp and trim the indexes."""
        if self.max_timestamp >= 0:
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp, final=True)
        self.offset_index.trim()
        self.time_index.trim()

    def flush(self) -> None:
        try:
            log_file = self._file()
            os.fsync(log_file.fd)
            self.offset_index.flush()
            self.time_index.flush()
        except OSError as e:
            raise StorageError(f"fsync of {self.log_path} failed: {e}") from e

    # -- reading -------------------------------------------------------------

    def translate_offset(self, offset: int, start_position: int = 0) -> BatchHeader | None:
        """The first batch whose last offset is >= ``offset``, or None.

        Invariant: the index points within the segment. One that points past
        its end would read as nothing there (records silently skipped)."""
        self._check_open()
        _, position = self.offset_index.lookup(offset)
        if position > self.size:
            raise InvariantError(f"{self.offset_index.path.name}: offset {offset} maps to byte {position}, "
                                 f"past the end of {self.log_path.name} ({self.size} bytes)")  # fmt: skip
        for header in self.walk(max(position, start_position)):
            if header.last_offset >= offset:
                return header
        return None

    def read(
        self, start_offset: int, max_bytes: int, max_position: int | None = None, min_one_batch: bool = True
    ) -> FileSlice | None:
        """Bytes from the batch holding ``start_offset``, at most ``max_bytes``
        (or the whole first batch if ``min_one_batch``) and ending before
        ``max_position``; None when nothing is readable here. The slice lies
        within the segment's bytes by construction, from a batch boundary
        translate_offset checked."""
        header = self.translate_offset(start_offset)
        if header is None:
            return None
        end = self.size if max_position is None else min(max_position, self.size)
        if header.position >= end:
            return None
        limit = max(max_bytes, header.length) if min_one_batch else max_bytes
        length = min(end - header.position, limit)
        if length <= 0:
            return None
        return FileSlice(self._file(), header.position, length)

    def find_offset_by_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(timestamp, offset) of the first record with timestamp >= ``timestamp``."""
        from riverlog.client.records import RecordBatch  # decoding is only needed here, off the hot path

        self._check_open()
        _, offset = self.time_index.lookup(timestamp)
        start = self.translate_offset(offset)
        if start is None:
            return None
        for header in self.walk(start.position):
            if header.max_timestamp < timestamp:
                continue
            batch = RecordBatch(self.pread(header.length, header.position))
            for record in batch.records():
                if record.timestamp >= timestamp:
                    return record.timestamp, record.offset
        return None

    # -- recovery and truncation --------------------------------------------

    def truncate_bytes(self, position: int) -> None:
        log_file = self._file()
        os.ftruncate(log_file.fd, position)
        self.size = position

    def truncate_to(self, offset: int) -> int:
        """Remove every batch whose last offset is >= ``offset``; returns bytes removed."""
        header = self.translate_offset(offset)
        if header is None:
            return 0
        self.offset_index.truncate_to(offset)
        self.time_index.truncate_to(offset)
        removed = self.size - header.position
        self.truncate_bytes(header.position)
        # The time index is sparse: batches after its last entry may hold a
        # larger timestamp, so walk them.
        ts, off = self.time_index.last_entry
        self.max_timestamp, self.offset_of_max_timestamp = ts, off
        from_batch = self.translate_offset(off) if self.time_index.entries else None
        for h in self.walk(from_batch.position if from_batch else 0):
            if h.max_timestamp > self.max_timestamp:
                self.max_timestamp, self.offset_of_max_timestamp = h.max_timestamp, h.last_offset
        self._bytes_since_last_index_entry = 0
        self._next_offset = None
        if self.size == 0:
            self._rolling_based_timestamp = None
        return removed

    def sanity_check(self) -> None:
        if self._index_missing and self.size > 0:
            raise CorruptIndexError(f"{self.log_path.name}: index files are missing")
        self.offset_index.sanity_check(self.size)
        self.time_index.sanity_check(self.size)

    # -- files ---------------------------------------------------------------

    def change_suffix(self, suffix: str) -> None:
        """Rename the three files to carry ``suffix`` (e.g. ``.deleted``)."""
        new_log = self.dir / segment_file_name(self.base_offset, ".log", suffix)
        os.rename(self.log_path, new_log)
        self.log_path = new_log
        self.offset_index.rename(self.dir / segment_file_name(self.base_offset, ".index", suffix))
        self.time_index.rename(self.dir / segment_file_name(self.base_offset, ".timeindex", suffix))
        self.suffix = suffix

    def move_to(self, directory: Path) -> None:
        """Its directory was renamed (a deleted partition): follow it, as files
        are reopened and resized by path."""
        self.dir = directory
        self.log_path = directory / self.log_path.name
        self.offset_index.path = directory / self.offset_index.path.name
        self.time_index.path = directory / self.time_index.path.name

    def close(self) -> None:
        """Let go of the maps and the descriptor (the indexes trimmed first).
        Idempotent, and complete even when trimming fails (a full disk): the
        error is raised after, with nothing left mapped or open."""
        if not self._closed:
            self._let_go(lambda index: index.close())

    def delete(self) -> None:
        self._let_go(lambda index: index.delete())
        self.log_path.unlink(missing_ok=True)

    def _let_go(self, finish) -> None:
        self._closed = True
        error = None
        for index in (self.offset_index, self.time_index):
            if index is None:  # __init__ failed before making it
                continue
            try:
                finish(index)
            except BaseException as e:
                index.release()
                error = error or e
        self._cached_file.discard()  # a slice being sent keeps its descriptor until done
        self._own_file = None
        if error is not None:
            raise error

    def __repr__(self) -> str:
        return f"LogSegment({self.log_path.name}, size={self.size})"


def close_quietly(seg: LogSegment) -> None:
    """Close a segment on an error path: the error being raised is the one to report."""
    try:
        seg.close()
    except Exception as e:  # noqa: BLE001 - see the docstring
        log.debug("closing %s after a failure: %s", seg, e)


def discard_quietly(seg: LogSegment) -> None:
    """A segment made but never added to the log (a roll that failed): its
    maps and descriptor go, and its files as far as the disk lets them."""
    close_quietly(seg)
    for path in (seg.log_path, seg.offset_index.path, seg.time_index.path):
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            log.debug("could not remove %s after a failed roll: %s", path, e)


def _pwrite_all(fd: int, pieces: list, total: int, position: int, path: Path) -> None:
    """Write the ``total`` bytes of ``pieces`` back to back at ``position``; on
    failure cut the file back so nothing of them is left."""
    try:
        if faults.installed:
            faults.fire("write", path)
        done = os.pwritev(fd, pieces, position) if len(pieces) <= _IOV_MAX else 0
        if done < total:  # a short write (or too many pieces): go on piece by piece
            rest = memoryview(b"".join(pieces))[done:]
            while rest:
                n = os.pwrite(fd, rest, position + done)
                done += n
                rest = rest[n:]
    except OSError as e:
        try:
            os.ftruncate(fd, position)
        except OSError:
            log.exception("could not cut %s back to %d after a failed write", path, position)
        kind = "disk full" if e.errno == errno.ENOSPC else "write failed"
        raise StorageError(f"{kind} appending to {path}: {e}") from e
