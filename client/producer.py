"""riverlog's producer (Trio face): send records, get offsets back.

    async with Producer(bootstrap_servers="127.0.0.1:9092") as producer:
        delivery = await producer.send("events", b"hello", key=b"k")
        metadata = await delivery          # RecordMetadata(topic, partition, offset, timestamp)

`send` returns as soon as the record is in its partition's accumulator
(client.accumulator); it waits only when ``buffer_memory`` is full (up to
``max_block_ms``) or the topic's metadata is not known yet. One sender task
closes batches (full, or ``linger_ms`` old, or on flush), encodes each once,
groups them per leader into Produce requests and handles the answers:

- success completes the batch's deliveries with offsets;
- a retriable error (leader moved, connection lost, timeout...) puts the
  batch back at the head of its partition queue, marks metadata stale and
  retries after ``retry_backoff_ms`` with the very same bytes, until
  ``delivery_timeout_ms`` from the batch's creation has passed;
- any other error fails the batch's deliveries with that error.

Idempotence (on by default, as in Kafka 3+): InitProducerId gives a producer
id; each partition's batches carry consecutive sequence numbers, and a retry
the broker already appended is answered as a duplicate, not written twice.
At most one batch per partition is in flight, so a retry never overtakes the
batch after it. If a batch is given up on without knowing whether the broker
appended it (a delivery timeout after a lost answer), that partition moves
to a fresh producer id so later sequence numbers cannot be mistaken for it.

Partitioning is the Java client's: murmur2 of the key modulo the partition
count (keys land where Java and kafka-python put them); records without a
key stick to one partition until its batch closes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import trio

from riverlog.client.accumulator import (
    BATCH_OVERHEAD,
    RECORD_OVERHEAD,
    Delivery,
    DeliveryCallback,
    PartitionQueue,
    ProducerBatch,
    TopicQueues,
)
from riverlog.client.allocator import keep_freed_memory
from riverlog.client.config import ProducerConfig
from riverlog.client.connection import jittered_backoff
from riverlog.client.errors import ClosedError, KafkaTimeoutError
from riverlog.client.partitioner import partition_for_key
from riverlog.client.protocol.errors import KafkaError, MessageTooLargeError, UnknownTopicOrPartitionError
from riverlog.client.sender import Sender

_BYTES = (bytes, bytearray, memoryview)
_NO_HEADERS: tuple = ()
_time_ns = time.time_ns
_new_delivery = tuple.__new__  # a Delivery is a tuple (batch, index): see client/accumulator.py
_YIELD_MASK = 1023  # send yields every 1024 records of a batch (see send)


class Producer(Sender):
    """The send path (records into their partitions' batches) on top of the
    sender task (client/sender.py)."""

    config_class = ProducerConfig

    def __init__(self, **options) -> None:
        super().__init__(**options)
        cfg = self.config
        self._batch_size = cfg.batch_size
        self._buffer_memory = cfg.buffer_memory
        self._max_record_size = cfg.max_request_size - BATCH_OVERHEAD

    async def _start(self) -> None:
        keep_freed_memory()
        self.nursery.start_soon(self._sender)

    async def _close_gracefully(self) -> None:
        """Leaving ``async with`` normally: deliver what is buffered first."""
        await self.close()

    async def _shutdown(self, exc_type, exc, tb):
        self._closing = True  # sends from here on fail at once
        return await super()._shutdown(exc_type, exc, tb)

    async def close(self, timeout: float | None = None) -> None:
        """Stop taking records; wait up to `timeout` seconds (None: as long
        as it takes) for what is buffered to be delivered, then fail what is
        left with ClosedError. ``async with`` calls it on the way out."""
        with trio.move_on_after(math.inf if timeout is None else timeout):
            await self.flush()
        self._closing = True
        self._fail_all(ClosedError("producer closed before the record was delivered"))
        self._wake.set()

    # -- send --------------------------------------------------------------

    # size: the per-record hot path in one piece: a helper called per record costs more than the lines it moves
    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes | None]] | None = None,
        partition: int | None = None,
        timestamp: int | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> Delivery:
        """Queue one record; returns its Delivery. Raises at once for what
        can never succeed (wrong types, a record over max_request_size, a
        partition the topic lacks), and KafkaTimeoutError when the topic's
        metadata or buffer room does not come within max_block_ms.
        `on_delivery(metadata, error)` runs in the producer's Trio thread."""
        # The hot path: every branch here costs on each record. First what
        # most sends are (a bytes value and nothing else, to a topic seen
        # before, in a batch with room and no headers so far): the general
        # path below does the same with every option checked.
        if key is None and headers is None and partition is None and timestamp is None and on_delivery is None \
                and type(value) is bytes and not self._closing:  # fmt: skip
            t = self._topics.get(topic)
            if t is not None and (sticky := t.sticky) >= 0:
                size = RECORD_OVERHEAD + len(value)
                batch = t.queues[sticky].open
                if (batch is not None and batch.headers is None and size <= self._max_record_size
                        and (total := batch.size + size) <= self._batch_size):  # fmt: skip
                    timestamps = batch.timestamps
                    index = len(timestamps)
                    batch.keys.append(None)
                    batch.values.append(value)
                    timestamps.append(_time_ns() // 1_000_000)
                    batch.size = total
                    if total >= self._batch_size:
                        self._close_full(t.queues[sticky])
                        await trio.lowlevel.checkpoint()  # let the sender ship it now
                    elif not (index + 1) & _YIELD_MASK:  # see the end of the general path
                        await trio.lowlevel.checkpoint()
                    return _new_delivery(Delivery, (batch, index))
        t = self._topics.get(topic)
        if t is None or self._closing:
            t = await self._topic(topic)
        if value is not None and type(value) is not bytes:
            value = _as_bytes(value, "value")
        if key is None:
            size = RECORD_OVERHEAD
        else:
            if type(key) is not bytes:
                key = _as_bytes(key, "key")
            size = RECORD_OVERHEAD + len(key)
        if value is not None:
            size += len(value)
        queues = t.queues
        if partition is None:
            if key is None:
                partition = t.sticky
                if partition < 0:
                    partition = t.sticky = self._sticky.partition(topic, len(queues))
            else:
                partition = partition_for_key(key, len(queues))
        elif not 0 <= partition < len(queues):
            raise UnknownTopicOrPartitionError(f"topic {topic!r} has partitions 0-{len(queues) - 1}, not {partition}")
        if timestamp is None:
            timestamp = _time_ns() // 1_000_000
        if headers:
            headers = _checked_headers(headers)
            size += sum(len(k) + (len(v) if v is not None else 0) + 2 for k, v in headers)
        if size > self._max_record_size:
            raise MessageTooLargeError(
                f"record of {size} bytes is over max_request_size ({self.config.max_request_size})"
            )
        queue = queues[partition]
        batch = queue.open
        if batch is None or batch.size + size > self._batch_size:
            batch = await self._open_batch(queue, size)
        index = len(batch.timestamps)
        batch.keys.append(key)
        batch.values.append(value)
        batch.timestamps.append(timestamp)
        if headers:
            if batch.headers is None:  # the first record with headers: the others had none
                batch.headers = [_NO_HEADERS] * index
            batch.headers.append(headers)
        elif batch.headers is not None:
            batch.headers.append(_NO_HEADERS)
        batch.size += size
        if on_delivery is not None:
            if batch.callbacks is None:
                batch.callbacks = []
            batch.callbacks.append((index, on_delivery))
        if batch.size >= self._batch_size:
            self._close_full(queue)
            await trio.lowlevel.checkpoint()  # let the sender ship it now
        elif not (index + 1) & _YIELD_MASK:
            # A loop of sends that never blocks would starve the sender task
            # (nothing goes out until flush): yield once per full batch and
            # every 1024 records of a batch, not per record, which costs too much.
            await trio.lowlevel.checkpoint()
        return _new_delivery(Delivery, (batch, index))

    async def _open_batch(self, queue: PartitionQueue, size: int) -> ProducerBatch:
        """A batch with room for a record of `size` bytes, closing the full
        one. Memory is reserved per batch (batch_size, or the record's size
        if larger), as the Java client's buffer pool does: waiting for
        buffer_memory happens here, not per record."""
        reserve = max(self._batch_size, size + BATCH_OVERHEAD)
        if self._buffered + reserve > self._buffer_memory:
            await self._wait_for_memory(reserve)
            if self._closing:  # closed while we waited: nobody would send the batch
                raise ClosedError("producer is closed")
            batch = queue.open  # another send may have opened one meanwhile
            if batch is not None and batch.size + size <= self._batch_size:
                return batch
        if queue.open is not None:
            queue.close_open()
            self._batch_closed(queue)
        batch = queue.open = ProducerBatch(queue.topic, queue.partition, trio.current_time())
        batch.reserved = reserve
        self._buffered += reserve
        self._wake.set()  # the sender learns this batch's linger deadline
        return batch

    def _close_full(self, queue: PartitionQueue) -> None:
        queue.close_open()
        self._batch_closed(queue)

    async def _topic(self, name: str) -> TopicQueues:
        """The send path's slow branch: closed, or the topic not seen yet."""
        if self._closing or self._closed:
            raise ClosedError("producer is closed")
        t = self._topics.get(name)
        if t is None:
            count = await self._topic_partitions(name)
            if self._closing:
                raise ClosedError("producer is closed")
            t = self._topics.get(name)  # another send may have got there first
            if t is None:
                t = self._topics[name] = TopicQueues(name)
                self._grow(t, count)
        return t

    async def _topic_partitions(self, topic: str) -> int:
        deadline = trio.current_time() + self.config.max_block_ms / 1000
        attempts = 0
        last: BaseException | None = None
        while True:
            try:
                with trio.fail_after(max(deadline - trio.current_time(), 0.001)):
                    info = await self.cluster.topic(topic, allow_auto_create=True, refresh=attempts > 0)
                if info.partitions:
                    return len(info.partitions)
            except trio.TooSlowError:
                pass
            except KafkaError as exc:
                # A topic being created answers LEADER_NOT_AVAILABLE; an unknown
                # one (auto-creation off) is retried until max_block_ms as Java.
                if not exc.retriable:
                    raise
                last = exc
            if trio.current_time() >= deadline:
                reason = f" ({last})" if last else ""
                raise KafkaTimeoutError(
                    f"topic {topic!r} not present in metadata after max_block_ms "
                    f"({self.config.max_block_ms} ms){reason}"
                )
            attempts += 1
            await trio.sleep(min(jittered_backoff(self.config.retry_backoff_ms, self.config.retry_backoff_max_ms,
                                                  attempts), max(deadline - trio.current_time(), 0)))  # fmt: skip

    async def _wait_for_memory(self, size: int) -> None:
        deadline = trio.current_time() + self.config.max_block_ms / 1000
        with trio.move_on_at(deadline):
            while self._buffered + size > self._buffer_memory and self._buffered > 0:
                # Close open batches so the sender can free memory sooner.
                for queue in self._queues.values():
                    if queue.open is not None:
                        queue.close_open()
                        self._batch_closed(queue)
                self._wake.set()
                await self._memory_freed.wait()
            return
        raise KafkaTimeoutError(
            f"buffer_memory ({self._buffer_memory} bytes) stayed full for max_block_ms "
            f"({self.config.max_block_ms} ms)"
        )

    async def flush(self) -> None:
        """Send everything buffered now and wait until it is delivered or
        failed (failures are reported by each record's Delivery)."""
        if self._closed:
            return
        batches = [b for q in self._queues.values() for b in q.batches()]
        if not batches:
            return
        self._flushing += 1
        self._wake.set()
        try:
            for batch in batches:
                await batch.done.wait()
        finally:
            self._flushing -= 1



def check_record(value: object, key: object, headers: object) -> None:
    """The type checks `send` makes, for callers that queue records first."""
    if value is not None:
        _as_bytes(value, "value")
    if key is not None:
        _as_bytes(key, "key")
    if headers:
        _checked_headers(headers)  # type: ignore[arg-type]


def _as_bytes(data: object, what: str) -> bytes:
    """bytes from any bytes-like (a memoryview of any format counts its bytes)."""
    if isinstance(data, _BYTES):
        return bytes(data)
    raise TypeError(f"record {what} must be bytes-like or None, got {type(data).__name__}")


def _checked_headers(headers: Sequence[tuple[str, bytes | None]]) -> list[tuple[str, bytes | None]]:
    out = []
    for item in headers:
        k, v = item
        if not isinstance(k, str):
            raise TypeError(f"header key must be str, got {type(k).__name__}")
        if v is not None and type(v) is not bytes:
            if not isinstance(v, _BYTES):
                raise TypeError(f"header value must be bytes-like or None, got {type(v).__name__}")
            v = bytes(v)
        out.append((k, v))
    return out
