"""The producer's per-partition accumulators: records gathered into batches.

A `ProducerBatch` collects records in columns (what the native encoder takes)
until it reaches ``batch_size`` or its linger time runs out; then it is
closed, encoded once (with its producer id, epoch and first sequence, so a
retry sends the very same bytes and the broker can spot a duplicate), and
sent. Each `PartitionQueue` holds one open batch and the closed ones waiting,
oldest first, and knows whether one of its batches is in flight: the sender
keeps at most one in flight per partition, which is what keeps records in
order across retries without the Java client's in-flight resequencing.

`Delivery` is what `send` returns: one record's slot in a batch, awaited
for its RecordMetadata or its error.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence

import trio

from riverlog.client.records.builder import build_batch_columns
from riverlog.client.records.layout import BATCH_HEADER_BYTES, Compression
from riverlog.client.types import RecordMetadata

log = logging.getLogger("riverlog.client")

# A record's bytes in a batch beyond key and value: length, attributes,
# timestamp and offset deltas, key and value lengths, header count (varints).
RECORD_OVERHEAD = 21
BATCH_OVERHEAD = BATCH_HEADER_BYTES

DeliveryCallback = Callable[[RecordMetadata | None, BaseException | None], None]


class ProducerBatch:
    __slots__ = (
        "topic", "partition", "created", "keys", "values", "timestamps", "headers",
        "size", "callbacks", "done", "base_offset", "log_append_time", "error",
        "encoded", "producer_id", "producer_epoch", "base_sequence", "attempts",
        "retry_at", "ambiguous", "reserved",
    )  # fmt: skip

    def __init__(self, topic: str, partition: int, created: float) -> None:
        self.topic = topic
        self.partition = partition
        self.created = created
        self.keys: list[bytes | None] = []
        self.values: list[bytes | None] = []
        self.timestamps: list[int] = []
        # Created by the first record that has headers (most batches have none).
        self.headers: list[Sequence[tuple[str, bytes | None]]] | None = None
        self.size = BATCH_OVERHEAD
        self.callbacks: list[tuple[int, DeliveryCallback]] | None = None
        self.done = trio.Event()
        self.base_offset = -1
        self.log_append_time = -1
        self.error: BaseException | None = None
        self.encoded: bytes | None = None
        self.producer_id = -1
        self.producer_epoch = -1
        self.base_sequence = -1
        self.attempts = 0
        self.retry_at = 0.0
        self.ambiguous = False  # a send whose outcome we never learnt
        self.reserved = 0  # bytes of buffer_memory held by this batch

    def __len__(self) -> int:
        return len(self.timestamps)

    def encode(self, compression: Compression, producer_id: int, producer_epoch: int, base_sequence: int) -> bytes:
        self.producer_id, self.producer_epoch, self.base_sequence = producer_id, producer_epoch, base_sequence
        self.encoded = build_batch_columns(
            self.timestamps, self.keys, self.values,
            self.headers if self.headers is not None else [()] * len(self.timestamps), compression=compression,
            producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence,
        )  # fmt: skip
        return self.encoded

    def complete(self, base_offset: int, log_append_time: int = -1) -> None:
        if not self.done.is_set():
            self.base_offset, self.log_append_time = base_offset, log_append_time
            self._finish()

    def fail(self, error: BaseException) -> None:
        if not self.done.is_set():
            self.error = error
            self._finish()

    def metadata(self, index: int) -> RecordMetadata:
        offset = -1 if self.base_offset < 0 else self.base_offset + index
        ts = self.log_append_time if self.log_append_time >= 0 else self.timestamps[index]
        return RecordMetadata(self.topic, self.partition, offset, ts)

    def _finish(self) -> None:
        self.done.set()
        if self.callbacks:
            for index, callback in self.callbacks:
                try:
                    if self.error is None:
                        callback(self.metadata(index), None)
                    else:
                        callback(None, self.error)
                except Exception:  # noqa: BLE001 - the application's bug must not stop the producer
                    log.exception("on_delivery callback for %s-%d raised", self.topic, self.partition)
        # The records are not needed any more; drop them for the GC.
        self.keys = self.values = []
        self.headers = None
        self.encoded = None


class Delivery(tuple):
    """One sent record's outcome: ``await delivery`` (or ``await
    delivery.wait()``) gives its RecordMetadata or raises its error.

    A tuple (its batch, its index in the batch) so that making one, once per
    record sent, is one C-level ``tuple.__new__`` instead of a Python
    ``__init__``."""

    __slots__ = ()

    def done(self) -> bool:
        return self[0].done.is_set()

    def result(self) -> RecordMetadata:
        """The outcome of a finished delivery; RuntimeError if not finished."""
        batch = self[0]
        if not batch.done.is_set():
            raise RuntimeError("delivery not finished yet")
        if batch.error is not None:
            raise batch.error
        return batch.metadata(self[1])

    async def wait(self) -> RecordMetadata:
        await self[0].done.wait()
        return self.result()

    def __await__(self):
        return self.wait().__await__()

    def __repr__(self) -> str:
        return f"Delivery({'done' if self.done() else 'pending'})"


class PartitionQueue:
    """One partition's batches, and its idempotence state (a producer id per
    partition, so one partition can move to a fresh id without the others)."""

    __slots__ = ("topic", "partition", "open", "ready", "in_flight", "producer_id",
                 "producer_epoch", "next_sequence", "needs_new_producer_id")  # fmt: skip

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.open: ProducerBatch | None = None
        self.ready: deque[ProducerBatch] = deque()
        self.in_flight: ProducerBatch | None = None
        self.producer_id = -1
        self.producer_epoch = -1
        self.next_sequence = 0
        self.needs_new_producer_id = False

    def close_open(self) -> ProducerBatch | None:
        batch = self.open
        if batch is not None:
            self.open = None
            self.ready.append(batch)
        return batch

    def batches(self) -> list[ProducerBatch]:
        """Every unfinished batch, in order."""
        out = [self.in_flight] if self.in_flight is not None else []
        out.extend(self.ready)
        if self.open is not None:
            out.append(self.open)
        return out

    def take_sequence(self, count: int) -> int:
        """The first sequence for a batch of `count` records (wraps at 2**31)."""
        first = self.next_sequence
        self.next_sequence = (first + count) & 0x7FFFFFFF
        return first


class TopicQueues:
    """A topic the producer has sent to: one queue per partition, and the
    partition records without a key stick to (-1: none chosen yet)."""

    __slots__ = ("name", "queues", "sticky")

    def __init__(self, name: str) -> None:
        self.name = name
        self.queues: list[PartitionQueue] = []
        self.sticky = -1
