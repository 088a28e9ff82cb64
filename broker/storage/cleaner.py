"""Log compaction (``cleanup.policy=compact``): keep the latest record per key.

One pass over a log (Kafka's LogCleaner, simplified to whole passes):

1. The range: the clean part (compacted by earlier passes, up to the cleaner
   checkpoint ``Log.first_dirty_offset``) and the cleanable dirty part after
   it, up to the first uncleanable offset; cleaner_choice.py has the rules
   (never the active segment, nothing past the high watermark or younger than
   ``min.compaction.lag.ms``) and when a log is due for a pass.
2. An offset map, key digest -> last offset of that key, is built over the
   dirty part only: the clean part already holds one record per key (16-byte
   BLAKE2b digests keep memory per key fixed; the map holds at most
   ``max_map_entries``, so a huge keyspace is cleaned in several passes,
   segment by segment).
3. Each group of consecutive segments from the log start to the end of the
   mapped part (grouped up to ``segment.bytes``) is rewritten into a
   ``.cleaned`` segment with the same base offset: a batch whose records all
   survive is copied byte for byte; a batch that loses some is rebuilt with
   the survivors at their original offsets, codec and producer fields; a
   batch that loses all is dropped. A record survives when no later record
   of its key is mapped. A tombstone (null value) survives until a pass after
   the one that cleaned past it finds its segment older than
   ``delete.retention.ms`` (by its largest timestamp), so a reader from the
   start has that long to see the delete after the older values went.
   Records without a key cannot be compacted and are dropped (as Kafka).
   Control batches are kept unchanged.
4. The group is swapped in through ``Log.replace_segments``
   (.cleaned -> .swap -> live name; a crash is finished by Log loading).
5. The checkpoint moves to the end of the mapped part.

Offsets never change; they only get gaps, which readers skip.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from riverlog.broker.clock import monotonic_ms, wall_ms
from riverlog.broker.storage import cleaner_choice
from riverlog.broker.storage.batches import validate_batches
from riverlog.broker.storage.log import CLEANED_SUFFIX, Log
from riverlog.broker.storage.log_segment import LogSegment, segment_file_name
from riverlog.client.records import RecordBatch, build_batch

DEFAULT_MAX_MAP_ENTRIES = 128 * 1024 * 1024 // 24  # log.cleaner.dedupe.buffer.size / entry size


@dataclass
class CleanerStats:
    segments_cleaned: int = 0
    records_read: int = 0
    records_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    first_dirty_offset: int = 0  # the dirty part this pass compacted: [first_dirty_offset, end_offset)
    end_offset: int = 0
    tombstones_kept: int = 0
    duration_ms: float = 0.0


def _digest(key: bytes) -> bytes:
    return hashlib.blake2b(key, digest_size=16).digest()


def _batches(seg: LogSegment):
    for header in seg.walk(0):
        yield RecordBatch(seg.pread(header.length, header.position))


def log_facts(log: Log, high_watermark: int | None = None) -> cleaner_choice.LogFacts:
    """What cleaner_choice needs of ``log`` (the log end when ``high_watermark`` is None)."""
    end = log.log_end_offset
    config = log.config
    return cleaner_choice.LogFacts(
        name=log.name,
        segments=tuple(
            cleaner_choice.SegmentFacts(s.base_offset, s.size, s.rolling_based_timestamp, s.largest_timestamp)
            for s in log.segments
        ),
        log_start_offset=log.log_start_offset,
        log_end_offset=end,
        high_watermark=end if high_watermark is None else min(high_watermark, end),
        first_dirty_offset=log.first_dirty_offset,
        min_cleanable_dirty_ratio=config.min_cleanable_dirty_ratio,
        min_compaction_lag_ms=config.min_compaction_lag_ms,
        max_compaction_lag_ms=config.max_compaction_lag_ms,
        tombstones_due_ms=log.tombstones_due_ms,
    )


def clean_log(
    log: Log,
    now: int | None = None,
    max_map_entries: int = DEFAULT_MAX_MAP_ENTRIES,
    high_watermark: int | None = None,
) -> CleanerStats:
    """One compaction pass over ``log``; a no-op unless its policy includes compact
    and it has a cleanable dirty part or tombstones due for removal.

    Only segments wholly below ``high_watermark`` (the log end when None) are
    cleaned: a newer record that is not replicated yet may still be truncated
    away, so it must not remove an older, committed one. Whether the pass is
    worth it (the dirty ratio) is the caller's choice: LogManager.compact.
    """
    started = monotonic_ms()
    now = wall_ms() if now is None else now
    stats = CleanerStats()
    if not log.config.compact:
        return stats
    facts = log_facts(log, high_watermark)
    dirty = cleaner_choice.first_dirty_offset(facts)
    uncleanable = max(dirty, cleaner_choice.first_uncleanable_offset(facts, now))
    stats.first_dirty_offset = stats.end_offset = dirty
    segments = log.segments
    ends = [s.base_offset for s in segments[1:]] + [log.log_end_offset]
    in_range = [(s, end) for s, end in zip(segments, ends) if s.base_offset < uncleanable]

    offset_map: dict[bytes, int] = {}
    end_offset = dirty
    for seg, end in in_range:
        if end <= dirty:
            continue  # clean: one record per key already
        for batch in _batches(seg):
            if batch.is_control:
                continue
            for record in batch.records():
                if record.key is not None:
                    offset_map[_digest(record.key)] = record.offset
        end_offset = end
        if len(offset_map) >= max_map_entries:
            break  # the rest waits for the next pass
    tombstones_due = log.tombstones_due_ms is not None and log.tombstones_due_ms <= now
    if end_offset == dirty and not tombstones_due:
        return stats
    to_clean = [seg for seg, end in in_range if end <= end_offset]
    clean_bases = {seg.base_offset for seg, end in in_range if end <= dirty}

    tombstone_horizon = now - log.config.delete_retention_ms
    kept_tombstones_due: int | None = None
    for group in _group(to_clean, log.config.segment_bytes):
        for ext in (".log", ".index", ".timeindex"):  # what a failed earlier pass left
            (log.dir / segment_file_name(group[0].base_offset, ext, CLEANED_SUFFIX)).unlink(missing_ok=True)
        cleaned = LogSegment(log.dir, group[0].base_offset, log.config, suffix=CLEANED_SUFFIX)
        try:
            cleaned.make_active()
            for seg in group:
                was_clean = seg.base_offset in clean_bases
                keep_tombstones = not was_clean or seg.largest_timestamp > tombstone_horizon
                kept_before = stats.tombstones_kept
                for batch in _batches(seg):
                    kept = _filter_batch(batch, offset_map, keep_tombstones, stats)
                    if kept is not None:
                        cleaned.append([kept], validate_batches(kept, 2**31 - 1), len(kept))
                if stats.tombstones_kept > kept_before:
                    due = seg.largest_timestamp + log.config.delete_retention_ms
                    kept_tombstones_due = due if kept_tombstones_due is None else min(kept_tombstones_due, due)
                stats.bytes_before += seg.size
            cleaned.on_become_inactive()
        except BaseException:
            cleaned.delete()
            raise
        stats.bytes_after += cleaned.size
        stats.segments_cleaned += len(group)
        log.replace_segments(group, cleaned, now)
    log.first_dirty_offset = stats.end_offset = end_offset
    log.tombstones_due_ms = kept_tombstones_due
    stats.duration_ms = monotonic_ms() - started
    return stats


def _filter_batch(batch: RecordBatch, offset_map: dict[bytes, int], keep_tombstones: bool, stats: CleanerStats):
    """The batch's bytes, rebuilt without the records compaction removes; None if none survive."""
    if batch.is_control:
        return bytes(batch.buffer)
    records = batch.records()
    stats.records_read += len(records)
    survivors = [
        r
        for r in records
        if r.key is not None
        and offset_map.get(_digest(r.key), r.offset) == r.offset
        and (r.value is not None or keep_tombstones)
    ]
    stats.records_removed += len(records) - len(survivors)
    stats.tombstones_kept += sum(1 for r in survivors if r.value is None)
    if len(survivors) == len(records):
        return bytes(batch.buffer)
    if not survivors:
        return None
    return build_batch(
        [(r.key, r.value, r.timestamp, r.headers) for r in survivors],
        offset_deltas=[r.offset - batch.base_offset for r in survivors],
        last_offset_delta=batch.last_offset_delta,  # keeps the producer's last sequence (Kafka does too)
        compression=batch.compression,
        base_offset=batch.base_offset,
        partition_leader_epoch=batch.partition_leader_epoch,
        producer_id=batch.producer_id,
        producer_epoch=batch.producer_epoch,
        base_sequence=batch.base_sequence,
        is_transactional=batch.is_transactional,
        timestamp_type=batch.timestamp_type,
    )


def _group(segments: list[LogSegment], max_bytes: int) -> list[list[LogSegment]]:
    """Consecutive segments whose total size fits one segment and whose offsets fit u32 deltas."""
    groups: list[list[LogSegment]] = []
    for seg in segments:
        if groups:
            current = groups[-1]
            size = sum(s.size for s in current) + seg.size
            span = seg.next_offset - current[0].base_offset
            if size <= max_bytes and span <= 2**31 - 1:
                current.append(seg)
                continue
        groups.append([seg])
    return groups
