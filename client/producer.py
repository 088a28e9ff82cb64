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
)
from riverlog.client.allocator import keep_freed_memory
from riverlog.client.base import ClientBase
from riverlog.client.config import ProducerConfig
from riverlog.client.connection import jittered_backoff
from riverlog.client.errors import ClosedError, KafkaConnectionError, KafkaTimeoutError, UnsupportedVersionError
from riverlog.client.partitioner import StickyPartitioner, partition_for_key
from riverlog.client.protocol.api_keys import ApiKey
from riverlog.client.protocol.errors import (
    ErrorCode,
    KafkaError,
    MessageTooLargeError,
    UnknownTopicOrPartitionError,
    error_for_code,
)

PRODUCE = ApiKey.PRODUCE
INIT_PRODUCER_ID = ApiKey.INIT_PRODUCER_ID
_BYTES = (bytes, bytearray, memoryview)
_NO_HEADERS: tuple = ()
_time_ns = time.time_ns
_new_delivery = tuple.__new__  # a Delivery is a tuple (batch, index): see client/accumulator.py
_YIELD_MASK = 1023  # send yields every 1024 records of a batch (see send)
_STALE_METADATA = frozenset({
    ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.LEADER_NOT_AVAILABLE, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    ErrorCode.FENCED_LEADER_EPOCH, ErrorCode.UNKNOWN_LEADER_EPOCH, ErrorCode.KAFKA_STORAGE_ERROR,
})  # fmt: skip
# Answers that prove the broker did not append the batch: after only these,
# a batch given up on leaves its sequence numbers free for the next one.
# Any other failure (a timeout, NOT_ENOUGH_REPLICAS_AFTER_APPEND, a lost
# connection) may hide an append, so the partition takes a new producer id.
_NOT_APPENDED = frozenset({
    ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.CORRUPT_MESSAGE, ErrorCode.INVALID_RECORD,
    ErrorCode.RECORD_LIST_TOO_LARGE, ErrorCode.INVALID_TIMESTAMP, ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT,
    ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, ErrorCode.INVALID_REQUIRED_ACKS, ErrorCode.INVALID_TOPIC_EXCEPTION,
    ErrorCode.TOPIC_AUTHORIZATION_FAILED, ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, ErrorCode.INVALID_PRODUCER_EPOCH, ErrorCode.UNKNOWN_PRODUCER_ID,
    ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.NOT_ENOUGH_REPLICAS,
})  # fmt: skip
# Answers after which the partition's sequence state is wrong at the broker:
# move that partition to a fresh producer id.
_RESET_PRODUCER = frozenset({ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, ErrorCode.UNKNOWN_PRODUCER_ID,
                             ErrorCode.INVALID_PRODUCER_EPOCH})  # fmt: skip


class _Topic:
    """A topic the producer has sent to: one queue per partition, and the
    partition records without a key stick to (-1: none chosen yet)."""

    __slots__ = ("name", "queues", "sticky")

    def __init__(self, name: str) -> None:
        self.name = name
        self.queues: list[PartitionQueue] = []
        self.sticky = -1


