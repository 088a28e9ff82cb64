"""Log: the segments of one partition, in directory ``<topic>-<partition>/``.

Holds segments sorted by base offset; the last is the active segment, the
only one appended to. Offsets satisfy, at all times::

    first segment base <= log_start_offset <= recovery_point <= log_end_offset

(``recovery_point`` may lag behind ``log_start_offset`` only transiently, and
is clamped). Offsets only grow: an append starts at or past the log end
offset, a leader's exactly at it with its batches back to back, and the
active segment takes it whole within ``segment.bytes`` unless it is empty
(``_append`` checks both, raising InvariantError before a byte is written). The partition directory also holds ``leader-epoch-checkpoint``
(LeaderEpochCache). The caller serialises calls on one Log (one task per
partition, as the broker does); a Log does no locking of its own.
"""

from __future__ import annotations

import bisect
import functools
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import NamedTuple, NoReturn
from pathlib import Path

from riverlog.broker.storage.batches import assign_offsets, check_records, max_uncompressed_bytes, validate_batches
from riverlog.broker.storage.checkpoint import fsync_dir
from riverlog.broker.storage.errors import InvalidRecordError, InvariantError, OffsetOutOfRangeError, StorageError
from riverlog.broker.storage.index_file import CorruptIndexError
from riverlog.broker.storage.leader_epoch_cache import LeaderEpochCache
from riverlog.broker.storage.log_dir_failure import LogDirFailures
from riverlog.broker.storage.log_config import LogConfig
from riverlog.broker.storage.log_segment import MAX_RELATIVE_OFFSET, FileSlice, LogSegment

log = logging.getLogger(__name__)

DELETED_SUFFIX = ".deleted"
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
_SEGMENT_FILE = re.compile(r"^(\d{20})\.(log|index|timeindex)((?:\.deleted|\.cleaned|\.swap)?)$")
_RECOVERY_MAX_BATCH = 2**31 - 1  # recovery accepts any batch that fits a segment
_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__ (hot path)
# NAME_MAX of Linux file systems (topic names are ASCII): a partition's
# directory, <topic>-<partition>, and its name once deleted must each fit.
MAX_FILE_NAME_BYTES = 255


def now_ms() -> int:
    return int(time.time() * 1000)


def _io(method):
    """Run ``method`` under the log's log-directory failure guard: an error is
    raised as LogDirFailures.raise_for says (a storage fault takes the data
    directory offline, running out of descriptors does not), and nothing runs
    on a directory that is offline."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        failures = self.failures
        if failures is None:
            return method(self, *args, **kwargs)
        if failures.offline and self.data_dir in failures.offline:
            raise failures.error_for(self.data_dir)
        try:  # no context manager: this is on every append and read
            return method(self, *args, **kwargs)
        except (OSError, StorageError) as e:
            failures.raise_for(e, self.data_dir, f"{method.__name__} on {self.name}")

    return guarded


def _io_failed(self: Log, error: BaseException, what: str) -> NoReturn:
    """The guard's answer to ``error`` (for the methods that write the guard out)."""
    if self.failures is None:
        raise error
    self.failures.raise_for(error, self.data_dir, f"{what} on {self.name}")


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


