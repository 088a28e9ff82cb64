"""Log compaction (``cleanup.policy=compact``): keep the latest record per key.

One pass over a log (Kafka's LogCleaner, simplified to whole passes):

1. The cleanable range is the segments before the active one whose records
   are all older than ``min.compaction.lag.ms``. The active segment is never
   touched.
2. An offset map, key digest -> last offset of that key, is built over the
   cleanable range (16-byte BLAKE2b digests keep memory per key fixed; the map
   holds at most ``max_map_entries``, so a huge keyspace is cleaned in
   several passes, segment by segment).
3. Each group of consecutive cleanable segments (grouped up to
   ``segment.bytes``) is rewritten into a ``.cleaned`` segment with the same
   base offset: a batch whose records all survive is copied byte for byte; a
   batch that loses some is rebuilt with the survivors at their original
   offsets, codec and producer fields; a batch that loses all is dropped.
   A record survives when it is its key's latest, and, if a tombstone (null
   value), while its segment is younger than ``delete.retention.ms``.
   Records without a key cannot be compacted and are dropped (as Kafka).
   Control batches are kept unchanged.
4. The group is swapped in through ``Log.replace_segments``
   (.cleaned -> .swap -> live name; a crash is finished by Log loading).

Offsets never change; they only get gaps, which readers skip.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from broker.storage.batches import validate_batches
from broker.storage.log import CLEANED_SUFFIX, Log, now_ms
from broker.storage.log_segment import LogSegment, segment_file_name
from client.records import RecordBatch, build_batch

DEFAULT_MAX_MAP_ENTRIES = 128 * 1024 * 1024 // 24  # log.cleaner.dedupe.buffer.size / entry size


@dataclass
class CleanerStats:
    segments_cleaned: int = 0
    records_read: int = 0
    records_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


def _digest(key: bytes) -> bytes:
    return hashlib.blake2b(key, digest_size=16).digest()


def _batches(seg: LogSegment):
    for header in seg.walk(0):
        yield RecordBatch(seg.pread(header.length, header.position))


def clean_log(
    log: Log,
    now: int | None = None,
    max_map_entries: int = DEFAULT_MAX_MAP_ENTRIES,
    high_watermark: int | None = None,
) -> CleanerStats:
    """One compaction pass over ``log``; a no-op unless its policy includes compact.

    Only segments wholly below ``high_watermark`` (the log end when None) are
    cleaned: a newer record that is not replicated yet may still be truncated
    away, so it must not remove an older, committed one.
    """
    now = now_ms() if now is None else now
    stats = CleanerStats()
    if not log.config.compact:
        return stats
    hw = log.log_end_offset if high_watermark is None else high_watermark
    lag = log.config.min_compaction_lag_ms
    segments = log.segments
    cleanable: list[LogSegment] = []
    for seg, after in zip(segments, segments[1:]):
        if after.base_offset > hw or (seg.size and seg.largest_timestamp > now - lag):
            break
        cleanable.append(seg)

    offset_map: dict[bytes, int] = {}
    mapped: list[LogSegment] = []
    for seg in cleanable:
        for batch in _batches(seg):
            if batch.is_control:
                continue
            for record in batch.records():
                if record.key is not None:
                    offset_map[_digest(record.key)] = record.offset
        mapped.append(seg)
        if len(offset_map) >= max_map_entries:
            break  # the rest waits for the next pass
    if not mapped:
        return stats

    for group in _group(mapped, log.config.segment_bytes):
        tombstone_horizon = now - log.config.delete_retention_ms
        for ext in (".log", ".index", ".timeindex"):  # what a failed earlier pass left
            (log.dir / segment_file_name(group[0].base_offset, ext, CLEANED_SUFFIX)).unlink(missing_ok=True)
        cleaned = LogSegment(log.dir, group[0].base_offset, log.config, suffix=CLEANED_SUFFIX)
        try:
            cleaned.make_active()
            for seg in group:
                keep_tombstones = seg.largest_timestamp > tombstone_horizon
                for batch in _batches(seg):
                    kept = _filter_batch(batch, offset_map, keep_tombstones, stats)
                    if kept is not None:
                        cleaned.append([kept], validate_batches(kept, 2**31 - 1), len(kept))
                stats.bytes_before += seg.size
            cleaned.on_become_inactive()
        except BaseException:
            cleaned.delete()
            raise
        stats.bytes_after += cleaned.size
        stats.segments_cleaned += len(group)
        log.replace_segments(group, cleaned, now)
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
