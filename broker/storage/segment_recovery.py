"""A segment's recovery after a crash: every batch validated, both indexes
rebuilt, the file cut at the first bad batch (part of LogSegment).

Split from log_segment.py along its seam: this runs only when a log is
loaded after a crash (or an index failed its sanity check), never on the
append or read paths.
"""

from __future__ import annotations

from dataclasses import dataclass

from crc32c import crc32c

from riverlog import native
from riverlog.broker.storage.offset_index import MAX_RELATIVE_OFFSET
from riverlog.broker.storage.time_index import NO_TIMESTAMP
from riverlog.client.records.layout import ATTRIBUTES_OFFSET, BATCH_LENGTH_OFFSET, CRC_OFFSET, LOG_OVERHEAD, header_struct
from riverlog.native import BatchInfo

_LENGTH = header_struct("batch_length")
_CRC = header_struct("crc")
_RECOVERY_CHUNK_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class RecoveryResult:
    bytes_truncated: int
    next_offset: int | None  # offset after the last valid batch, None if empty
    epochs: list[tuple[int, int]]  # (leader epoch, first offset) where the epoch changes


class SegmentRecovery:
    """LogSegment's recovery (mixed into LogSegment, whose state it uses)."""


    def recover(self, max_batch_bytes: int, next_segment_base: int | None = None) -> RecoveryResult:
        """Validate every batch, rebuild both indexes, cut the file at the first bad batch.

        A batch is valid when its length, magic and CRC check out and its
        offsets, which the CRC does not cover, lie in this segment's range:
        at or after the previous batch's end, within an int32 of the base
        offset, and below ``next_segment_base``. Leader epochs must not go back.
        """
        self.make_active()
        self.offset_index.reset()
        self.time_index.reset()
        self._index_missing = False
        self.max_timestamp, self.offset_of_max_timestamp = NO_TIMESTAMP, self.base_offset
        self._bytes_since_last_index_entry = 0
        self._rolling_based_timestamp = None
        upper = self.base_offset + MAX_RELATIVE_OFFSET
        if next_segment_base is not None:
            upper = min(upper, next_segment_base - 1)
        valid_end, next_offset, epochs = self._scan_valid(max_batch_bytes, upper)
        dropped = self.size - valid_end
        if dropped:
            self.truncate_bytes(valid_end)
        self._next_offset = next_offset if next_offset is not None else self.base_offset
        return RecoveryResult(dropped, next_offset, epochs)

    def _scan_valid(self, max_batch_bytes: int, max_last_offset: int):
        """(end of the valid prefix, next offset, epoch changes), indexing as it goes.

        Reads the file in chunks with pread (bounded memory, no mmap whose
        exported views a failure could leave pinned).
        """
        valid_end, next_offset, epochs = 0, None, []
        min_offset, last_epoch = self.base_offset, -1
        while valid_end < self.size:
            want = min(_RECOVERY_CHUNK_BYTES, self.size - valid_end)
            chunk = self.pread(want, valid_end)
            infos, _end, status = native.scan_batches(chunk, 4096, max_batch_bytes)
            if not infos and status == native.SCAN_TRUNCATED and len(chunk) >= LOG_OVERHEAD:
                # A batch larger than the chunk: read it whole if the file holds it.
                declared = _LENGTH.unpack_from(chunk, BATCH_LENGTH_OFFSET)[0] + LOG_OVERHEAD
                if len(chunk) < declared <= self.size - valid_end:
                    chunk = self.pread(declared, valid_end)
                    infos, _end, status = native.scan_batches(chunk, 1, max_batch_bytes)
            view = memoryview(chunk)
            good = []
            for info in infos:
                last = info.base_offset + info.last_offset_delta
                stored_crc = _CRC.unpack_from(view, info.position + CRC_OFFSET)[0]
                body = view[info.position + ATTRIBUTES_OFFSET : info.position + info.length]
                if (
                    crc32c(body) != stored_crc
                    or info.base_offset < min_offset
                    or info.last_offset_delta < 0
                    or last > max_last_offset
                    or info.partition_leader_epoch < last_epoch
                ):
                    break
                good.append(info)
                min_offset = next_offset = last + 1
                if info.partition_leader_epoch > last_epoch:
                    epochs.append((info.partition_leader_epoch, info.base_offset))
                    last_epoch = info.partition_leader_epoch
            if good:
                self._index_recovered(valid_end, good)
                valid_end += good[-1].position + good[-1].length
            if not good or len(good) < len(infos):
                break  # the scanner or a check stopped at a bad or torn batch
        return valid_end, next_offset, epochs

    def _index_recovered(self, chunk_start: int, infos: list[BatchInfo]) -> None:
        interval = self.config.index_interval_bytes
        if self._rolling_based_timestamp is None:
            self._rolling_based_timestamp = infos[0].max_timestamp
        for info in infos:
            last_offset = info.base_offset + info.last_offset_delta
            if info.max_timestamp > self.max_timestamp:
                self.max_timestamp = info.max_timestamp
                self.offset_of_max_timestamp = last_offset
            if self._bytes_since_last_index_entry > interval and not self.offset_index.is_full:
                self.offset_index.append(last_offset, chunk_start + info.position)
                self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
                self._bytes_since_last_index_entry = 0
            self._bytes_since_last_index_entry += info.length
