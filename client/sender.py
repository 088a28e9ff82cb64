"""The producer's sender: the task that ships closed batches (client/producer.py).

`Sender` is the half of `Producer` that runs in the background: it closes
batches whose linger time ran out, numbers them for idempotence (producer
ids and sequences, see the bookkeeping in `_give_up` and
`_init_producer_ids`), groups them per leader into Produce requests and
handles the answers (retry, complete, fail). `Producer` adds the send path
that fills the batches; both work on the queues kept here.
"""

from __future__ import annotations

import trio

from riverlog.client.accumulator import PartitionQueue, ProducerBatch, TopicQueues
from riverlog.client.base import ClientBase
from riverlog.client.config import ProducerConfig
from riverlog.client.connection import jittered_backoff
from riverlog.client.errors import ClosedError, KafkaConnectionError, KafkaTimeoutError, UnsupportedVersionError
from riverlog.client.partitioner import StickyPartitioner
from riverlog.client.protocol.api_keys import ApiKey
from riverlog.client.protocol.errors import ErrorCode, KafkaError, error_for_code

PRODUCE = ApiKey.PRODUCE
INIT_PRODUCER_ID = ApiKey.INIT_PRODUCER_ID
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


class Sender(ClientBase[ProducerConfig]):
    """The sender task and the producer's state it shares with the send path."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._queues: dict[tuple[str, int], PartitionQueue] = {}
        self._topics: dict[str, TopicQueues] = {}
        self._sticky = StickyPartitioner()
        self._buffered = 0
        self._memory_freed = trio.Event()
        self._wake = trio.Event()
        self._flushing = 0  # flush() calls in progress: close batches at once
        self._closing = False
        self._producer_id: tuple[int, int] | None = None
        self._producer_id_lock = trio.Lock()
        self._linger = self.config.linger_ms / 1000
        self._seen_metadata: object = None
        self._refreshing_metadata = False

    def _batch_closed(self, queue: PartitionQueue) -> None:
        """A batch closed: wake the sender, move the sticky partition on."""
        self._wake.set()
        t = self._topics.get(queue.topic)
        if t is not None and t.sticky == queue.partition:
            t.sticky = self._sticky.on_new_batch(queue.topic, queue.partition, len(t.queues))

    def _grow(self, t: TopicQueues, count: int) -> None:
        """Queues for partitions added to the topic (never removed: Kafka
        topics do not shrink)."""
        for p in range(len(t.queues), count):
            queue = PartitionQueue(t.name, p)
            t.queues.append(queue)
            self._queues[(t.name, p)] = queue

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
