"""Which compacted logs the cleaner cleans, and over which offsets (Kafka's
LogCleanerManager rules, as pure functions of a log's facts).

A log is split at two offsets::

    [log start, first dirty)           clean: compacted by an earlier pass
    [first dirty, first uncleanable)   cleanable: written since, and allowed
    [first uncleanable, log end)       not touched by this pass

The first dirty offset is the cleaner checkpoint (where the last pass ended),
reset to the log start when it lies outside the log. The first uncleanable
offset is the lowest of: the active segment's base (never cleaned: segment.ms
rolls on the next append only, so an idle log's last records stay there, as
in Kafka), the high watermark, and the first dirty segment holding a record
younger than ``min.compaction.lag.ms``; always rounded down to a segment base.

The dirty ratio is cleanable bytes / (clean bytes + cleanable bytes): the
active segment and whatever else is uncleanable count on neither side. A log
is cleaned when the ratio is above ``min.cleanable.dirty.ratio``, or when it
has cleanable bytes and a dirty record older than ``max.compaction.lag.ms``,
or when tombstones kept by an earlier pass are due for removal (riverlog's
addition: Kafka waits for the ratio, so on an idle log its tombstones outlive
``delete.retention.ms`` indefinitely). The filthiest log goes first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SegmentFacts:
    base_offset: int
    size_bytes: int
    first_timestamp: int | None  # the first batch's max timestamp (None: empty)
    largest_timestamp: int


@dataclass(frozen=True)
class LogFacts:
    """What the choice needs to know of one compacted log."""

    name: str
    segments: tuple[SegmentFacts, ...]  # by base offset; the last is the active one
    log_start_offset: int
    log_end_offset: int
    high_watermark: int
    first_dirty_offset: int | None  # the cleaner checkpoint; None: never cleaned
    min_cleanable_dirty_ratio: float
    min_compaction_lag_ms: int
    max_compaction_lag_ms: int
    tombstones_due_ms: int | None = None  # when tombstones kept by a pass may go


@dataclass(frozen=True)
class LogToClean:
    name: str
    first_dirty_offset: int
    first_uncleanable_offset: int
    clean_bytes: int
    cleanable_bytes: int
    reason: str  # "dirty ratio", "max.compaction.lag.ms" or "tombstones due"

    @property
    def dirty_ratio(self) -> float:
        total = self.clean_bytes + self.cleanable_bytes
        return self.cleanable_bytes / total if total else 0.0


def first_dirty_offset(log: LogFacts) -> int:
    """The checkpoint, or the log start when there is none or it lies outside the log
    (truncated, or records deleted): then the whole log is taken as dirty."""
    checkpoint = log.first_dirty_offset
    if checkpoint is None or not log.log_start_offset <= checkpoint <= log.log_end_offset:
        return log.log_start_offset
    return checkpoint


def first_uncleanable_offset(log: LogFacts, now_ms: int) -> int:
    """The base of the first segment this pass may not clean (see the module doc)."""
    dirty = first_dirty_offset(log)
    limit = min(log.segments[-1].base_offset, log.high_watermark)
    if log.min_compaction_lag_ms > 0:
        for seg, end in _with_ends(log):
            if end > dirty and seg.size_bytes and seg.largest_timestamp > now_ms - log.min_compaction_lag_ms:
                limit = min(limit, seg.base_offset)
                break
    # Round down to a segment: a segment is cleaned whole or not at all.
    base = log.segments[0].base_offset
    for seg in log.segments:
        if seg.base_offset > limit:
            break
        base = seg.base_offset
    return base


def log_to_clean(log: LogFacts, now_ms: int) -> LogToClean | None:
    """The log's cleaning range and why it is due; None when it is not."""
    dirty = first_dirty_offset(log)
    uncleanable = first_uncleanable_offset(log, now_ms)
    clean_bytes = cleanable_bytes = 0
    oldest_dirty_ts = None
    for seg, end in _with_ends(log):
        if seg.base_offset >= uncleanable:
            break
        if end <= dirty:
            clean_bytes += seg.size_bytes
        else:
            cleanable_bytes += seg.size_bytes
            ts = seg.first_timestamp
            if ts is not None and ts >= 0 and (oldest_dirty_ts is None or ts < oldest_dirty_ts):
                oldest_dirty_ts = ts
    found = LogToClean(log.name, dirty, max(dirty, uncleanable), clean_bytes, cleanable_bytes, "")
    if cleanable_bytes and found.dirty_ratio > log.min_cleanable_dirty_ratio:
        return replace(found, reason="dirty ratio")
    if cleanable_bytes and oldest_dirty_ts is not None and oldest_dirty_ts < now_ms - log.max_compaction_lag_ms:
        return replace(found, reason="max.compaction.lag.ms")
    if clean_bytes and log.tombstones_due_ms is not None and log.tombstones_due_ms <= now_ms:
        return replace(found, reason="tombstones due")
    return None


def logs_to_clean(logs: list[LogFacts], now_ms: int) -> list[LogToClean]:
    """The logs due for a pass, filthiest (highest dirty ratio) first."""
    due = [c for c in (log_to_clean(lg, now_ms) for lg in logs) if c is not None]
    return sorted(due, key=lambda c: c.dirty_ratio, reverse=True)


def _with_ends(log: LogFacts):
    """(segment, offset after its range) pairs."""
    segs = log.segments
    for i, seg in enumerate(segs):
        yield seg, segs[i + 1].base_offset if i + 1 < len(segs) else log.log_end_offset