class Log:
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
        self._last_flush_ms = now_ms()
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

    # -- loading and recovery -------------------------------------------------

    def _load(self, recovery_point: int, log_start_offset: int, clean_shutdown: bool) -> None:
        swaps: list[int] = []
        bases: set[int] = set()
        for entry in os.listdir(self.dir):
            m = _SEGMENT_FILE.match(entry)
            if entry.endswith(".tmp") or (m and m.group(3) in (CLEANED_SUFFIX, DELETED_SUFFIX)):
                # A cleaning that did not reach its swap, or a deletion that
                # was scheduled: either way the files are no longer wanted.
                (self.dir / entry).unlink()
            elif m and m.group(3) == SWAP_SUFFIX:
                if m.group(2) == "log":
                    swaps.append(int(m.group(1)))
            elif m and m.group(2) == "log":
                bases.add(int(m.group(1)))
        for base in swaps:
            bases = self._complete_swap(base, bases)
        for entry in os.listdir(self.dir):
            m = _SEGMENT_FILE.match(entry)
            if not m or m.group(2) == "log":
                continue
            if int(m.group(1)) not in bases:
                (self.dir / entry).unlink()  # index files without their .log are stale
            elif m.group(3) == SWAP_SUFFIX:
                # The swap's .log went live before a crash: its indexes follow it.
                os.replace(self.dir / entry, self.dir / entry[: -len(SWAP_SUFFIX)])

        for base in sorted(bases):
            self._add_segment(self._new_segment(base))
        if not self._segments:
            self._add_segment(self._new_segment(max(log_start_offset, 0)))

        self._recover(recovery_point if not clean_shutdown else None)
        self.active.make_active()
        if self.epoch_cache.corrupt or (not self.epoch_cache.entries() and self.active.next_offset > self._bases[0]):
            self._rebuild_epoch_cache()

        self.log_start_offset = max(log_start_offset, self._segments[0].base_offset)
        self.log_start_offset = min(self.log_start_offset, self.log_end_offset)
        self.recovery_point = self.log_end_offset if clean_shutdown else min(
            max(recovery_point, self.log_start_offset), self.log_end_offset
        )
        self.epoch_cache.truncate_from_end(self.log_end_offset)
        self.epoch_cache.truncate_from_start(self.log_start_offset)

    def _complete_swap(self, base: int, bases: set[int]) -> set[int]:
        """Finish a compaction swap that a crash interrupted (see cleaner.py)."""
        swap = self._new_segment(base, SWAP_SUFFIX)
        try:
            end = swap.next_offset
            replaced = {b for b in bases if base <= b < end}
            for b in replaced:
                self._new_segment(b).delete()  # lets go of its maps and descriptor even if it fails
        finally:
            swap.close()
        for ext in (".log", ".index", ".timeindex"):
            src = self.dir / f"{base:020d}{ext}{SWAP_SUFFIX}"
            if src.exists():
                os.replace(src, self.dir / f"{base:020d}{ext}")
        return (bases - replaced) | {base}

    def _recover(self, recovery_point: int | None) -> None:
        """Scan segments that may hold unflushed data; cut at the first bad batch.

        ``recovery_point`` None means a clean shutdown: nothing is scanned, but
        an index that fails its sanity check is still rebuilt.
        """
        i = 0
        while i < len(self._segments):
            seg = self._segments[i]
            is_last = i == len(self._segments) - 1
            next_base = None if is_last else self._segments[i + 1].base_offset
            needs_scan = recovery_point is not None and (next_base is None or next_base > recovery_point)
            if not needs_scan:
                try:
                    seg.sanity_check()
                except CorruptIndexError as e:
                    log.warning("%s: rebuilding index: %s", self.name, e)
                    needs_scan = True
            if needs_scan:
                result = seg.recover(_RECOVERY_MAX_BATCH, next_base)
                for epoch, offset in result.epochs:
                    self.epoch_cache.assign(epoch, offset)
                if not is_last:
                    seg.on_become_inactive()
                if result.bytes_truncated:
                    log.warning(
                        "%s: recovery dropped %d bytes of invalid or torn data from offset %d in %s",
                        self.name, result.bytes_truncated, seg.next_offset, seg.log_path.name,
                    )
                    # Everything after a bad batch is unreachable by offset: drop it.
                    for later in self._segments[i + 1 :]:
                        log.warning("%s: recovery deleted segment %s after the bad batch", self.name, later)
                        later.delete()
                    del self._segments[i + 1 :]
                    del self._bases[i + 1 :]
                    break
            i += 1
        # An empty segment other than the active one carries no offsets; it
        # stays (Kafka keeps them too) because its base offset anchors the next.

    def _rebuild_epoch_cache(self) -> None:
        """The cache is derived from batch headers: read them all (rare: a lost or corrupt checkpoint)."""
        log.warning("%s: rebuilding the leader epoch cache from batch headers", self.name)
        self.epoch_cache.clear(force=True)
        for seg in self._segments:
            for header in seg.walk(0):
                self.epoch_cache.assign(header.partition_leader_epoch, header.base_offset)

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
                append_time = now if now is not None else now_ms()
            first = self.log_end_offset
            pieces, infos = assign_offsets(records, infos, first, leader_epoch, append_time)
            info = self._append(pieces, infos, -1 if append_time is None else append_time, contiguous=True)
            self.epoch_cache.assign(leader_epoch, first)
            return info
        except (OSError, StorageError) as e:
            self._io_failed(e, "append_as_leader")

    @_io
    def append_as_follower(self, records: bytes | bytearray | memoryview) -> AppendInfo:
        """Append batches that already carry offsets and epochs (replica fetch)."""
        infos = validate_batches(records, _RECOVERY_MAX_BATCH)
        expected = self.log_end_offset
        for info in infos:
            if info.base_offset < expected:
                raise InvalidRecordError(
                    f"{self.name}: batch at offset {info.base_offset} is below the log end offset {expected}"
                )
            expected = info.base_offset + info.last_offset_delta + 1
        appended = self._append([records], infos, -1)
        for info in infos:
            self.epoch_cache.assign(info.partition_leader_epoch, info.base_offset)
        return appended

    def _append(self, pieces: list, infos, append_time: int, contiguous: bool = False) -> AppendInfo:
        """Append batches whose offsets are assigned; ``contiguous`` (a leader's)
        if they must start exactly at the log end offset, back to back."""
        # One pass over the batch facts (a produce request usually holds one).
        total = records = 0
        top = infos[0]
        active = self._segments[-1]
        expected = active.next_offset  # the log end offset
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
        if active.size and active.size + total > self.config.segment_bytes:
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

    @_io
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
                self._drop_segments([old], now_ms())
            else:
                old.on_become_inactive()
        except BaseException:
            _discard_quietly(seg)  # not in the log: its maps, descriptor and files go
            raise
        self._add_segment(seg)
        self._dir_changed = True
        return seg

    # -- flushing ----------------------------------------------------------------

    @_io
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
        self._last_flush_ms = now_ms()

    @_io
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
            self._io_failed(e, "read")

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

    @_io
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

    # -- retention, delete-records, truncation -------------------------------

    @_io
    def delete_old_segments(
        self, now: int | None = None, high_watermark: int | None = None, *, retention: bool = True
    ) -> int:
        """Retention: drop whole segments past retention.ms / retention.bytes (with
        cleanup.policy delete and ``retention``) or wholly below the log start
        offset. Only segments entirely below ``high_watermark`` go. Returns how many."""
        now = now_ms() if now is None else now
        hw = self.log_end_offset if high_watermark is None else min(high_watermark, self.log_end_offset)
        by_policy = retention and self.config.delete
        excess = self.size_bytes - self.config.retention_bytes if self.config.retention_bytes >= 0 else -1
        doomed: list[LogSegment] = []
        for i, seg in enumerate(self._segments):
            upper = self._segments[i + 1].base_offset if i + 1 < len(self._segments) else self.log_end_offset
            if upper > hw or (seg is self.active and seg.size == 0):
                break
            below_start = upper <= self.log_start_offset
            by_time = (
                by_policy
                and self.config.retention_ms >= 0
                and now - seg.largest_timestamp > self.config.retention_ms
            )
            by_size = by_policy and excess >= 0 and excess - seg.size >= 0
            if not (below_start or by_time or by_size):
                break
            doomed.append(seg)
            if excess >= 0:
                excess -= seg.size
        if not doomed:
            return 0
        if doomed[-1] is self.active:
            self.roll()  # a log always keeps an active segment
        self._drop_segments(doomed, now)
        self.log_start_offset = max(self.log_start_offset, self._segments[0].base_offset)
        self.recovery_point = max(self.recovery_point, self.log_start_offset)
        self.epoch_cache.truncate_from_start(self.log_start_offset)
        return len(doomed)

    @_io
    def delete_records(self, offset: int, high_watermark: int | None = None) -> int:
        """DeleteRecords: move the log start to ``offset`` (<= high watermark); returns it."""
        hw = self.log_end_offset if high_watermark is None else high_watermark
        if offset < 0 or offset > hw:
            raise OffsetOutOfRangeError(f"{self.name}: cannot delete records up to {offset} (high watermark {hw})")
        if offset > self.log_start_offset:
            self.log_start_offset = offset
            self.epoch_cache.truncate_from_start(offset)
            self.delete_old_segments(high_watermark=hw, retention=False)
        return self.log_start_offset

    @_io
    def truncate_to(self, offset: int) -> bool:
        """Replica truncation: remove every batch with offsets >= ``offset``.

        A batch that straddles ``offset`` goes whole (as in Kafka), so the log
        end may land below ``offset``. Returns whether anything was removed.
        """
        if offset >= self.log_end_offset:
            return False
        if offset < self.log_start_offset:
            self.truncate_fully_and_start_at(offset)
            return True
        # Newest first: a crash halfway leaves a shorter log, never a gap.
        doomed = [s for s in reversed(self._segments) if s.base_offset > offset]
        if doomed:
            for seg in doomed:
                self._segments.remove(seg)
                self._bases.remove(seg.base_offset)
            self._schedule_delete(doomed, now_ms())
        self.active.truncate_to(offset)
        self.active.make_active()
        self.epoch_cache.truncate_from_end(self.log_end_offset)
        self.recovery_point = min(self.recovery_point, self.log_end_offset)
        if self.first_dirty_offset is not None:  # what comes again past the end is dirty
            self.first_dirty_offset = min(self.first_dirty_offset, self.log_end_offset)
        return True

    @_io
    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop all data; the log restarts empty at ``offset`` (a replica far behind)."""
        old = list(self._segments)
        self._segments.clear()
        self._bases.clear()
        self._schedule_delete(old, now_ms())
        seg = self._new_segment(offset)
        try:
            seg.make_active()
        except BaseException:
            _discard_quietly(seg)
            raise
        self._add_segment(seg)
        self.epoch_cache.clear()
        self.log_start_offset = self.recovery_point = offset
        self._unflushed_records = 0
        self.first_dirty_offset = self.tombstones_due_ms = None

    def _drop_segments(self, doomed: list[LogSegment], now: int) -> None:
        for seg in doomed:
            i = self._segments.index(seg)
            del self._segments[i]
            del self._bases[i]
        self._schedule_delete(doomed, now)

    def _schedule_delete(self, segments: list[LogSegment], now: int) -> None:
        """Rename to ``.deleted`` now, delete after file.delete.delay.ms: a
        FileSlice handed out before keeps a valid fd until then."""
        for i, seg in enumerate(segments):
            try:
                seg.change_suffix(DELETED_SUFFIX)
            except OSError as e:
                # Out of the log already, and not pending: close them here or nothing ever will.
                for left in segments[i:]:
                    _close_quietly(left)
                raise StorageError(f"could not rename {seg.log_path} for deletion: {e}") from e
            self._pending_deletes.append((now + self.config.file_delete_delay_ms, seg))
        self._dir_changed = True

    @_io
    def delete_expired_files(self, now: int) -> int:
        due = [seg for at, seg in self._pending_deletes if at <= now]
        self._pending_deletes = [(at, seg) for at, seg in self._pending_deletes if at > now]
        for seg in due:
            seg.delete()
        return len(due)

    # -- compaction support (cleaner.py) ---------------------------------------

    @_io
    def replace_segments(self, old: list[LogSegment], new: LogSegment, now: int) -> None:
        """Swap cleaned ``new`` (suffix .cleaned) in for ``old``, crash-safely:
        .cleaned -> .swap, old -> .deleted, .swap -> live name."""
        try:
            new.flush()
            new.change_suffix(SWAP_SUFFIX)
            self._drop_segments(old, now)
            new.change_suffix("")
        except BaseException:
            _close_quietly(new)  # its files stay: the next load finishes or drops the swap
            raise
        self._add_segment(new)
        fsync_dir(self.dir)

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

    _io_failed = _io_failed

    def __repr__(self) -> str:
        return f"Log({self.name}, start={self.log_start_offset}, end={self.log_end_offset})"


def _close_quietly(seg: LogSegment) -> None:
    """Close a segment on an error path: the error being raised is the one to report."""
    try:
        seg.close()
    except Exception as e:  # noqa: BLE001 - see the docstring
        log.debug("closing %s after a failure: %s", seg, e)


def _discard_quietly(seg: LogSegment) -> None:
    """A segment made but never added to the log (a roll that failed): its
    maps and descriptor go, and its files as far as the disk lets them."""
    _close_quietly(seg)
    for path in (seg.log_path, seg.offset_index.path, seg.time_index.path):
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            log.debug("could not remove %s after a failed roll: %s", path, e)
