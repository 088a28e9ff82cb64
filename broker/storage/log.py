"""Log: the segments of one partition, in directory ``<topic>-<partition>/``.

Holds segments sorted by base offset; the last is the active segment, the
only one appended to. Offsets satisfy, at all times::

    first segment base <= log_start_offset <= recovery_point <= log_end_offset

(``recovery_point`` may lag behind ``log_start_offset`` only transiently, and
is clamped). Offsets only grow: an append starts at or past the log end
offset, a leader's exactly at it with its batches back to back, and the
active segment takes it whole within ``segment.bytes`` unless it is empty
(``_append`` checks both, raising InvariantError before a byte is written).
The partition directory also holds ``leader-epoch-checkpoint``
(LeaderEpochCache). The caller serialises calls on one Log (one task per
partition, as the broker does); a Log does no locking of its own.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from typing import NamedTuple
from pathlib import Path

from riverlog.broker.clock import wall_ms
from riverlog.broker.storage.batches import assign_offsets, check_records, max_uncompressed_bytes, validate_batches
from riverlog.broker.storage.checkpoint import fsync_dir
from riverlog.broker.storage.errors import InvalidRecordError, InvariantError, OffsetOutOfRangeError, StorageError
from riverlog.broker.storage.leader_epoch_cache import LeaderEpochCache
from riverlog.broker.storage.log_config import LogConfig
from riverlog.broker.storage.log_dir_failure import LogDirFailures, io_guarded, raise_io_failure
from riverlog.broker.storage.log_recovery import LogRecovery
from riverlog.broker.storage.log_retention import LogRetention
from riverlog.broker.storage.log_segment import (  # CLEANED_SUFFIX: cleaner.py imports it from here
    CLEANED_SUFFIX,
    MAX_RELATIVE_OFFSET,
    MAX_SEGMENT_BYTES,
    FileSlice,
    LogSegment,
    discard_quietly,
)

log = logging.getLogger(__name__)

_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__ (hot path)
# NAME_MAX of Linux file systems (topic names are ASCII): a partition's
# directory, <topic>-<partition>, and its name once deleted must each fit.
MAX_FILE_NAME_BYTES = 255


def parse_partition_dir(name: str) -> tuple[str, int]:
    """``orders-3`` -> ("orders", 3). Topic names may contain dashes."""
    topic, sep, partition = name.rpartition("-")
    if not sep or not topic or not partition.isdigit():
        raise ValueError(f"{name!r} is not a <topic>-<partition> directory")
    return topic, int(partition)


class AppendInfo(NamedTuple):
    first_offset: int
    last_offset: int
    max_timestamp: int
    offset_of_max_timestamp: int
    log_append_time_ms: int  # -1 unless the topic uses LogAppendTime
    batches: int
    records: int
    log_start_offset: int


@dataclass(frozen=True)
class FetchData:
    """A read: the file slice (None when nothing is readable) and the log's bounds."""

    slice: FileSlice | None
    log_start_offset: int
    log_end_offset: int


