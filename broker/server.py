"""Broker: one Trio process serving the Kafka protocol over its partitions.

``Broker.serve()`` opens everything under one nursery (storage, listener,
periodic storage work) and reports ``started``; cancelling it stops the
broker: the listener closes first, requests being worked on get
``shutdown_grace_s`` to finish, then storage is flushed, checkpointed and
closed (a clean shutdown, so the next start does not re-scan).
"""

from __future__ import annotations

import logging

import trio

from broker.config import BrokerConfig
from client.protocol import ErrorCode
from broker.controller.raft.roles import RaftConfig
from broker.controller.raft_driver import RaftDriver
from broker.group.service import GroupService
from broker.handlers import build_registry, default_modules
from broker.meta_properties import load_or_create_cluster_id
from broker.metadata.controller import QuorumController
from broker.metadata.decisions import TopicDefaults
from broker.metadata.image import MetadataImage, PartitionImage, changed_partitions
from broker.metadata.image_machine import MetadataStateMachine
from broker.net.connection import Connection
from broker.producer_ids import FILE_NAME as PRODUCER_ID_FILE
from broker.producer_ids import ProducerIdAllocator
from broker.producer_state import ProducerStateManager, log_producer_batches
from broker.storage.log import Log, now_ms
from broker.storage.log_config import LogConfig
from broker.storage.log_manager import LogManager

log = logging.getLogger(__name__)


