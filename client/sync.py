"""The blocking face: SyncProducer, SyncConsumer, SyncAdmin.

Each runs the very same Trio client on a background thread (TrioThread):
one task there holds the client open (``async with``) for the object's
lifetime, and every blocking call is carried over to it. Use them from
scripts, threads, or other event loops::

    with SyncProducer(bootstrap_servers="127.0.0.1:9092") as producer:
        future = producer.send("events", b"hello")   # concurrent.futures.Future
        print(future.result(timeout=10))              # RecordMetadata

    with SyncConsumer(bootstrap_servers="127.0.0.1:9092", auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition("events", 0)])
        for record in consumer.poll(timeout=1.0): ...

SyncProducer.send does not cross threads per record: records go into a
bounded queue that one Trio task drains into Producer.send, so the caller
pays microseconds, and waits only when the queue (or buffer_memory behind
it) is full. Delivery callbacks run on the background thread.
"""

from __future__ import annotations

import collections
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import trio

from riverlog.client.accumulator import DeliveryCallback
from riverlog.client.admin import Admin
from riverlog.client.consumer import Consumer
from riverlog.client.errors import ClosedError
from riverlog.client.producer import Producer, check_record
from riverlog.client.trio_thread import TrioThread
from riverlog.client.types import ConsumerRecord, OffsetAndTimestamp, RecordMetadata, TopicPartition

_QUEUE_LIMIT = 10_000  # records handed over but not yet in the producer


class _SyncClient:
    """Holds a Trio client open on a TrioThread until close()."""

    def __init__(self, client: Any, name: str) -> None:
        self._client = client
        self._thread = TrioThread(name=name)
        self._thread.start()
        self._stop: trio.Event | None = None
        self._finished: Future[None] = Future()
        ready: Future[None] = Future()
        self._thread.start_soon(self._lifetime, ready)
        try:
            ready.result()
        except BaseException:
            self._thread.close()
            raise

    async def _lifetime(self, ready: Future[None]) -> None:
        self._stop = trio.Event()
        try:
            async with self._client:
                ready.set_result(None)
                await self._run()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, never lost
            if not ready.done():
                ready.set_exception(exc)
            elif not self._finished.done():
                self._finished.set_exception(exc)
            if isinstance(exc, trio.Cancelled):
                raise
        finally:
            if not self._finished.done():
                self._finished.set_result(None)
            self._abandon()

    def _abandon(self) -> None:
        """The client is gone: settle whatever still waits on it."""

    async def _run(self) -> None:
        assert self._stop is not None
        await self._stop.wait()

    def _call(self, async_fn: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        if self._finished.done():
            raise ClosedError(f"{type(self).__name__} is closed")
        return self._thread.run(async_fn, *args, timeout=timeout)

    def _call_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._finished.done():
            raise ClosedError(f"{type(self).__name__} is closed")
        return self._thread.run_sync(fn, *args)

    def close(self) -> None:
        """Close the client (a producer delivers what it holds first)."""
        try:
            if not self._finished.done():
                self._request_stop()
                self._finished.result()
        finally:
            self._thread.close()

    def _request_stop(self) -> None:
        if self._stop is not None:
            self._thread.run_sync(self._stop.set)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SyncProducer(_SyncClient):
    """Producer's blocking face; the same options as Producer."""

    def __init__(self, **options: Any) -> None:
        self._items: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._space = threading.Semaphore(_QUEUE_LIMIT)
        self._pump_idle = False
        self._dead = False
        self._wake: trio.Event | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        super().__init__(Producer(**options), "riverlog-producer")

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes | None]] | None = None,
        partition: int | None = None,
        timestamp: int | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> Future[RecordMetadata]:
        """Queue a record; the future gives its RecordMetadata or error.
        Wrong types raise here; everything else arrives through the future."""
        check_record(value, key, headers)
        future: Future[RecordMetadata] = Future()
        self._put(("send", (topic, value, key, headers, partition, timestamp, on_delivery), future))
        return future

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every record sent so far is delivered or failed."""
        future: Future[None] = Future()
        self._put(("flush", None, future))
        future.result(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued (up to `timeout` s), then stop."""
        try:
            if not self._finished.done():
                future: Future[None] = Future()
                self._put(("close", timeout, future))
                future.result()
        finally:
            super().close()

    def _put(self, item: tuple) -> None:
        while not self._space.acquire(timeout=0.5):  # the queue is full: wait, unless it died
            if self._finished.done():
                raise ClosedError("SyncProducer is closed")
        with self._lock:
            if self._dead:
                self._space.release()
                raise ClosedError("SyncProducer is closed")
            self._items.append(item)
            wake = self._wake if self._pump_idle else None
            self._pump_idle = False
        if wake is not None:
            assert self._token is not None
            try:
                self._token.run_sync_soon(wake.set)
            except trio.RunFinishedError:
                raise ClosedError("SyncProducer is closed") from None

    async def _run(self) -> None:
        """The pump: hand queued records to the Trio producer, in order."""
        self._token = trio.lowlevel.current_trio_token()
        producer: Producer = self._client
        items = self._items
        while True:
            with self._lock:
                if not items:
                    self._pump_idle = True
                    wake = self._wake = trio.Event()
                    item = None
                else:
                    item = items.popleft()
            if item is None:
                await wake.wait()
                continue
            kind, args, future = item
            self._space.release()
            try:
                if kind == "send":
                    await producer.send(*args[:6], on_delivery=_resolver(future, args[6]))
                elif kind == "flush":
                    await producer.flush()
                    future.set_result(None)
                else:  # close
                    await producer.close(args)
                    future.set_result(None)
                    return
            except Exception as exc:  # noqa: BLE001 - belongs to that one record's future
                if not future.done():
                    future.set_exception(exc)

    def _request_stop(self) -> None:
        pass  # close() queued the stop behind the records

    def _abandon(self) -> None:
        """The pump is gone (closed or crashed): fail what it never took."""
        with self._lock:
            self._dead = True  # _put checks this under the same lock
            items = list(self._items)
            self._items.clear()
        for _, _, future in items:
            self._space.release()
            if not future.done():
                future.set_exception(ClosedError("SyncProducer closed before the record was sent"))


