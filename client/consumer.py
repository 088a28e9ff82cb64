"""The Trio consumer: manual assignment, positions, prefetching poll.

    async with Consumer(bootstrap_servers="127.0.0.1:9092", auto_offset_reset="earliest") as c:
        c.assign([TopicPartition("events", 0)])
        async for record in c:
            ...

Partitions come from `assign`, or from a consumer group with `subscribe`
(group_id set; client/group/membership.py runs the membership and states
which task runs what: rebalance callbacks run inside `poll`, as in Java).
The two are exclusive, as in Java. Fetching runs in the background (client/fetcher.py,
which also states the error policy); `poll` hands out what is buffered.
Positions follow Kafka: a partition's position is the offset of the next
record `poll` will return, and advances as `poll` returns records.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping

import trio

from riverlog.client.allocator import keep_freed_memory
from riverlog.client.base import ClientBase
from riverlog.client.config import ConsumerConfig
from riverlog.client.errors import ClosedError, ConfigError
from riverlog.client.fetcher import Fetcher, NoOffsetForPartitionError
from riverlog.client.group.commits import CommitFailedError
from riverlog.client.group.membership import Callback, GroupMembership, IllegalStateError, Listener
from riverlog.client.protocol.errors import OffsetOutOfRangeError, UnknownTopicOrPartitionError  # type: ignore[attr-defined]
from riverlog.client.records import CorruptRecordError
from riverlog.client.types import ConsumerRecord, TopicPartition


class Consumer(ClientBase[ConsumerConfig]):
    config_class = ConsumerConfig

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._fetcher: Fetcher | None = None
        self._iter_buffer: deque[ConsumerRecord] = deque()
        self._group: GroupMembership | None = None

    async def _start(self) -> None:
        keep_freed_memory()
        self._fetcher = Fetcher(self.cluster, self.config)
        self.nursery.start_soon(self._fetcher.run, self.nursery)
        if self.config.group_id is not None:
            self._group = GroupMembership(self.cluster, self.config, self._set_assignment, self._positions,
                                          self._fetcher.seek, self._fetcher.wake_poll, self.nursery)  # fmt: skip
            self.nursery.start_soon(self._group.run)

    async def _close_gracefully(self) -> None:
        if self._group is not None:
            await self._group.close()

    async def _shutdown(self, exc_type, exc, tb):
        if self._fetcher is not None:
            self._fetcher.close()  # wakes a poll waiting in another task
        return await super()._shutdown(exc_type, exc, tb)

    @property
    def _f(self) -> Fetcher:
        self._check_open()
        assert self._fetcher is not None
        return self._fetcher

    # -- assignment and positions -------------------------------------------

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Replace the assignment. Partitions kept keep their position;
        new ones start from auto_offset_reset unless sought."""
        if self._group is not None and self._group.subscribed:
            raise IllegalStateError("assign() and subscribe() are exclusive: unsubscribe() first")
        self._set_assignment(partitions)

    def _set_assignment(self, partitions: Iterable[TopicPartition]) -> None:
        self._f.assign(partitions)
        self._drop_iterated(lambda r: TopicPartition(r.topic, r.partition) not in self._f.assignment)

    def _positions(self) -> dict[TopicPartition, int]:
        """The next offset to deliver per assigned partition that has one:
        what a commit of "everything consumed" commits."""
        out = {tp: state.position for tp, state in self._f.assignment.items() if state.position is not None}
        for record in self._iter_buffer:  # taken by `async for` but not yet yielded
            tp = TopicPartition(record.topic, record.partition)
            out[tp] = min(out.get(tp, record.offset), record.offset)
        return out

    # -- consumer groups -------------------------------------------------------

    @property
    def _g(self) -> GroupMembership:
        self._check_open()
        if self._group is None:
            raise ConfigError("consumer groups need group_id")
        return self._group

    def subscribe(self, topics: Iterable[str] | re.Pattern | None = None, *, pattern: str | re.Pattern | None = None,
                  on_assigned: Callback | None = None, on_revoked: Callback | None = None,
                  on_lost: Callback | None = None) -> None:  # fmt: skip
        """Join group_id for `topics` (or every topic `pattern` fully
        matches); the group assigns partitions. Callbacks (plain or async,
        given a set of TopicPartition) run inside poll: on_revoked before
        partitions go (after auto-commit), on_assigned after new ones come,
        on_lost (default on_revoked) when the group took them away already."""
        group = self._g
        if self._f.assignment and not group.subscribed:
            raise IllegalStateError("assign() and subscribe() are exclusive: assign([]) first")
        if isinstance(topics, re.Pattern):
            topics, pattern = None, topics
        if (topics is None) == (pattern is None):
            raise ValueError("subscribe to either a list of topics or a pattern")
        names = None if topics is None else [topics] if isinstance(topics, str) else list(topics)
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        group.subscribe(names, regex, Listener(on_assigned, on_revoked, on_lost))

    async def unsubscribe(self) -> None:
        """Revoke the group's partitions (on_revoked, auto-commit) and leave."""
        await self._g.unsubscribe()

    def subscription(self) -> set[str]:
        group = self._g
        return set(group.topics if group.topics is not None else group._subscription_topics)

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit `offsets` (the next offset to read, per partition), or the
        positions of every assigned partition, and wait for the answer.
        Raises CommitFailedError if the group gave the partitions away."""
        await self._g.commit(self._positions() if offsets is None else offsets)

    def commit_async(self, offsets: Mapping[TopicPartition, int] | None = None,
                     callback: Callable | None = None) -> None:  # fmt: skip
        """Commit in the background; `callback(offsets, error_or_None)`."""
        self._g.commit_async(self._positions() if offsets is None else offsets, callback)

    async def committed(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The group's committed offset per partition (None: none)."""
        return await self._g.committed(tps)

    @property
    def member_id(self) -> str:
        return self._g.member_id

    @property
    def generation(self) -> int:
        return self._g.generation

    def assignment(self) -> set[TopicPartition]:
        return set(self._f.assignment)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """The next poll returns `tp`'s records from `offset` on."""
        self._f.seek(tp, offset)
        self._drop_iterated(lambda r: (r.topic, r.partition) == tuple(tp))

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        """Seek to the log start offset (no tps: all assigned)."""
        await self._seek_to("earliest", tps)

    async def seek_to_end(self, *tps: TopicPartition) -> None:
        """Seek to the high watermark (last stable offset for read_committed)."""
        await self._seek_to("latest", tps)

    async def _seek_to(self, spec: str, tps: tuple[TopicPartition, ...]) -> None:
        targets = list(tps) or list(self._f.assignment)
        await self._f.reset_positions(targets, spec)
        for tp in targets:
            self._drop_iterated(lambda r, tp=tp: (r.topic, r.partition) == tuple(tp))

    async def position(self, tp: TopicPartition) -> int:
        """The offset of the next record poll returns for `tp`, resolved by
        auto_offset_reset if it has none yet."""
        tp = TopicPartition(*tp)
        for record in self._iter_buffer:  # taken by `async for`, not yet yielded
            if record.topic == tp.topic and record.partition == tp.partition:
                return record.offset
        return await self._f.position(tp)

    def pause(self, *tps: TopicPartition) -> None:
        """Stop fetching `tps` (buffered data for them is dropped and fetched
        again on resume; positions are kept)."""
        self._f.set_paused(tps, True)

    def resume(self, *tps: TopicPartition) -> None:
        self._f.set_paused(tps, False)

    def paused(self) -> set[TopicPartition]:
        return {tp for tp, state in self._f.assignment.items() if state.paused}

    # -- records ---------------------------------------------------------------

    async def poll(self, timeout: float = 0.0, max_records: int | None = None) -> list[ConsumerRecord]:
        """Up to `max_records` (max_poll_records) buffered records, across
        partitions in rotating order, waiting up to `timeout` seconds for some;
        [] on timeout. Raises a partition's error (see client/fetcher.py)."""
        fetcher = self._f
        await trio.lowlevel.checkpoint()
        group = self._group
        if group is not None:  # rebalance callbacks and auto-commit run here
            await group.before_poll()
        limit = self.config.max_poll_records if max_records is None else max_records
        if limit < 1:
            raise ValueError("max_records must be at least 1")
        if self._iter_buffer:  # taken by `async for` but not yet yielded: these come first
            buffer = self._iter_buffer
            return [buffer.popleft() for _ in range(min(limit, len(buffer)))]
        deadline = trio.current_time() + timeout
        while True:
            if group is not None:
                await group.before_poll()
            fetcher.raise_error()
            records = fetcher.drain(limit)
            if records:
                return records
            fetcher.raise_error()  # a corrupt batch found while draining
            if trio.current_time() >= deadline:
                return []
            with trio.move_on_at(deadline):
                await fetcher.wait_for_data()

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> ConsumerRecord:
        """The next record, waiting as long as it takes; the iteration ends
        when the consumer is closed."""
        while not self._iter_buffer:
            try:
                self._iter_buffer.extend(await self.poll(timeout=float("inf")))
            except ClosedError:
                raise StopAsyncIteration from None
        return self._iter_buffer.popleft()

    def _drop_iterated(self, pred) -> None:
        """Records handed to the iterator's buffer but not yet yielded are
        undelivered: a seek or assign for their partition drops them."""
        if self._iter_buffer:
            self._iter_buffer = deque(r for r in self._iter_buffer if not pred(r))


__all__ = [
    "CommitFailedError", "Consumer", "IllegalStateError",
    "ConsumerRecord", "CorruptRecordError", "NoOffsetForPartitionError",
    "OffsetOutOfRangeError", "TopicPartition", "UnknownTopicOrPartitionError",
]