class Log(LogRecovery, LogRetention):
    """One partition's log. Its parts, each in its own file: appends, reads and
    flushing here; loading and recovery in log_recovery.py; retention,
    truncation and the compaction swap in log_retention.py."""

    clock_ms = staticmethod(wall_ms)  # the wall clock of deletion and retention times

    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        *,
        recovery_point: int = 0,
        log_start_offset: int = 0,
        clean_shutdown: bool = False,
        failures: LogDirFailures | None = None,
        keep_open: bool = False,
    ) -> None:
        self.dir = directory
        self.data_dir = directory.parent
        self.failures = failures  # None: errors go to the caller as they are (the metadata log)
        self.keep_open = keep_open  # segments hold their .log open (see LogSegment)
        self.topic, self.partition = parse_partition_dir(directory.name)
        self.config = config
        directory.mkdir(parents=True, exist_ok=True)
        self._segments: list[LogSegment] = []
        self._bases: list[int] = []
        self._pending_deletes: list[tuple[int, LogSegment]] = []  # (delete at ms, segment)
        self.epoch_cache = LeaderEpochCache(directory)
        self._dir_changed = False  # files created or renamed since the last flush
        self._unflushed_records = 0
        self._last_flush_ms = wall_ms()
        # The cleaner's state (cleaner.py), in memory: after a restart the
        # whole log counts as dirty once, which costs one pass, never a record.
        self.first_dirty_offset: int | None = None  # where the last compaction pass ended
        self.tombstones_due_ms: int | None = None  # when tombstones a pass kept may go
        try:
            self._load(recovery_point, log_start_offset, clean_shutdown)
        except BaseException:
            # A load that failed (a full disk) holds no map or descriptor.
            try:
                self._close_segments()
            except Exception as e:  # noqa: BLE001 - the load's error is the one to report
                log.debug("%s: closing after a failed load: %s", self.name, e)
            raise


    def _new_segment(self, base: int, suffix: str = "") -> LogSegment:
        return LogSegment(self.dir, base, self.config, suffix=suffix, keep_open=self.keep_open)

    def _add_segment(self, seg: LogSegment) -> None:
        i = bisect.bisect_left(self._bases, seg.base_offset)
        self._segments.insert(i, seg)
        self._bases.insert(i, seg.base_offset)

    # -- facts -------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def active(self) -> LogSegment:
        return self._segments[-1]

    @property
    def segments(self) -> list[LogSegment]:
        return list(self._segments)

    @property
    def log_end_offset(self) -> int:
        return self.active.next_offset

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    def _segment_for(self, offset: int) -> int:
        """Index of the segment whose range holds ``offset``."""
        return max(0, bisect.bisect_right(self._bases, offset) - 1)

    # -- appends -----------------------------------------------------------------

    def append_as_leader(
        self, records: bytes | bytearray | memoryview, leader_epoch: int, now: int | None = None
    ) -> AppendInfo:
        """Validate batches and append them at the log end, stamping offsets and epoch.

        All or nothing: an invalid batch anywhere raises before a byte is written.
        Every batch's records are walked (decompressed first if need be): a
        leader appends nothing that a consumer could not read. Followers and
        recovery trust what a leader validated.
        """
        # The _io guard, written out: a wrapper's call costs a few percent of a small append.
        failures = self.failures
        if failures is not None and failures.offline and self.data_dir in failures.offline:
            raise failures.error_for(self.data_dir)
        try:
            max_bytes = self.config.max_message_bytes
            infos = validate_batches(records, max_bytes)
            for info in infos:
                check_records(records, info, max_uncompressed_bytes(max_bytes))
            append_time = None
            if self.config.message_timestamp_type == "LogAppendTime":
                append_time = now if now is not None else wall_ms()
            first = self.log_end_offset
            pieces, infos = assign_offsets(records, infos, first, leader_epoch, append_time)
            info = self._append(pieces, infos, -1 if append_time is None else append_time, first, contiguous=True)
            self.epoch_cache.assign(leader_epoch, first)
            return info
        except (OSError, StorageError) as e:
            raise_io_failure(self, e, "append_as_leader")

    @io_guarded
    def append_as_follower(self, records: bytes | bytearray | memoryview) -> AppendInfo:
        """Append batches that already carry offsets and epochs (replica fetch)."""
        infos = validate_batches(records, MAX_SEGMENT_BYTES)
        expected = leo = self.log_end_offset
        for info in infos:
            if info.base_offset < expected:
                raise InvalidRecordError(
                    f"{self.name}: batch at offset {info.base_offset} is below the log end offset {expected}"
                )
            expected = info.base_offset + info.last_offset_delta + 1
        appended = self._append([records], infos, -1, leo)
        for info in infos:
            self.epoch_cache.assign(info.partition_leader_epoch, info.base_offset)
        return appended

    def _append(self, pieces: list, infos, append_time: int, log_end_offset: int, contiguous: bool = False) -> AppendInfo:
        """Append batches whose offsets are assigned, at ``log_end_offset`` (as
        the caller read it); ``contiguous`` (a leader's) if they must start
        exactly there, back to back."""
        # One pass over the batch facts (a produce request usually holds one).
        total = records = 0
        top = infos[0]
        active = self._segments[-1]
        expected = log_end_offset
        for info in infos:
            if info.base_offset != expected and (contiguous or info.base_offset < expected):
                raise InvariantError(
                    f"{self.name}: a batch at offset {info.base_offset} where offset {expected} comes next"
                )
            expected = info.base_offset + info.last_offset_delta + 1
            total += info.length
            records += info.last_offset_delta + 1
            if info.max_timestamp > top.max_timestamp:
                top = info
        first = infos[0].base_offset
        last = infos[-1].base_offset + infos[-1].last_offset_delta
        if last - first > MAX_RELATIVE_OFFSET:
            # One append goes into one segment, whose offsets span an int32 at most.
            raise InvalidRecordError(f"{self.name}: an append spanning offsets {first}..{last} fits no segment")
        # Roll by Kafka's rules, or when a follower's jump forward would not fit
        # the active segment's relative offsets.
        if active.should_roll(total, len(infos), top.max_timestamp, last) or last - active.base_offset > MAX_RELATIVE_OFFSET:
            active = self.roll(first)
        # The roll rule above kept a non-empty segment within its segment.bytes
        # (the segment's own config, as should_roll reads it).
        if active.size and active.size + total > active.config.segment_bytes:
            raise InvariantError(f"{self.name}: {total} bytes would take {active} past segment.bytes")
        active.append(pieces, infos, total)
        self._unflushed_records += records
        if self._unflushed_records >= self.config.flush_messages:
            self.flush()
        return _new(AppendInfo, (
            first,
            last,
            top.max_timestamp,
            top.base_offset + top.last_offset_delta,
            append_time,
            len(infos),
            records,
            self.log_start_offset,
        ))  # fmt: skip

    @io_guarded
    def roll(self, new_base: int | None = None) -> LogSegment:
        """Close the active segment to appends and start a new one at the log end."""
        base = self.log_end_offset if new_base is None else max(new_base, self.log_end_offset)
        old = self.active
        if old.size == 0 and base == old.base_offset:
            return old
        # The new segment first: if its files cannot be made (out of
        # descriptors, say), the old one stays active and writable.
        seg = self._new_segment(base)
        try:
            seg.make_active()
            if old.size == 0:
                # Nothing in it: replace rather than keep an empty segment behind.
                self._drop_segments([old], wall_ms())
            else:
                old.on_become_inactive()
        except BaseException:
            discard_quietly(seg)  # not in the log: its maps, descriptor and files go
            raise
        self._add_segment(seg)
        self._dir_changed = True
        return seg

    # -- flushing ----------------------------------------------------------------

    @io_guarded
    def flush(self, up_to: int | None = None) -> None:
        """fsync the segments holding offsets [recovery_point, up_to) and advance it."""
        target = self.log_end_offset if up_to is None else min(up_to, self.log_end_offset)
        if target <= self.recovery_point and self._unflushed_records == 0:
            return
        first = self._segment_for(self.recovery_point)
        for seg in self._segments[first:]:
            if seg.base_offset > target:
                break
            seg.flush()
        if self._dir_changed:  # new segment files must survive a crash with their data
            fsync_dir(self.dir)
            self._dir_changed = False
        self.recovery_point = max(self.recovery_point, target)
        if target >= self.log_end_offset:
            self._unflushed_records = 0
        self._last_flush_ms = wall_ms()

    @io_guarded
    def flush_if_due(self, now: int) -> bool:
        """flush.ms: fsync when the oldest unflushed append is that old."""
        if self._unflushed_records and now - self._last_flush_ms >= self.config.flush_ms:
            self.flush()
            return True
        return False

    # -- reads -------------------------------------------------------------------

    def read(
        self, start_offset: int, max_bytes: int, max_offset: int | None = None, min_one_batch: bool = True
    ) -> FetchData:
        """Batches from the one holding ``start_offset``, below ``max_offset`` (the
        high watermark for consumers; the log end when None), at most
        ``max_bytes`` unless the first batch alone is larger and
        ``min_one_batch``. Raises OffsetOutOfRangeError outside [log start, log end]."""
        failures = self.failures  # the _io guard, written out as in append_as_leader
        if failures is not None and failures.offline and self.data_dir in failures.offline:
            raise failures.error_for(self.data_dir)
        try:
            return self._read(start_offset, max_bytes, max_offset, min_one_batch)
        except (OSError, StorageError) as e:
            raise_io_failure(self, e, "read")

    def _read(self, start_offset: int, max_bytes: int, max_offset: int | None, min_one_batch: bool) -> FetchData:
        leo = self.log_end_offset
        if start_offset < self.log_start_offset or start_offset > leo:
            raise OffsetOutOfRangeError(
                f"{self.name}: offset {start_offset} is outside [{self.log_start_offset}, {leo}]"
            )
        bound = leo if max_offset is None else min(max_offset, leo)
        empty = FetchData(None, self.log_start_offset, leo)
        if start_offset >= bound:
            return empty
        bound_index, bound_position = len(self._segments), None
        if bound < leo:
            bound_index = self._segment_for(bound)
            header = self._segments[bound_index].translate_offset(bound)
            bound_position = header.position if header else None
        i = self._segment_for(start_offset)
        offset = start_offset
        while i < len(self._segments) and i <= bound_index:
            seg = self._segments[i]
            got = seg.read(offset, max_bytes, bound_position if i == bound_index else None, min_one_batch)
            if got is not None:
                return FetchData(got, self.log_start_offset, leo)
            i += 1
            if i < len(self._segments):
                offset = self._segments[i].base_offset  # a gap (compaction): go on from there
        return empty

    @io_guarded
    def find_offset_by_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(timestamp, offset) of the first record at or after ``timestamp``, at or
        after the log start; None if every record is older."""
        for seg in self._segments:
            if seg.size == 0 or seg.largest_timestamp < timestamp:
                continue
            found = seg.find_offset_by_timestamp(timestamp)
            if found is not None:
                ts, offset = found
                if offset >= self.log_start_offset:
                    return ts, offset
                # The record is before the log start: the answer is a later one.
                later = self._first_at_or_after(timestamp, self.log_start_offset)
                if later is not None:
                    return later
        return None

    def _first_at_or_after(self, timestamp: int, start: int) -> tuple[int, int] | None:
        from riverlog.client.records import RecordBatch

        for seg in self._segments[self._segment_for(start) :]:
            for header in seg.walk(0):
                if header.last_offset < start or header.max_timestamp < timestamp:
                    continue
                for record in RecordBatch(seg.pread(header.length, header.position)).records():
                    if record.offset >= start and record.timestamp >= timestamp:
                        return record.timestamp, record.offset
        return None


    # -- lifecycle ---------------------------------------------------------------

    def move_to(self, directory: Path) -> None:
        """The partition directory was renamed to ``directory`` (for deletion)."""
        self.dir = directory
        self.epoch_cache.path = directory / self.epoch_cache.path.name
        for seg in self._segments + [seg for _, seg in self._pending_deletes]:
            seg.move_to(directory)

    def close(self, flush: bool = True) -> None:
        """Close every file; with ``flush`` (a clean shutdown) fsync and finish the indexes first.
        Every segment lets go of its maps and descriptor even when one fails
        (its error is raised after)."""
        try:
            if flush:
                self.flush()
                self.active.on_become_inactive()
        finally:
            self._close_segments()

    def _close_segments(self) -> None:
        error = None
        for seg in self._segments:
            try:
                seg.close()
            except Exception as e:  # noqa: BLE001 - the others still close; the first error is raised
                error = error or e
        for _, seg in self._pending_deletes:
            try:
                seg.delete()
            except Exception as e:  # noqa: BLE001 - as above
                error = error or e
        self._pending_deletes.clear()
        if error is not None:
            raise error

    def __repr__(self) -> str:
        return f"Log({self.name}, start={self.log_start_offset}, end={self.log_end_offset})"