def _resolver(future: Future, callback: DeliveryCallback | None) -> DeliveryCallback:
    def on_delivery(metadata: RecordMetadata | None, error: BaseException | None) -> None:
        if not future.done():  # the caller may have cancelled it: the record went anyway
            if error is None:
                future.set_result(metadata)  # type: ignore[arg-type]
            else:
                future.set_exception(error)
        if callback is not None:
            callback(metadata, error)

    return on_delivery


class SyncConsumer(_SyncClient):
    """Consumer's blocking face; the same options and methods as Consumer."""

    def __init__(self, **options: Any) -> None:
        super().__init__(Consumer(**options), "riverlog-consumer")

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self._call_sync(self._client.assign, list(partitions))

    def assignment(self) -> set[TopicPartition]:
        return self._call_sync(self._client.assignment)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._call_sync(self._client.seek, tp, offset)

    def seek_to_beginning(self, *tps: TopicPartition) -> None:
        self._call(self._client.seek_to_beginning, *tps)

    def seek_to_end(self, *tps: TopicPartition) -> None:
        self._call(self._client.seek_to_end, *tps)

    def position(self, tp: TopicPartition) -> int:
        return self._call(self._client.position, tp)

    def pause(self, *tps: TopicPartition) -> None:
        self._call_sync(self._client.pause, *tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._call_sync(self._client.resume, *tps)

    def paused(self) -> set[TopicPartition]:
        return self._call_sync(self._client.paused)

    def poll(self, timeout: float = 0.0, max_records: int | None = None) -> list[ConsumerRecord]:
        return self._call(self._client.poll, timeout, max_records)

    # -- consumer groups (group_id) --------------------------------------------

    def subscribe(self, topics: Iterable[str] | re.Pattern | None = None, *, pattern: str | re.Pattern | None = None,
                  on_assigned: Callable | None = None, on_revoked: Callable | None = None,
                  on_lost: Callable | None = None) -> None:  # fmt: skip
        """As Consumer.subscribe. The callbacks run during poll (which
        blocks meanwhile) on a worker thread, so they may call this
        consumer's methods (commit in on_revoked, as Java code does)."""
        topics = topics if topics is None or isinstance(topics, (str, re.Pattern)) else list(topics)
        callbacks = [_on_worker_thread(cb) for cb in (on_assigned, on_revoked, on_lost)]
        self._call_sync(lambda: self._client.subscribe(topics, pattern=pattern, on_assigned=callbacks[0],
                                                       on_revoked=callbacks[1], on_lost=callbacks[2]))  # fmt: skip

    def unsubscribe(self) -> None:
        self._call(self._client.unsubscribe)

    def subscription(self) -> set[str]:
        return self._call_sync(self._client.subscription)

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self._call(self._client.commit, offsets)

    def commit_async(self, offsets: Mapping[TopicPartition, int] | None = None,
                     callback: Callable | None = None) -> None:  # fmt: skip
        """As Consumer.commit_async; `callback` runs on the background thread."""
        self._call_sync(self._client.commit_async, offsets, callback)

    def committed(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        return self._call(self._client.committed, list(tps))

    def __iter__(self) -> Iterator[ConsumerRecord]:
        """Records forever, fetched a poll at a time."""
        while True:
            yield from self.poll(timeout=1.0)


def _on_worker_thread(callback: Callable | None) -> Callable | None:
    """A rebalance callback, run off the Trio thread so it may block on the
    SyncConsumer (whose calls are carried over to the Trio thread)."""
    if callback is None:
        return None

    async def run(partitions: set[TopicPartition]) -> None:
        await trio.to_thread.run_sync(callback, partitions)

    return run


class SyncAdmin(_SyncClient):
    """Admin's blocking face; the same options and methods as Admin."""

    def __init__(self, **options: Any) -> None:
        super().__init__(Admin(**options), "riverlog-admin")

    def create_topics(self, topics, **kwargs) -> None:
        self._call(lambda: self._client.create_topics(topics, **kwargs))

    def delete_topics(self, names: list[str], **kwargs) -> None:
        self._call(lambda: self._client.delete_topics(names, **kwargs))

    def list_topics(self, **kwargs) -> list[str]:
        return self._call(lambda: self._client.list_topics(**kwargs))

    def describe_topics(self, names: list[str] | None = None):
        return self._call(self._client.describe_topics, names)

    def create_partitions(self, new_totals: dict[str, int], **kwargs) -> None:
        self._call(lambda: self._client.create_partitions(new_totals, **kwargs))

    def describe_configs(self, topic: str):
        return self._call(self._client.describe_configs, topic)

    def alter_configs(self, topic: str, set: dict[str, str] | None = None, delete: list[str] | None = None) -> None:
        self._call(self._client.alter_configs, topic, set, delete)

    def list_offsets(self, specs: dict[TopicPartition, str | int]) -> dict[TopicPartition, OffsetAndTimestamp]:
        return self._call(self._client.list_offsets, specs)

    def delete_records(self, before: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        return self._call(self._client.delete_records, before)

    def describe_cluster(self):
        return self._call(self._client.describe_cluster)

    def list_groups(self):
        return self._call(self._client.list_groups)

    def describe_groups(self, group_ids: list[str]):
        return self._call(self._client.describe_groups, group_ids)

    def list_group_offsets(self, group_id: str, partitions: list[TopicPartition] | None = None):
        return self._call(self._client.list_group_offsets, group_id, partitions)

    def alter_group_offsets(self, group_id: str, offsets: dict[TopicPartition, int]) -> None:
        self._call(self._client.alter_group_offsets, group_id, offsets)

    def delete_groups(self, group_ids: list[str]) -> None:
        self._call(self._client.delete_groups, group_ids)

    def delete_group_offsets(self, group_id: str, partitions: list[TopicPartition]) -> None:
        self._call(self._client.delete_group_offsets, group_id, partitions)