class Broker:
    max_in_flight_per_connection = 32  # pipelined requests one connection may have in work
    shutdown_grace_s = 5.0

    def __init__(self, config: BrokerConfig, handler_modules=None) -> None:
        self.config = config
        self.registry = build_registry(handler_modules if handler_modules is not None else default_modules())
        self.log_manager = LogManager(list(config.log_dirs), config.log_defaults)
        self.request_limiter = trio.CapacityLimiter(config.queued_max_requests)
        self.connections = 0
        self.port: int | None = None  # the bound port, once listening
        self.controller: QuorumController | None = None
        self._appended = trio.lowlevel.ParkingLot()  # fetches waiting for new data
        self._stop_requested = trio.Event()
        self.requests_in_flight = 0  # being worked on, across connections
        self._producer_ids: ProducerIdAllocator | None = None
        self._producer_states: dict[tuple[str, int], tuple[Log, ProducerStateManager]] = {}
        self.groups = GroupService(self)

    # -- what handlers read ------------------------------------------------------

    @property
    def image(self) -> MetadataImage:
        assert self.controller is not None, "the broker is not started"
        return self.controller.image

    @property
    def advertised(self) -> tuple[str, int]:
        """Where clients reach this broker: advertised.listeners, else the bound listener."""
        if self.config.advertised_listener is not None:
            return self.config.advertised_listener
        host = self.config.advertised[0]
        return host, self.port if self.port is not None else self.config.listener[1]

    def partition(self, topic: str, index: int) -> tuple[PartitionImage, Log] | None:
        """The partition's metadata and log, if this broker has it."""
        t = self.image.topics.get(topic)
        part = t.partitions.get(index) if t is not None else None
        if part is None:
            return None
        plog = self.log_manager.get_log(topic, index)
        return None if plog is None else (part, plog)

    def led_partition(self, topic: str, index: int) -> tuple[tuple[PartitionImage, Log] | None, ErrorCode]:
        """The partition and its log if this broker leads it; else None and
        the error a client gets: UNKNOWN_TOPIC_OR_PARTITION, or
        NOT_LEADER_OR_FOLLOWER (another broker leads it, or nobody does
        now), after which clients refresh their metadata and go there."""
        t = self.image.topics.get(topic)
        part = t.partitions.get(index) if t is not None else None
        if part is None:
            return None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        if part.leader != self.config.node_id:
            return None, ErrorCode.NOT_LEADER_OR_FOLLOWER
        plog = self.log_manager.get_log(topic, index)
        if plog is None:
            return None, ErrorCode.NOT_LEADER_OR_FOLLOWER
        return (part, plog), ErrorCode.NONE

    def high_watermark(self, plog: Log) -> int:
        """The offset below which records are committed: with one replica
        (this broker, until replication lands), everything appended."""
        return plog.log_end_offset

    def topic_config(self, topic: str) -> LogConfig:
        t = self.image.topics.get(topic)
        overrides = dict(t.configs) if t is not None else {}
        return LogConfig.from_properties(overrides, base=self.config.log_defaults)

    def producer_ids(self) -> ProducerIdAllocator:
        """The producer id allocator, persisted in the first data directory."""
        if self._producer_ids is None:
            data_dir = self.config.log_dirs[0]
            data_dir.mkdir(parents=True, exist_ok=True)
            self._producer_ids = ProducerIdAllocator(data_dir / PRODUCER_ID_FILE)
        return self._producer_ids

    def producer_state(self, topic: str, index: int, plog: Log) -> ProducerStateManager:
        """The idempotence state of a partition, rebuilt from its log on first use.

        Rebuilt again when the log is another one (the topic was deleted and
        created again) or ends below what the state has seen (truncated).
        """
        cached = self._producer_states.get((topic, index))
        if cached is not None and cached[0] is plog and plog.log_end_offset >= cached[1].end_offset:
            return cached[1]
        state = ProducerStateManager()
        state.rebuild_from(log_producer_batches(plog))
        self._producer_states[(topic, index)] = (plog, state)
        return state

    def notify_appended(self) -> None:
        self._appended.unpark_all()

    async def wait_appended(self) -> None:
        await self._appended.park()

    # -- lifecycle ---------------------------------------------------------------

    def request_stop(self) -> None:
        """Begin a graceful stop; ``serve()`` returns once it is done."""
        self._stop_requested.set()

    async def _start_metadata(self, nursery: trio.Nursery) -> None:
        """The metadata quorum (here one voter: this broker) under ``nursery``;
        returns once this broker leads it and is registered."""
        data_dir = self.config.log_dirs[0]
        data_dir.mkdir(parents=True, exist_ok=True)
        cluster_id = load_or_create_cluster_id(data_dir, self.config.node_id)
        defaults = TopicDefaults(
            num_partitions=self.config.num_partitions,
            replication_factor=self.config.default_replication_factor,
            max_partitions=self.config.max_partitions,
            log_config=self.config.log_defaults,
        )
        node_id = self.config.node_id
        machine = MetadataStateMachine(cluster_id, node_id)
        driver = RaftDriver(RaftConfig(node_id, frozenset({node_id})), data_dir, machine, cluster_id=cluster_id,
                            peers={}, listen=None)  # fmt: skip
        self.controller = QuorumController(driver, machine, defaults=defaults)
        await nursery.start(driver.serve)
        await self.controller.start(*self.advertised, rack=self.config.rack)

    def _apply_metadata(self, old: MetadataImage, new: MetadataImage) -> None:
        """Act on a metadata change: create the logs of the partitions this
        broker holds a replica of, delete those it no longer holds, apply
        configs. (Leading is read from the image at each request.)"""
        me = self.config.node_id
        for change in changed_partitions(old, new):
            had = change.old is not None and me in change.old.replicas
            has = change.new is not None and me in change.new.replicas
            if had and not has:
                self.log_manager.delete_log(change.topic, change.partition)
                self._producer_states.pop((change.topic, change.partition), None)
            elif has and not had:
                self.log_manager.get_or_create_log(change.topic, change.partition, self.topic_config(change.topic))
        for name, topic in new.topics.items():
            before = old.topics.get(name)
            if before is not None and before.configs != topic.configs:
                self.log_manager.update_config(name, self.topic_config(name))

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(self.log_manager.startup)
        try:
            host, port = self.config.listener
            listeners = await trio.open_tcp_listeners(port, host=host)
            self.port = listeners[0].socket.getsockname()[1]
            async with trio.open_nursery() as nursery:
                await self._start_metadata(nursery)
                for name in self.image.topics:  # configs first, so logs open with them
                    self.log_manager.update_config(name, self.topic_config(name))
                self._apply_metadata(MetadataImage.empty(self.image.cluster_id, self.config.node_id), self.image)
                assert self.controller is not None
                self.controller.on_change(self._apply_metadata)
                self.groups.load()  # groups and offsets back before the first request
                self._accepting = trio.CancelScope()
                self._connections_nursery = nursery
                nursery.start_soon(self._accept, listeners)
                nursery.start_soon(self._storage_timers)
                nursery.start_soon(self.groups.run)
                log.info(
                    "riverlog broker %d ready on %s:%d (data in %s)",
                    self.config.node_id, host, self.port, ", ".join(map(str, self.config.log_dirs)),
                )
                task_status.started(self)
                await self._stop_requested.wait()
                # Graceful stop: no new connections, in-flight requests get
                # the grace period to finish, then everything is cancelled.
                self._accepting.cancel()
                with trio.move_on_after(self.shutdown_grace_s):
                    while self.requests_in_flight:
                        await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.log_manager.shutdown)
            log.info("riverlog broker %d stopped cleanly", self.config.node_id)

    async def _accept(self, listeners) -> None:
        with self._accepting:
            async with trio.open_nursery() as nursery:
                for listener in listeners:
                    nursery.start_soon(self._accept_on, listener)

    async def _accept_on(self, listener: trio.SocketListener) -> None:
        async with listener:
            while True:
                stream = await listener.accept()
                if self.connections >= self.config.max_connections:
                    log.warning("refusing a connection: max.connections (%d) reached", self.config.max_connections)
                    await stream.aclose()
                    continue
                self._connections_nursery.start_soon(self._serve_connection, stream)

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        try:
            host, port = stream.socket.getpeername()[:2]
            peer = f"{host}:{port}"
        except OSError:
            peer = "unknown peer"
        self.connections += 1
        try:
            await Connection(self, stream, peer).run()
        finally:
            self.connections -= 1

    async def _storage_timers(self) -> None:
        """flush.ms, retention, checkpoints and compaction on Kafka's broker intervals.

        They run on the Trio thread, between requests: a Log is not
        thread-safe, and appends run here too.
        """
        jobs = [
            (self.config.log_flush_scheduler_interval_ms, lambda: self.log_manager.flush_due(now_ms())),
            (self.config.log_retention_check_interval_ms, lambda: self.log_manager.cleanup(now_ms())),
            (self.config.log_flush_offset_checkpoint_interval_ms, self.log_manager.checkpoint),
            # Kafka's cleaner thread wakes every log.cleaner.backoff.ms when idle.
            (self.config.log_cleaner_backoff_ms, lambda: self.log_manager.compact(now_ms())),
        ]
        due = [trio.current_time() + ms / 1000 for ms, _ in jobs]
        while True:
            await trio.sleep_until(min(due))
            now = trio.current_time()
            for i, (interval_ms, job) in enumerate(jobs):
                if due[i] <= now:
                    job()
                    due[i] = now + interval_ms / 1000

    def quorum_description(self) -> dict:
        """The metadata quorum as DescribeQuorum reports it, from this node's
        Raft driver (replica progress is known on the leader only)."""
        assert self.controller is not None, "the broker is not started"
        driver = self.controller.driver
        described = driver.describe()
        tick_ms = driver.config.tick_ms

        def replica(node: int) -> dict:
            end, ticks = described["replicas"].get(node, (-1, -1))
            return {"replica_id": node, "log_end_offset": end, "last_fetch_ms_ago": -1 if ticks < 0 else ticks * tick_ms}

        voters = driver.config.voters
        return {
            "leader_id": described["leader_id"], "leader_epoch": described["epoch"],
            "high_watermark": described["high_watermark"],
            "voters": [replica(n) for n in sorted(voters)],
            "observers": [replica(n) for n in sorted(set(described["replicas"]) - voters)],
        }  # fmt: skip


async def run_until_signalled(config: BrokerConfig) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully (the CLI's broker start)."""
    import signal

    broker = Broker(config)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(broker.serve)

            async def stop_on_signal() -> None:
                async for signum in signals:
                    log.info("received %s, stopping", signal.Signals(signum).name)
                    broker.request_stop()
                    return

            nursery.start_soon(stop_on_signal)