class Producer(ClientBase[ProducerConfig]):
    config_class = ProducerConfig

    def __init__(self, **options) -> None:
        super().__init__(**options)
        cfg = self.config
        self._queues: dict[tuple[str, int], PartitionQueue] = {}
        self._topics: dict[str, _Topic] = {}
        self._sticky = StickyPartitioner()
        self._buffered = 0
        self._memory_freed = trio.Event()
        self._wake = trio.Event()
        self._flushing = 0  # flush() calls in progress: close batches at once
        self._closing = False
        self._producer_id: tuple[int, int] | None = None
        self._producer_id_lock = trio.Lock()
        self._batch_size = cfg.batch_size
        self._linger = cfg.linger_ms / 1000
        self._buffer_memory = cfg.buffer_memory
        self._max_record_size = cfg.max_request_size - BATCH_OVERHEAD
        self._seen_metadata: object = None
        self._refreshing_metadata = False

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

    def _batch_closed(self, queue: PartitionQueue) -> None:
        """A batch closed: wake the sender, move the sticky partition on."""
        self._wake.set()
        t = self._topics.get(queue.topic)
        if t is not None and t.sticky == queue.partition:
            t.sticky = self._sticky.on_new_batch(queue.topic, queue.partition, len(t.queues))

    async def _topic(self, name: str) -> _Topic:
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
                t = self._topics[name] = _Topic(name)
                self._grow(t, count)
        return t

    def _grow(self, t: _Topic, count: int) -> None:
        """Queues for partitions added to the topic (never removed: Kafka
        topics do not shrink)."""
        for p in range(len(t.queues), count):
            queue = PartitionQueue(t.name, p)
            t.queues.append(queue)
            self._queues[(t.name, p)] = queue

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

    # -- the sender --------------------------------------------------------

    async def _sender(self) -> None:
        try:
            while not (self._closing and not self._has_unfinished()):
                wake = self._wake = trio.Event()
                deadline = self._drain(trio.current_time())
                with trio.move_on_at(deadline):
                    await wake.wait()
        finally:
            self._fail_all(ClosedError("producer closed before the record was delivered"))

    def _has_unfinished(self) -> bool:
        return any(q.open is not None or q.ready or q.in_flight is not None for q in self._queues.values())

    def _drain(self, now: float) -> float:
        """Close lingered batches, start requests for what can go; returns
        when the sender must look again if nothing wakes it earlier."""
        next_look = now + 3600
        linger = self._linger
        by_node: dict[int, list[tuple[PartitionQueue, ProducerBatch]]] = {}
        need_metadata = False  # set below
        need_producer_id = False
        delivery_timeout = self.config.delivery_timeout_ms / 1000
        metadata = self.cluster.metadata
        if self.cluster.is_stale() and self._queues:
            need_metadata = True  # after an error that said so, or metadata_max_age_ms
        if metadata is not self._seen_metadata:  # partitions may have been added
            self._seen_metadata = metadata
            for t in self._topics.values():
                info = metadata.topics.get(t.name)
                if info is not None and len(info.partitions) > len(t.queues):
                    self._grow(t, len(info.partitions))
        for queue in self._queues.values():
            batch = queue.open
            if batch is not None:
                if self._flushing or self._closing or now - batch.created >= linger:
                    queue.close_open()
                    self._batch_closed(queue)
                else:
                    next_look = min(next_look, batch.created + linger)
            if queue.in_flight is not None or not queue.ready:
                continue
            batch = queue.ready[0]
            if now - batch.created >= delivery_timeout:
                queue.ready.popleft()
                self._give_up(queue, batch, KafkaTimeoutError(
                    f"record expired after delivery_timeout_ms ({self.config.delivery_timeout_ms} ms) "
                    f"without an answer from {queue.topic}-{queue.partition}'s leader"
                ))  # fmt: skip
                if queue.ready:
                    next_look = now  # look at the next batch at once
                continue
            next_look = min(next_look, batch.created + delivery_timeout)
            if batch.retry_at > now:
                next_look = min(next_look, batch.retry_at)
                continue
            if batch.attempts and self._refreshing_metadata:
                continue  # a retry waits for the leader the refresh will name
            leader = metadata.leader_for(queue.topic, queue.partition)
            if leader < 0:
                need_metadata = True
                next_look = min(next_look, now + self.config.retry_backoff_ms / 1000)
                continue
            if self.config.enable_idempotence and batch.encoded is None:
                if queue.needs_new_producer_id or self._producer_id is None:
                    need_producer_id = True
                    continue
                if queue.producer_id < 0:
                    queue.producer_id, queue.producer_epoch = self._producer_id
            by_node.setdefault(leader, []).append((queue, batch))
        if need_metadata and not self._refreshing_metadata:
            self._refreshing_metadata = True
            self.nursery.start_soon(self._refresh_metadata)
        if need_producer_id:
            self.nursery.start_soon(self._init_producer_ids)
        for node, items in by_node.items():
            self._start_request(node, items)
        return next_look

    def _start_request(self, node: int, items: list[tuple[PartitionQueue, ProducerBatch]]) -> None:
        max_bytes = self.config.max_request_size
        request: list[tuple[PartitionQueue, ProducerBatch]] = []
        size = 0
        for queue, batch in items:
            if batch.encoded is None:
                seq = queue.take_sequence(len(batch)) if self.config.enable_idempotence else -1
                batch.encode(self.config.compression, queue.producer_id, queue.producer_epoch, seq)
            assert batch.encoded is not None
            if request and size + len(batch.encoded) > max_bytes:
                self.nursery.start_soon(self._send_request, node, request)
                request, size = [], 0
            queue.ready.popleft()
            queue.in_flight = batch
            request.append((queue, batch))
            size += len(batch.encoded)
        if request:
            self.nursery.start_soon(self._send_request, node, request)

    async def _send_request(self, node: int, items: list[tuple[PartitionQueue, ProducerBatch]]) -> None:
        acks = self.config.acks
        topics: dict[str, list] = {}
        for queue, batch in items:
            batch.attempts += 1
            topics.setdefault(queue.topic, []).append({"index": queue.partition, "records": batch.encoded})
        body = {
            "transactional_id": None,
            "acks": acks,
            "timeout_ms": self.config.request_timeout_ms,
            "topic_data": [{"name": t, "partition_data": parts} for t, parts in topics.items()],
        }
        try:
            conn = await self.cluster.connection(node)
            version = conn.version_for(PRODUCE, min_version=3)
            response = await conn.request(PRODUCE, body, version=version, expect_response=acks != 0)
        except (KafkaConnectionError, KafkaTimeoutError) as exc:
            self.cluster.invalidate()
            for queue, batch in items:
                batch.ambiguous = True  # it may have been appended
                self._retry(queue, batch, exc)
            return
        except UnsupportedVersionError as exc:
            for queue, batch in items:
                self._finish_in_flight(queue, batch, exc)
            return
        if response is None:  # acks=0: no answer; offsets unknown
            for queue, batch in items:
                queue.in_flight = None
                batch.complete(-1)
                self._release(batch)
            self._wake.set()
            return
        answers = {
            (t["name"], p["index"]): p for t in response["responses"] for p in t["partition_responses"]
        }
        for queue, batch in items:
            answer = answers.get((queue.topic, queue.partition))
            if answer is None:
                self._retry(queue, batch, KafkaConnectionError("the broker's answer left out this partition"))
                continue
            code = answer["error_code"]
            if code == 0 or code == ErrorCode.DUPLICATE_SEQUENCE_NUMBER:
                queue.in_flight = None
                batch.complete(answer["base_offset"], answer.get("log_append_time_ms", -1))
                self._release(batch)
                continue
            cls = error_for_code(code)
            assert cls is not None
            message = answer.get("error_message") or self._reason(cls.code, queue.topic)
            error = cls(f"{message} ({queue.topic}-{queue.partition})")
            if code not in _NOT_APPENDED:
                batch.ambiguous = True  # e.g. REQUEST_TIMED_OUT: it may be in the log
            if code in _STALE_METADATA:
                self.cluster.invalidate()
            if code in _RESET_PRODUCER:
                queue.needs_new_producer_id = True
            if cls.retriable:
                self._retry(queue, batch, error)
            else:
                self._finish_in_flight(queue, batch, error)
        self._wake.set()

    def _reason(self, code: ErrorCode, topic: str) -> str:
        """What to say for an error the broker sent without a message (Produce v7 has no message field)."""
        info = self.cluster.metadata.topics.get(topic)
        if code == ErrorCode.INVALID_TOPIC_EXCEPTION and info is not None and info.is_internal:
            return f"{code.name}: an internal topic, written only by the broker"
        return code.name

    def _retry(self, queue: PartitionQueue, batch: ProducerBatch, error: BaseException) -> None:
        """Back to the head of its queue; the sender resends it after the backoff."""
        queue.in_flight = None
        if self.config.retries < batch.attempts:
            self._finish_in_flight(queue, batch, error)
            return
        cfg = self.config
        batch.retry_at = trio.current_time() + jittered_backoff(cfg.retry_backoff_ms, cfg.retry_backoff_max_ms,
                                                                 batch.attempts)  # fmt: skip
        queue.ready.appendleft(batch)
        self._wake.set()

    def _finish_in_flight(self, queue: PartitionQueue, batch: ProducerBatch, error: BaseException) -> None:
        queue.in_flight = None
        self._give_up(queue, batch, error)
        self._wake.set()

    def _give_up(self, queue: PartitionQueue, batch: ProducerBatch, error: BaseException) -> None:
        """Fail a batch that will not be sent again. Its sequence numbers
        were used if it was encoded: if the broker may hold it, the partition
        moves to a new producer id; if it surely does not, the next batch
        reuses them (nothing after it was sent: one in flight)."""
        if batch.encoded is not None and self.config.enable_idempotence:
            if batch.ambiguous or queue.needs_new_producer_id:
                queue.needs_new_producer_id = True
            else:
                queue.next_sequence = batch.base_sequence
            for later in queue.ready:
                if later.encoded is not None:  # numbered after it: renumber
                    later.encoded = None
        batch.fail(error)
        self._release(batch)

    def _release(self, batch: ProducerBatch) -> None:
        self._buffered -= batch.reserved
        batch.reserved = 0  # released once, however many paths finish it
        self._memory_freed.set()
        self._memory_freed = trio.Event()

    async def _refresh_metadata(self) -> None:
        try:
            await self.cluster.refresh(list({q.topic for q in self._queues.values()}))
        except (KafkaConnectionError, KafkaTimeoutError, KafkaError):
            await trio.sleep(self.config.retry_backoff_ms / 1000)  # then the sender asks again
        finally:
            self._refreshing_metadata = False
        self._wake.set()

    async def _init_producer_ids(self) -> None:
        """InitProducerId for the producer, or fresh ids for partitions that
        need one. One at a time; failures are retried by the sender."""
        if self._producer_id_lock.locked():
            return
        async with self._producer_id_lock:
            try:
                if self._producer_id is None:
                    self._producer_id = await self._new_producer_id()
                for queue in self._queues.values():
                    if queue.needs_new_producer_id and queue.in_flight is None:
                        queue.producer_id, queue.producer_epoch = await self._new_producer_id()
                        queue.next_sequence = 0
                        queue.needs_new_producer_id = False
                        for batch in queue.ready:
                            batch.encoded = None
            except (KafkaConnectionError, KafkaTimeoutError, KafkaError):
                await trio.sleep(self.config.retry_backoff_ms / 1000)
        self._wake.set()

    async def _new_producer_id(self) -> tuple[int, int]:
        conn = await self.cluster.any_connection()
        body = {"transactional_id": None, "transaction_timeout_ms": 60_000}
        response = await conn.request(INIT_PRODUCER_ID, body)
        assert response is not None
        cls = error_for_code(response["error_code"])
        if cls is not None:
            raise cls("InitProducerId")
        return response["producer_id"], response["producer_epoch"]

    def _fail_all(self, error: BaseException) -> None:
        for queue in self._queues.values():
            for batch in queue.batches():
                if not batch.done.is_set():
                    batch.fail(type(error)(*getattr(error, "args", ())))
                self._release(batch)
            queue.open, queue.in_flight = None, None
            queue.ready.clear()


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
