"""The group coordinator's driver: Trio, storage and the clock around the pure
`GroupCoordinator`.

- ``__consumer_offsets`` is created on first use (FindCoordinator), compacted,
  with ``offsets.topic.num.partitions`` partitions and a replication factor
  of ``offsets.topic.replication.factor`` capped to the brokers present and
  to what the cluster can replicate (1 until partitions replicate); a
  group lives in partition ``partition_for(group)`` (record_codec), as Kafka.
- Every coordinator call returns records and responses (`Outcome`): the
  records are appended to the group's partition first, then the responses
  are handed to the requests waiting for them (persist before you send).
  A JoinGroup or SyncGroup waits until a later call or a tick answers it.
- One task ticks the coordinator at its next deadline (session and
  rebalance timeouts, the initial rebalance delay, offset expiry).
- A group belongs to the broker leading its partition. Requests for groups
  of partitions this broker does not lead get NOT_COORDINATOR, in each API's
  shape (refusals.py). `on_metadata` (called by the broker on every image
  change) follows leadership: a partition led here is replayed into the
  coordinator before its groups are answered (COORDINATOR_LOAD_IN_PROGRESS
  meanwhile; an empty log is loaded at once), one no longer led here has its
  groups dropped. At start-up, `load()` replays the partitions led here
  before the broker accepts connections, so a restarted broker answers with
  the groups and offsets it had. A load that fails (the partition's log
  directory offline, out of descriptors) leaves the partition loading and is
  tried again, after LOAD_RETRY_S doubling up to LOAD_RETRY_MAX_S, or at once
  when the metadata or a log directory changes; it never ends the broker.

If an append fails (a full or broken disk), the requests in that outcome get
COORDINATOR_NOT_AVAILABLE-shaped failures by closing their connections: the
client finds the coordinator again and retries; nothing unpersisted is told.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from riverlog.broker.clock import wall_ms
from riverlog.broker.metadata.decisions import SUPPORTED_REPLICATION_FACTOR
from riverlog.broker.storage.errors import STORAGE_FAULTS, StorageError
from riverlog.client.protocol import ApiKey, ErrorCode
from riverlog.client.records import build_batch

from . import record_codec, refusals
from .config import GroupConfig
from .coordinator import GroupCoordinator
from .loading import replay_chunks
from .outcome import Outcome
from .record_codec import OFFSETS_TOPIC, partition_for

if TYPE_CHECKING:
    from riverlog.broker.config import BrokerConfig
    from riverlog.broker.handlers import RequestContext
    from riverlog.broker.metadata.image import MetadataImage
    from riverlog.broker.partitions import Partitions
    from riverlog.broker.services import ControllerLink, MetadataView
    from riverlog.broker.storage.log import Log

log = logging.getLogger(__name__)

E = ErrorCode
# A partition whose load failed (its directory offline, say) is tried again
# after LOAD_RETRY_S, twice as long after each failure up to LOAD_RETRY_MAX_S.
LOAD_RETRY_S = 1.0
LOAD_RETRY_MAX_S = 60.0
# Each group API's entry on the coordinator.
COORDINATOR_APIS: dict[ApiKey, Callable[..., Outcome]] = {
    ApiKey.JOIN_GROUP: GroupCoordinator.join_group,
    ApiKey.SYNC_GROUP: GroupCoordinator.sync_group,
    ApiKey.HEARTBEAT: GroupCoordinator.heartbeat,
    ApiKey.LEAVE_GROUP: GroupCoordinator.leave_group,
    ApiKey.OFFSET_COMMIT: GroupCoordinator.offset_commit,
    ApiKey.OFFSET_FETCH: GroupCoordinator.offset_fetch,
    ApiKey.OFFSET_DELETE: GroupCoordinator.offset_delete,
    ApiKey.DESCRIBE_GROUPS: GroupCoordinator.describe_groups,
    ApiKey.LIST_GROUPS: GroupCoordinator.list_groups,
    ApiKey.DELETE_GROUPS: GroupCoordinator.delete_groups,
}


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
    def __init__(self, config: BrokerConfig, metadata: MetadataView, partitions: Partitions,
                 controller: ControllerLink) -> None:  # fmt: skip
        self.config = config
        self.metadata = metadata
        self.partitions = partitions
        self.controller = controller
        cfg = config
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
        self._loaded: set[int] = set()  # partitions led here, replayed: their groups are answered
        self._loading: dict[int, object] = {}  # led here, not yet replayed -> this load's token
        self._load_retry_at: dict[int, float] = {}  # a load that failed: not tried again before (trio time)
        self._load_failures: dict[int, int] = {}  # failed attempts of the load in progress
        self._load_wake = trio.Event()

    # -- the topic -----------------------------------------------------------

    def partition_count(self) -> int | None:
        topic = self.metadata.image.topics.get(OFFSETS_TOPIC)
        return len(topic.partitions) if topic is not None else None

    async def ensure_topic(self) -> int | None:
        """The topic's partition count, creating it first if need be; None
        when it cannot be created now (no broker registered, say)."""
        count = self.partition_count()
        if count is not None:
            return count
        cfg = self.config
        configs = {"cleanup.policy": "compact", "segment.bytes": str(cfg.offsets_topic_segment_bytes)}
        brokers = len(self.metadata.image.unfenced_brokers())
        # offsets.topic.replication.factor, capped to the brokers present and
        # to what the cluster can replicate (1 until partitions replicate).
        rf = max(1, min(cfg.offsets_topic_replication_factor, brokers, SUPPORTED_REPLICATION_FACTOR))
        topic = (OFFSETS_TOPIC, cfg.offsets_topic_num_partitions, rf, configs)
        (result,) = await self.controller.create_topics([topic])
        if result.error_code not in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS):
            log.error("cannot create %s: %s", OFFSETS_TOPIC, result.error_message)
            return None
        return self.partition_count()

    async def coordinator_of(self, group_id: str) -> tuple[int, str, int] | None:
        """(node id, host, port) of the group's coordinator, or None."""
        count = await self.ensure_topic()
        if count is None:
            return None
        partition = self.metadata.image.topics[OFFSETS_TOPIC].partitions.get(partition_for(group_id, count))
        if partition is None or partition.leader < 0:
            return None
        if partition.leader == self.config.node_id:
            host, port = self.metadata.advertised
            return partition.leader, host, port
        info = self.metadata.image.brokers.get(partition.leader)
        return None if info is None else (partition.leader, info.host, info.port)

    # -- leadership: which groups are answered here --------------------------

    def group_error(self, group_id: str) -> ErrorCode:
        """NONE when this broker coordinates the group now; else the
        coordinator-level error a client gets for it."""
        count = self.partition_count()
        if count is None:
            return E.NOT_COORDINATOR
        index = partition_for(group_id, count)
        if index in self._loaded:
            return E.NONE
        return E.COORDINATOR_LOAD_IN_PROGRESS if index in self._loading else E.NOT_COORDINATOR

    def on_metadata(self, old: MetadataImage, new: MetadataImage) -> None:
        """Follow the leadership of the topic's partitions in `new`: drop the
        groups of partitions no longer led here, start loading those newly
        led here (an empty log needs no replay: loaded at once)."""
        topic = new.topics.get(OFFSETS_TOPIC) or old.topics.get(OFFSETS_TOPIC)
        me = self.config.node_id
        logs = self.partitions.log_manager
        led = set()
        if new.topics.get(OFFSETS_TOPIC) is not None:
            led = {index for index, part in new.topics[OFFSETS_TOPIC].partitions.items()
                   if part.leader == me and logs.get_log(OFFSETS_TOPIC, index) is not None
                   and not logs.is_offline(OFFSETS_TOPIC, index)}  # fmt: skip
        lost = (self._loaded | self._loading.keys()) - led
        if lost:
            assert topic is not None
            count = len(topic.partitions)
            self._loaded -= lost
            for index in lost:
                self._loading.pop(index, None)
                self._load_retry_at.pop(index, None)
                self._load_failures.pop(index, None)
            out = self.coordinator.unload(lambda group_id: partition_for(group_id, count) in lost)
            log.info("no longer the group coordinator for %s partitions %s", OFFSETS_TOPIC, sorted(lost))
            self._apply(out)
        if self._load_retry_at:  # something changed (a directory back, say): failed loads try again now
            self._load_retry_at.clear()
            self._load_wake.set()
        for index in sorted(led - self._loaded - self._loading.keys()):
            plog = logs.get_log(OFFSETS_TOPIC, index)
            if plog.log_end_offset == plog.log_start_offset:
                self._loaded.add(index)
            else:
                self._loading[index] = object()
                self._load_retry_at.pop(index, None)
                self._load_failures.pop(index, None)
                self._load_wake.set()
                log.info("group coordinator for %s-%d: loading", OFFSETS_TOPIC, index)

    def load(self) -> int:
        """At start-up: replay every partition led here now, before the
        first request; the number of records."""
        self.on_metadata(self.metadata.image, self.metadata.image)
        replayed = 0
        for index in sorted(self._loading):
            loaded = GroupCoordinator(self.coordinator.config)
            try:
                replayed += sum(replay_chunks(lambda: self._offsets_log(index), index, loaded, wall_ms()))
            except Exception as e:  # noqa: BLE001 - the background loader tries again
                self._load_failed(index, e, trio.current_time())
                continue
            self._finish_load(index, loaded)
        if replayed:
            log.info("loaded %d records of %s into the group coordinator", replayed, OFFSETS_TOPIC)
        return replayed

    def _offsets_log(self, index: int) -> Log:
        """The partition's log now; StorageError while it has none online (its
        directory offline, or being reloaded), so a load waits for it."""
        found = self.partitions.partition(OFFSETS_TOPIC, index)
        if found is None or self.partitions.log_manager.is_offline(OFFSETS_TOPIC, index):
            raise StorageError(f"{OFFSETS_TOPIC}-{index} has no log online")
        return found[1]

    def _load_failed(self, index: int, error: Exception, now: float) -> None:
        """A load that failed stays loading (COORDINATOR_LOAD_IN_PROGRESS, which
        clients retry) and is tried again from the start after a backoff.
        A storage fault is expected (a directory offline, out of descriptors);
        anything else is a bug, logged with its traceback, but never the
        broker's end."""
        failures = self._load_failures[index] = self._load_failures.get(index, 0) + 1
        delay = min(LOAD_RETRY_S * 2 ** (failures - 1), LOAD_RETRY_MAX_S)
        self._load_retry_at[index] = now + delay
        if failures > 1:  # said once per load: a directory may stay offline for hours
            log.debug("group coordinator for %s-%d: loading failed again: %s", OFFSETS_TOPIC, index, error)
        elif isinstance(error, STORAGE_FAULTS):
            log.warning("group coordinator for %s-%d: loading failed: %s; trying again until it loads",
                        OFFSETS_TOPIC, index, error)  # fmt: skip
        else:
            log.error("group coordinator for %s-%d: loading failed; trying again until it loads",
                      OFFSETS_TOPIC, index, exc_info=error)  # fmt: skip

    def _finish_load(self, index: int, loaded: GroupCoordinator) -> None:
        del self._loading[index]
        self._load_retry_at.pop(index, None)
        self._load_failures.pop(index, None)
        self.coordinator.adopt(loaded)
        self._loaded.add(index)
        self._wake.set()  # the loaded groups have deadlines

    async def _load_newly_led(self) -> None:
        """Replay partitions whose leadership moved here, one at a time, a
        chunk between checkpoints; a load whose leadership moved on meanwhile
        is abandoned. Each replays aside and is adopted whole, so no request
        or tick sees a half-loaded group."""
        while True:
            now = trio.current_time()
            due = [i for i in self._loading if self._load_retry_at.get(i, now) <= now]
            if not due:
                self._load_wake = trio.Event()
                with trio.move_on_at(min(self._load_retry_at.values(), default=math.inf)):
                    await self._load_wake.wait()
                continue
            index = min(due)
            token = self._loading[index]
            loaded = GroupCoordinator(self.coordinator.config)
            replayed = 0
            try:
                # The log is looked up again for every chunk: across the pause
                # its directory may be reloaded (a new Log) or go offline.
                for count in replay_chunks(lambda: self._offsets_log(index), index, loaded, wall_ms()):
                    replayed += count
                    await between_chunks()
                    if self._loading.get(index) is not token:
                        break  # lost meanwhile (or lost and regained: a new load)
            except Exception as e:  # noqa: BLE001 - see _load_failed
                if self._loading.get(index) is token:
                    self._load_failed(index, e, trio.current_time())
                continue
            if self._loading.get(index) is token:
                self._finish_load(index, loaded)
                log.info("group coordinator for %s-%d: loaded %d records", OFFSETS_TOPIC, index, replayed)

    # -- requests ------------------------------------------------------------

    async def call(self, api: ApiKey, ctx: RequestContext, request: dict) -> dict:
        """Run one group API for the groups this broker coordinates now; the
        others are refused in the API's shape."""
        if self.partition_count() is None:
            await self.ensure_topic()  # a client may skip FindCoordinator (it knows the broker)
        version = ctx.api_version
        if refusals.batched(api, version):
            return await self._call_batched(api, ctx, request)
        if api == ApiKey.LIST_GROUPS:
            return await self._list_groups(ctx, request)
        group_id = refusals.checked_group_id(api, request, version)
        if group_id is not None:
            error = self.group_error(group_id)
            if error is not E.NONE:
                return refusals.refusal(api, request, version, error)
        return await self._run(api, ctx, request)

    async def _call_batched(self, api: ApiKey, ctx: RequestContext, request: dict) -> dict:
        ids = refusals.requested_groups(api, request)
        errors = [E.NONE if group_id is None else self.group_error(group_id) for group_id in ids]
        keep = [error is E.NONE for error in errors]
        if all(keep):
            return await self._run(api, ctx, request)
        answered = await self._run(api, ctx, refusals.subset(api, request, keep)) if any(keep) else None
        return refusals.merge(api, request, keep, answered, errors)

    async def _list_groups(self, ctx: RequestContext, request: dict) -> dict:
        """Only groups of partitions led (and loaded) here; while a partition
        loads, COORDINATOR_LOAD_IN_PROGRESS with what is loaded (Kafka's)."""
        body = await self._run(ApiKey.LIST_GROUPS, ctx, request)
        count = self.partition_count()
        listed = [g for g in body["groups"]
                  if count is not None and partition_for(g["group_id"], count) in self._loaded]
        error = E.COORDINATOR_LOAD_IN_PROGRESS if self._loading else E(body["error_code"])
        return {**body, "error_code": int(error), "groups": listed}

    async def _run(self, api: ApiKey, ctx: RequestContext, request: dict) -> dict:
        """Run one group API through the coordinator and wait for its answer."""
        waiter = _Waiter()
        kwargs: dict[str, Any] = {}
        if api == ApiKey.JOIN_GROUP:
            kwargs = {"client_id": ctx.header.client_id or "", "client_host": "/" + ctx.peer.rsplit(":", 1)[0]}
        outcome = COORDINATOR_APIS[api](self.coordinator, waiter, request, ctx.api_version, wall_ms(), **kwargs)
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
        now = wall_ms()
        for index, group in by_partition.items():
            found, error = self.partitions.led_partition(OFFSETS_TOPIC, index)
            if found is None:
                raise AppendFailed(f"{OFFSETS_TOPIC}-{index}: {error.name}")
            partition, plog = found
            pairs = [record_codec.encode(r) for r in group]
            batch = build_batch([(key, value, now, ()) for key, value in pairs])
            plog.append_as_leader(memoryview(batch), partition.leader_epoch)
        self.partitions.notify_appended()

    # -- time ----------------------------------------------------------------

    async def run(self) -> None:
        """Load partitions whose leadership moves here, and tick the
        coordinator, forever."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._load_newly_led)
            nursery.start_soon(self._tick)

    async def _tick(self) -> None:
        """Tick the coordinator at its deadlines. A coordinator fault costs
        one tick (logged, then a second's pause), never the broker."""
        while True:
            self._wake = trio.Event()
            deadline = self.coordinator.next_deadline_ms()
            if deadline is None:
                await self._wake.wait()
            else:
                with trio.move_on_after(max(deadline - wall_ms(), 0) / 1000):
                    await self._wake.wait()
            try:
                self._apply(self.coordinator.tick(wall_ms()))
            except Exception:  # noqa: BLE001 - see the docstring
                log.exception("group coordinator tick failed")
                await trio.sleep(1)


async def between_chunks() -> None:
    """Where a load lets other tasks run (a module function, so a test can hold a load here)."""
    await trio.sleep(0)
