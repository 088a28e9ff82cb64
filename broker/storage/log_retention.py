"""Retention, DeleteRecords, replica truncation and the delayed deletion of
segments, and the compaction swap: the ways segments leave a Log (part of it).

Split from log.py along its seam (a Log's state is one; this file holds what
removes from it). A segment leaves in two steps, as Kafka's: renamed to
``.deleted`` at once, deleted after ``file.delete.delay.ms`` so that a read
handed out before keeps a valid file.
"""

from __future__ import annotations

from riverlog.broker.storage.checkpoint import fsync_dir
from riverlog.broker.storage.errors import OffsetOutOfRangeError, StorageError
from riverlog.broker.storage.log_dir_failure import io_guarded
from riverlog.broker.storage.log_segment import (
    DELETED_SUFFIX,
    SWAP_SUFFIX,
    LogSegment,
    close_quietly,
    discard_quietly,
)


class LogRetention:
    """Log's retention and truncation (mixed into Log, whose state it uses)."""

    @io_guarded
    def delete_old_segments(
        self, now: int | None = None, high_watermark: int | None = None, *, retention: bool = True
    ) -> int:
        """Retention: drop whole segments past retention.ms / retention.bytes (with
        cleanup.policy delete and ``retention``) or wholly below the log start
        offset. Only segments entirely below ``high_watermark`` go. Returns how many."""
        now = self.clock_ms() if now is None else now
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

    @io_guarded
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

    @io_guarded
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
            self._schedule_delete(doomed, self.clock_ms())
        self.active.truncate_to(offset)
        self.active.make_active()
        self.epoch_cache.truncate_from_end(self.log_end_offset)
        self.recovery_point = min(self.recovery_point, self.log_end_offset)
        if self.first_dirty_offset is not None:  # what comes again past the end is dirty
            self.first_dirty_offset = min(self.first_dirty_offset, self.log_end_offset)
        return True

    @io_guarded
    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop all data; the log restarts empty at ``offset`` (a replica far behind)."""
        old = list(self._segments)
        self._segments.clear()
        self._bases.clear()
        self._schedule_delete(old, self.clock_ms())
        seg = self._new_segment(offset)
        try:
            seg.make_active()
        except BaseException:
            discard_quietly(seg)
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
                    close_quietly(left)
                raise StorageError(f"could not rename {seg.log_path} for deletion: {e}") from e
            self._pending_deletes.append((now + self.config.file_delete_delay_ms, seg))
        self._dir_changed = True

    @io_guarded
    def delete_expired_files(self, now: int) -> int:
        due = [seg for at, seg in self._pending_deletes if at <= now]
        self._pending_deletes = [(at, seg) for at, seg in self._pending_deletes if at > now]
        for seg in due:
            seg.delete()
        return len(due)

    # -- compaction support (cleaner.py) ---------------------------------------

    @io_guarded
    def replace_segments(self, old: list[LogSegment], new: LogSegment, now: int) -> None:
        """Swap cleaned ``new`` (suffix .cleaned) in for ``old``, crash-safely:
        .cleaned -> .swap, old -> .deleted, .swap -> live name."""
        try:
            new.flush()
            new.change_suffix(SWAP_SUFFIX)
            self._drop_segments(old, now)
            new.change_suffix("")
        except BaseException:
            close_quietly(new)  # its files stay: the next load finishes or drops the swap
            raise
        self._add_segment(new)
        fsync_dir(self.dir)
