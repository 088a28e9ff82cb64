"""The group coordinator's driver: Trio, storage and the clock around the pure
`GroupCoordinator`.

- ``__consumer_offsets`` is created on first use (FindCoordinator), compacted,
  with ``offsets.topic.num.partitions`` partitions and a replication factor
  of 1 for now (``offsets.topic.replication.factor`` applies once partitions
  replicate: another replica would be an empty copy); a
  group lives in partition ``partition_for(group)`` (record_codec), as Kafka.
- Every coordinator call returns records and responses (`Outcome`): the
  records are appended to the group's partition first, then the responses
  are handed to the requests waiting for them (persist before you send).
  A JoinGroup or SyncGroup waits until a later call or a tick answers it.
- One task ticks the coordinator at its next deadline (session and
  rebalance timeouts, the initial rebalance delay, offset expiry).
- At start-up every local partition of the topic is replayed into the
  coordinator before the broker accepts connections, so a restarted broker
  answers with the groups and offsets it had. (Loading when leadership moves
  here, with COORDINATOR_LOAD_IN_PROGRESS meanwhile, comes with replication.)

If an append fails (a full or broken disk), the requests in that outcome get
COORDINATOR_NOT_AVAILABLE-shaped failures by closing their connections: the
client finds the coordinator again and retries; nothing unpersisted is told.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import trio

from client.protocol import ErrorCode
from client.records import CorruptRecordError, build_batch, iter_batches

from . import record_codec
from .config import GroupConfig
from .coordinator import GroupCoordinator
from .outcome import Outcome
from .record_codec import OFFSETS_TOPIC, partition_for

if TYPE_CHECKING:
    from broker.handlers import RequestContext
    from broker.server import Broker

log = logging.getLogger(__name__)

_READ_CHUNK = 4 * 1024 * 1024


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Waiter:
    """One request waiting for its response (the coordinator's opaque handle)."""

    __slots__ = ("done", "body", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.body: dict | None = None
        self.error: BaseException | None = None


class AppendFailed(Exception):
    """The coordinator's records could not be written; the request is not answered."""


class GroupService:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        cfg = broker.config
        self.coordinator = GroupCoordinator(GroupConfig(
            group_min_session_timeout_ms=cfg.group_min_session_timeout_ms,
            group_max_session_timeout_ms=cfg.group_max_session_timeout_ms,
            group_initial_rebalance_delay_ms=cfg.group_initial_rebalance_delay_ms,
            group_max_size=cfg.group_max_size,
            offset_metadata_max_bytes=cfg.offset_metadata_max_bytes,
            offsets_retention_minutes=cfg.offsets_retention_minutes,
            offsets_retention_check_interval_ms=cfg.offsets_retention_check_interval_ms,
        ))  # fmt: skip
        self._wake = trio.Event()

    # -- the topic -----------------------------------------------------------

    def partition_count(self) -> int | None:
        topic = self.broker.image.topics.get(OFFSETS_TOPIC)
        return len(topic.partitions) if topic is not None else None

    async def ensure_topic(self) -> int | None:
        """The topic's partition count, creating it first if need be; None
        when it cannot be created now (no broker registered, say)."""
        count = self.partition_count()
        if count is not None:
            return count
        cfg = self.broker.config
        configs = {"cleanup.policy": "compact", "segment.bytes": str(cfg.offsets_topic_segment_bytes)}
        rf = 1  # offsets.topic.replication.factor waits for partition replication (see TopicDefaults)
        assert self.broker.controller is not None
        (result,) = await self.broker.create_topics([(OFFSETS_TOPIC, cfg.offsets_topic_num_partitions, rf, configs)])
        if result.error_code not in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS):
            log.error("cannot create %s: %s", OFFSETS_TOPIC, result.error_message)
            return None
        return self.partition_count()

    async def coordinator_of(self, group_id: str) -> tuple[int, str, int] | None:
        """(node id, host, port) of the group's coordinator, or None."""
        count = await self.ensure_topic()
        if count is None:
            return None
        partition = self.broker.image.topics[OFFSETS_TOPIC].partitions.get(partition_for(group_id, count))
        if partition is None or partition.leader < 0:
            return None
        if partition.leader == self.broker.config.node_id:
            host, port = self.broker.advertised
            return partition.leader, host, port
        info = self.broker.image.brokers.get(partition.leader)
        return None if info is None else (partition.leader, info.host, info.port)

    # -- start-up ------------------------------------------------------------

    def load(self) -> int:
        """Replay every local partition of the topic; the number of records."""
        count = self.partition_count()
        if count is None:
            return 0
        now = _now_ms()
        replayed = 0
        for index in range(count):
            found = self.broker.partition(OFFSETS_TOPIC, index)
            if found is None:
                continue
            _, plog = found
            offset = plog.log_start_offset
            while offset < plog.log_end_offset:
                data = plog.read(offset, _READ_CHUNK).slice
                if data is None:
                    break
                try:
                    batches = list(iter_batches(data.read()))
                except CorruptRecordError as exc:
                    batches = []
                    log.error("%s-%d at offset %d: %s", OFFSETS_TOPIC, index, offset, exc)
                if not batches:
                    log.error("%s-%d: stopped loading at offset %d of %d: no whole batch there",
                              OFFSETS_TOPIC, index, offset, plog.log_end_offset)  # fmt: skip
                    break
                for batch in batches:
                    replayed += self._replay_batch(batch, index, now)
                offset = batches[-1].next_offset
        if replayed:
            log.info("loaded %d records of %s into the group coordinator", replayed, OFFSETS_TOPIC)
        return replayed

    def _replay_batch(self, batch, index: int, now: int) -> int:
        """Replay one batch's records; a damaged batch or record is logged
        and skipped, so one bad record cannot keep the broker from starting."""
        if batch.is_control:
            return 0
        try:
            records = batch.records()
        except CorruptRecordError as exc:
            log.error("%s-%d: skipping the batch at offset %d: %s", OFFSETS_TOPIC, index, batch.base_offset, exc)
            return 0
        replayed = 0
        for record in records:
            try:
                self.coordinator.replay(record_codec.decode(record.key or b"", record.value), now)
                replayed += 1
            except Exception as exc:  # noqa: BLE001 - a FormatError, or a record the coordinator refuses
                log.error("%s-%d offset %d: skipping a record: %s", OFFSETS_TOPIC, index, record.offset, exc)
        return replayed

    # -- requests ------------------------------------------------------------

    async def call(self, method: str, ctx: RequestContext, request: dict) -> dict:
        """Run one group API through the coordinator and wait for its answer."""
        if self.partition_count() is None:
            await self.ensure_topic()  # a client may skip FindCoordinator (it knows the broker)
        waiter = _Waiter()
        kwargs: dict[str, Any] = {}
        if method == "join_group":
            kwargs = {"client_id": ctx.header.client_id or "", "client_host": "/" + ctx.peer.rsplit(":", 1)[0]}
        outcome = getattr(self.coordinator, method)(waiter, request, ctx.api_version, _now_ms(), **kwargs)
        self._apply(outcome)
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        assert waiter.body is not None
        return waiter.body

    def _apply(self, outcome: Outcome) -> None:
        error = None
        if outcome.records:
            try:
                self._append(outcome.records)
            except Exception as exc:  # noqa: BLE001 - every waiter must hear of it
                log.error("appending to %s failed: %s", OFFSETS_TOPIC, exc)
                error = AppendFailed(f"{OFFSETS_TOPIC} append failed: {exc}")
        for handle, body in outcome.responses:
            if error is not None:
                handle.error = error
            else:
                handle.body = body
            handle.done.set()
        self._wake.set()  # deadlines may have moved

    def _append(self, records: list) -> None:
        count = self.partition_count()  # created by FindCoordinator or call() first
        if count is None:
            raise AppendFailed(f"{OFFSETS_TOPIC} does not exist")
        by_partition: dict[int, list] = {}
        for record in records:
            by_partition.setdefault(partition_for(record.group_id, count), []).append(record)
        now = _now_ms()
        for index, group in by_partition.items():
            found = self.broker.partition(OFFSETS_TOPIC, index)
            if found is None:
                raise AppendFailed(f"{OFFSETS_TOPIC}-{index} is not on this broker")
            partition, plog = found
            pairs = [record_codec.encode(r) for r in group]
            batch = build_batch([(key, value, now, ()) for key, value in pairs])
            plog.append_as_leader(memoryview(batch), partition.leader_epoch)
        self.broker.notify_appended()

    # -- time ----------------------------------------------------------------

    async def run(self) -> None:
        """Tick the coordinator at its deadlines, forever. A coordinator fault
        costs one tick (logged, then a second's pause), never the broker."""
        while True:
            self._wake = trio.Event()
            deadline = self.coordinator.next_deadline_ms()
            if deadline is None:
                await self._wake.wait()
            else:
                with trio.move_on_after(max(deadline - _now_ms(), 0) / 1000):
                    await self._wake.wait()
            try:
                self._apply(self.coordinator.tick(_now_ms()))
            except Exception:  # noqa: BLE001 - see the docstring
                log.exception("group coordinator tick failed")
                await trio.sleep(1)
