"""Idempotent produce: per-partition producer state, as Kafka's ProducerStateManager.

For each producer id that wrote to a partition the broker keeps the producer
epoch and the metadata of the last ``NUM_BATCHES_TO_RETAIN`` (5) batches of
that epoch: (first sequence, last sequence, first offset, last offset). An
incoming batch with a producer id >= 0 is judged by ``check`` (KIP-98 and KIP-360,
as Kafka's ``ProducerAppendInfo.checkProducerEpoch`` /
``checkSequence`` after ``ProducerStateEntry.findDuplicateBatch``):

1. same epoch and (first, last sequence) equal to a retained batch: a retry;
   the answer is success with that batch's original base offset, and nothing
   is appended (Kafka >= 1.0; DUPLICATE_SEQUENCE_NUMBER is legacy);
2. epoch lower than the known one: INVALID_PRODUCER_EPOCH (Produce <= v7;
   PRODUCER_FENCED only exists for newer request versions);
3. epoch higher than the known one: the sequence must restart at 0, else
   OUT_OF_ORDER_SEQUENCE_NUMBER;
4. same epoch: base sequence must be the last sequence + 1, wrapping from
   2^31-1 to 0, else OUT_OF_ORDER_SEQUENCE_NUMBER;
5. a producer id without state here (new, or its batches were removed by
   retention or DeleteRecords): any sequence is accepted. This is Kafka >= 2.5
   (KIP-360); older brokers answered UNKNOWN_PRODUCER_ID, which made clients
   reset their producer id and could reorder or lose in-flight records.

At most ``max_producers`` producers are remembered per partition; past that
the one that wrote least recently is forgotten (rule 5 then applies to it).
Kafka expires idle producers after producer.id.expiration.ms instead; a
count bound keeps memory bounded whatever clients do.

``ProducerStateManager`` is pure (no I/O, no Trio). ``log_producer_batches``
is the one I/O adapter: it reads the producer fields of every batch header of
a log so the state can be rebuilt after a restart.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from riverlog.client.protocol import ErrorCode
from riverlog.client.records.layout import INT32_MAX, PRODUCER_ID_OFFSET, header_struct

if TYPE_CHECKING:
    from riverlog.broker.storage.log import Log

NUM_BATCHES_TO_RETAIN = 5
MAX_PRODUCERS = 1000  # per partition


def next_sequence(sequence: int, increment: int = 1) -> int:
    """``sequence + increment`` wrapping from 2^31-1 to 0 (DefaultRecordBatch.incrementSequence)."""
    return (sequence + increment) % (INT32_MAX + 1)


def last_sequence(base_sequence: int, last_offset_delta: int) -> int:
    """The last sequence of a batch: base + lastOffsetDelta, wrapping."""
    return next_sequence(base_sequence, last_offset_delta)


class BatchMetadata(NamedTuple):
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int


@dataclass
class ProducerEntry:
    epoch: int
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN))

    @property
    def last_seq(self) -> int | None:
        return self.batches[-1].last_seq if self.batches else None


class ProducerStateManager:
    """Producer epochs and recent batches of one partition."""

    def __init__(self, max_producers: int = MAX_PRODUCERS) -> None:
        # Ordered by last write, oldest first (dicts keep insertion order).
        self._producers: dict[int, ProducerEntry] = {}
        self.max_producers = max_producers
        self.end_offset = 0  # one past the last offset recorded; a log shorter than this was truncated

    def entry(self, producer_id: int) -> ProducerEntry | None:
        return self._producers.get(producer_id)

    def __len__(self) -> int:
        return len(self._producers)

    def check(self, producer_id: int, epoch: int, base_seq: int, last_seq: int) -> tuple[int, int | None]:
        """(error code, original base offset if the batch is a duplicate, else None)."""
        entry = self._producers.get(producer_id)
        if entry is None:
            return ErrorCode.NONE, None  # no state: any sequence (KIP-360)
        if epoch == entry.epoch:
            for b in entry.batches:
                if b.first_seq == base_seq and b.last_seq == last_seq:
                    return ErrorCode.NONE, b.first_offset
        if epoch < entry.epoch:
            return ErrorCode.INVALID_PRODUCER_EPOCH, None
        if epoch > entry.epoch:
            return (ErrorCode.NONE if base_seq == 0 else ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER), None
        last = entry.last_seq
        if last is None or base_seq == next_sequence(last):
            return ErrorCode.NONE, None
        return ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, None

    def record(
        self, producer_id: int, epoch: int, base_seq: int, last_seq: int, first_offset: int, last_offset: int
    ) -> None:
        """Remember an appended batch (after ``check`` allowed it, or when loading the log)."""
        entry = self._producers.pop(producer_id, None)
        if entry is None:
            entry = ProducerEntry(epoch)
            if len(self._producers) >= self.max_producers:
                del self._producers[next(iter(self._producers))]  # the least recent writer
        self._producers[producer_id] = entry  # now the most recent
        if epoch != entry.epoch:
            entry.epoch = epoch
            entry.batches.clear()  # a new epoch: the old epoch's batches are no retries of it
        entry.batches.append(BatchMetadata(base_seq, last_seq, first_offset, last_offset))
        self.end_offset = max(self.end_offset, last_offset + 1)

    def rebuild_from(self, batches: Iterable[tuple[int, int, int, int, int]]) -> None:
        """Reset, then replay (base_offset, last_offset, producer_id, epoch, base_seq) in log order."""
        self._producers.clear()
        self.end_offset = 0
        for base_offset, last_offset, producer_id, epoch, base_seq in batches:
            self.end_offset = max(self.end_offset, last_offset + 1)
            if producer_id < 0 or base_seq < 0:
                continue
            self.record(
                producer_id, epoch, base_seq, last_sequence(base_seq, last_offset - base_offset),
                base_offset, last_offset,
            )  # fmt: skip

    def truncate_to(self, offset: int) -> None:
        """Forget batches with offsets >= ``offset``; producers left without batches go.

        An approximation of Kafka's reload from a snapshot: a producer whose
        retained batches all lie above ``offset`` loses its state (and is then
        treated as unknown, accepting any sequence). Rebuilding from the log
        with ``rebuild_from`` is exact within the log.
        """
        for producer_id in list(self._producers):
            entry = self._producers[producer_id]
            kept = [b for b in entry.batches if b.last_offset < offset]
            if kept:
                entry.batches.clear()
                entry.batches.extend(kept)
            else:
                del self._producers[producer_id]
        self.end_offset = min(self.end_offset, offset)


_PRODUCER_FIELDS = header_struct("producer_id", "producer_epoch", "base_sequence")


def log_producer_batches(plog: Log) -> Iterator[tuple[int, int, int, int, int]]:
    """(base_offset, last_offset, producer_id, epoch, base_seq) of each batch of ``plog``, in order.

    Reads only batch headers (one pread of 14 bytes per batch) from the log
    start on; batches below the log start offset are skipped.
    """
    start = plog.log_start_offset
    for segment in plog.segments:
        for header in segment.walk():
            if header.last_offset < start:
                continue
            raw = segment.pread(_PRODUCER_FIELDS.size, header.position + PRODUCER_ID_OFFSET)
            if len(raw) < _PRODUCER_FIELDS.size:
                return
            producer_id, epoch, base_seq = _PRODUCER_FIELDS.unpack(raw)
            yield header.base_offset, header.last_offset, producer_id, epoch, base_seq
