"""Broker: one Trio process serving the Kafka protocol over its partitions.

``Broker.serve()`` opens everything under one nursery (storage, listener,
periodic storage work) and reports ``started``; cancelling it stops the
broker: the listener closes first, requests being worked on get
``shutdown_grace_s`` to finish, then storage is flushed, checkpointed and
closed (a clean shutdown, so the next start does not re-scan).
"""

from __future__ import annotations

import errno
import logging

import trio

from riverlog.broker.config import BrokerConfig, canonical_ip, format_voters
from riverlog.broker.controller.controller_apis import ALLOCATE_PRODUCER_IDS, controller_apis
from riverlog.broker.controller.forwarding import ControllerChannel, ControllerUnavailable
from riverlog.broker.controller.raft.roles import RaftConfig
from riverlog.broker.controller.raft_driver import RaftDriver
from riverlog.broker.controller.registration import BrokerRegistration
from riverlog.broker.group.service import GroupService
from riverlog.broker.handlers import build_registry, default_modules
from riverlog.broker.meta_properties import check_new_voter, cluster_id_for, load_or_create_cluster_id
from riverlog.broker.metadata.controller import NotControllerError, QuorumController
from riverlog.broker.metadata.decisions import SUPPORTED_REPLICATION_FACTOR, TopicDefaults, TopicResult
from riverlog.broker.metadata.image import MetadataImage, PartitionImage, changed_partitions
from riverlog.broker.metadata.image_machine import MetadataStateMachine
from riverlog.broker.net.connection import Connection, ReadBuffers
from riverlog.broker.net.memory_pool import MemoryPool
from riverlog.broker.producer_ids import ProducerIdManager, legacy_producer_id_floor
from riverlog.broker.producer_state import ProducerStateManager, log_producer_batches
from riverlog.broker.storage.errors import StorageError, TooManyOpenFilesError
from riverlog.broker.storage.log import Log, now_ms, parse_partition_dir
from riverlog.broker.storage import open_files
from riverlog.broker.storage.log_config import LogConfig
from riverlog.broker.storage.log_manager import LogManager
from riverlog.broker.storage.space_reserve import SpaceReserve
from riverlog.broker.storage.partition_metadata import read_topic_id, write_topic_id
from riverlog.broker.throttled_log import ThrottledLog
from riverlog.client.protocol import ApiKey, ErrorCode, RequestHeader

log = logging.getLogger(__name__)

CREATE_TOPICS = ApiKey.CREATE_TOPICS
FORWARD_TIMEOUT_S = 30.0  # Kafka's request.timeout.ms for requests a broker forwards
# How often a log directory offline for want of space is checked for room
# (log_dir_failure.py); Kafka has no such retry, so no config of its own.
OFFLINE_DIR_RETRY_MS = 1000
OFFLINE_LOG_RETRY_S = 1.0  # a partition whose log could not be created is tried again this often
ACCEPT_BACKOFF_S = 0.1  # out of descriptors (or memory) for a new connection: wait, then accept again
_ACCEPT_CAPACITY_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS)


class Broker:
    max_in_flight_per_connection = 32  # pipelined requests one connection may have in work
    shutdown_grace_s = 5.0

    def __init__(self, config: BrokerConfig, handler_modules=None) -> None:
        self.config = config
        self.registry = build_registry(handler_modules if handler_modules is not None else default_modules())
        self.log_manager = LogManager(list(config.log_dirs), config.log_defaults)
        self.request_limiter = trio.CapacityLimiter(config.queued_max_requests)
        self.connections = 0
        self.connections_per_ip: dict[str, int] = {}  # open connections by peer address (none at 0)
        self.memory_pool = MemoryPool(config.queued_max_request_bytes)
        self.read_buffers = ReadBuffers()
        self.port: int | None = None  # the bound port, once listening
        self.controller: QuorumController | None = None
        self._appended = trio.lowlevel.ParkingLot()  # fetches waiting for new data
        self._stop_requested = trio.Event()
        self.requests_in_flight = 0  # being worked on, across connections
        self.producer_ids = ProducerIdManager()  # blocks from the active controller (KIP-730)
        self._producer_states: dict[tuple[str, int], tuple[Log, ProducerStateManager]] = {}
        # Partitions given to this broker whose log could not be created (out
        # of descriptors, say): offline, tried again every OFFLINE_LOG_RETRY_S.
        self.offline_logs: set[tuple[str, int]] = set()
        self.groups = GroupService(self)
        self._accept_shortage = ThrottledLog(log, clock=trio.current_time)  # retried every ACCEPT_BACKOFF_S

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
        now), after which clients refresh their metadata and go there; or
        KAFKA_STORAGE_ERROR when it is in an offline log directory. (With one
        replica there is nobody to move the leadership to, so the controller
        is not told, as Kafka would: the leader answers the error itself.)"""
        found = self.partition(topic, index)
        if found is not None and found[0].leader == self.config.node_id:
            if self.log_manager.is_offline(topic, index):
                return None, ErrorCode.KAFKA_STORAGE_ERROR
            return found, ErrorCode.NONE
        t = self.image.topics.get(topic)
        if t is None or index not in t.partitions:
            return None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        if t.partitions[index].leader == self.config.node_id and (
            (topic, index) in self.offline_logs or self.log_manager.is_offline(topic, index)
        ):
            return None, ErrorCode.KAFKA_STORAGE_ERROR  # led here, but its log is not open (yet) or its disk failed
        return None, ErrorCode.NOT_LEADER_OR_FOLLOWER

    def high_watermark(self, plog: Log) -> int:
        """The offset below which records are committed: with one replica
        (this broker, until replication lands), everything appended."""
        return plog.log_end_offset

    def topic_config(self, topic: str) -> LogConfig:
        t = self.image.topics.get(topic)
        overrides = dict(t.configs) if t is not None else {}
        return LogConfig.from_properties(overrides, base=self.config.log_defaults)

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
        """The metadata quorum under ``nursery``: a voter (with a controller
        listener) or an observer of ``controller.quorum.voters``, or a quorum
        of one for the single broker; then this broker's registration and
        heartbeats. Returns once the controller has unfenced this broker."""
        cfg = self.config
        data_dir = cfg.metadata_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        check_new_voter(data_dir, cfg.controller_quorum, cfg.node_id, cfg.initial_cluster)
        cluster_id = load_or_create_cluster_id(data_dir, cfg.node_id, cluster_id_for(cfg.controller_quorum))
        defaults = TopicDefaults(
            num_partitions=cfg.num_partitions,
            replication_factor=cfg.default_replication_factor,
            max_partitions=cfg.max_partitions,
            max_replication_factor=SUPPORTED_REPLICATION_FACTOR,
            log_config=cfg.log_defaults,
        )
        # The reserve goes before the quorum writes anything (a new epoch, the
        # quorum state), so a disk that producing filled still lets it start.
        reserve = SpaceReserve(data_dir)
        reserve.release("the metadata log may need it to start")
        raft = RaftConfig(cfg.node_id, cfg.voter_ids, election_timeout_ms=cfg.controller_quorum_election_timeout_ms,
                          fetch_timeout_ms=cfg.controller_quorum_fetch_timeout_ms,
                          request_timeout_ms=cfg.controller_quorum_request_timeout_ms)  # fmt: skip
        machine = MetadataStateMachine(cluster_id, cfg.node_id)
        listen = cfg.controller_listener if cfg.controller_quorum and cfg.is_voter else None
        apis = controller_apis(self)
        driver = RaftDriver(raft, data_dir, machine, cluster_id=cluster_id, peers=cfg.controller_quorum,
                            listen=listen, extra_apis=apis, connections_max_idle_ms=cfg.connections_max_idle_ms,
                            # A pool of its own: clients filling theirs must not hold up the quorum.
                            memory_pool=MemoryPool(cfg.queued_max_request_bytes))  # fmt: skip
        self.controller = QuorumController(driver, machine, defaults=defaults,
                                           session_timeout_ms=cfg.broker_session_timeout_ms,
                                           producer_id_floor=legacy_producer_id_floor(data_dir))  # fmt: skip

        async def on_controller(api_key: int, version: int, body: dict) -> dict | None:
            return await apis[api_key][2](RequestHeader(api_key, version, 0, "local"), body)

        self.channel = ControllerChannel(driver, cfg.controller_quorum, on_controller)
        self.registration = BrokerRegistration(self, self.channel)
        await nursery.start(driver.serve)
        nursery.start_soon(self.registration.run)
        nursery.start_soon(self._fence_expired_brokers)
        if cfg.controller_quorum:
            log.info("broker %d: %s of the metadata quorum %s; waiting to be registered and unfenced", cfg.node_id,
                     "a voter" if cfg.is_voter else "an observer", format_voters(cfg.controller_quorum))  # fmt: skip
        await self.registration.wait_unfenced()
        nursery.start_soon(self.producer_ids.run, self._allocate_producer_ids)  # the first block, at once
        if not any(reserve.shares_filesystem_with(d) for d in self.log_manager.failures.offline):
            reserve.take()  # (a full data disk takes it back when it comes back online)
        self.log_manager.metadata_reserve = reserve

    async def _allocate_producer_ids(self) -> tuple[int, int, int]:
        """AllocateProducerIds to the active controller: (error code, first id, number of ids)."""
        epoch = self.registration.broker_epoch
        if epoch < 0:
            return ErrorCode.BROKER_ID_NOT_REGISTERED, -1, 0  # registering (again): asked after a backoff
        body = {"broker_id": self.config.node_id, "broker_epoch": epoch}
        try:
            answer = await self.channel.send(ALLOCATE_PRODUCER_IDS, 0, body,
                                             self.config.controller_quorum_request_timeout_ms / 1000,
                                             lane="producer-ids")  # fmt: skip
        except ControllerUnavailable:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, -1, 0
        return answer["error_code"], answer["producer_id_start"], answer["producer_id_len"]

    async def _fence_expired_brokers(self) -> None:
        """On the active controller: fence brokers whose session expired."""
        assert self.controller is not None
        while True:
            await trio.sleep(0.5)
            try:
                fenced = await self.controller.fence_expired()
            except NotControllerError:
                continue  # the leadership moved meanwhile: the new controller takes over
            except Exception:  # noqa: BLE001 - a controller fault must not take the broker down; tried again
                log.exception("fencing expired brokers failed; trying again")
                continue
            for node_id in fenced:
                log.warning("broker %d fenced: no heartbeat for broker.session.timeout.ms (%d ms)", node_id,
                            self.config.broker_session_timeout_ms)  # fmt: skip

    # -- the active controller -------------------------------------------------------

    def is_active_controller(self) -> bool:
        return self.controller is not None and self.controller.driver.core.is_leader

    @property
    def controller_id(self) -> int:
        """The active controller's node id as this broker knows it (-1: none now)."""
        return self.controller.driver.core.leader_id if self.controller is not None else -1

    async def forward_to_controller(self, api_key: int, version: int, body: dict) -> dict:
        """An admin request, answered by the active controller (ControllerUnavailable after 30 s)."""
        return await self.channel.send(api_key, version, body, FORWARD_TIMEOUT_S)

    async def create_topics(self, topics) -> list[TopicResult]:
        """``controller.create_topics`` for callers inside the broker
        (auto-creation, __consumer_offsets), on whichever node is the
        active controller."""
        assert self.controller is not None
        if self.is_active_controller():
            try:
                return await self.controller.create_topics(topics)
            except NotControllerError:
                pass
        body = {"topics": [{"name": name, "num_partitions": n, "replication_factor": rf, "assignments": [],
                            "configs": [{"name": k, "value": v} for k, v in configs.items()]}
                           for name, n, rf, configs in topics],
                "timeout_ms": int(FORWARD_TIMEOUT_S * 1000), "validate_only": False}  # fmt: skip
        answer = await self.channel.send(CREATE_TOPICS, 4, body, FORWARD_TIMEOUT_S)
        return [TopicResult(t["name"], ErrorCode(t["error_code"]), t["error_message"]) for t in answer["topics"]]

    def _drop_stale_logs(self, image: MetadataImage) -> None:
        """At start-up, before acting on the image: delete the partition logs
        on disk that the metadata does not give this broker, or that belong
        to an earlier topic of the same name (deleted, maybe re-created,
        while this broker was down): their records must not come back."""
        me = self.config.node_id
        for plog in list(self.log_manager.all_logs()):
            topic, index = parse_partition_dir(plog.dir.name)
            t = image.topics.get(topic)
            part = t.partitions.get(index) if t is not None else None
            try:
                with self.log_manager.failures.guard(plog.dir.parent, f"reading the topic id of {plog.name}"):
                    recorded = read_topic_id(plog.dir)
            except StorageError:
                continue  # its directory is offline: checked when it comes back
            except TooManyOpenFilesError as e:
                # Kept until the next start checks it: raising here would leave the
                # logs missing from a directory back from a want of space unmade.
                log.warning("could not check %s against the metadata: %s", plog.dir, e)
                continue
            if part is None or me not in part.replicas or (recorded is not None and recorded != t.topic_id):
                log.warning("deleting %s: the metadata does not give this broker that partition of that topic",
                            plog.dir)  # fmt: skip
                self.log_manager.delete_log(topic, index)
                self._producer_states.pop((topic, index), None)
            elif recorded is None:
                self._ensure_log(topic, index, t.topic_id)  # a directory from before partition.metadata

    def _ensure_log(self, topic: str, index: int, topic_id) -> bool:
        """Create (or open) the log of a partition this broker holds, with its
        topic id written. In an offline directory the partition answers
        KAFKA_STORAGE_ERROR until the directory is back (the failure is logged
        there, once). Any other failure (out of descriptors, say) takes this
        partition offline, not the broker: logged, and tried again by
        ``_retry_offline_logs``."""
        try:
            plog = self.log_manager.get_or_create_log(topic, index, self.topic_config(topic))
            with self.log_manager.failures.guard(plog.dir.parent, f"writing the topic id of {plog.name}"):
                if read_topic_id(plog.dir) != topic_id:
                    write_topic_id(plog.dir, topic_id)
        except StorageError:
            return False  # its directory is offline: _retry_offline_dirs makes it when it is back
        except Exception as e:  # noqa: BLE001 - one partition's fault must not stop the others
            if (topic, index) not in self.offline_logs:
                log.error("%s-%d is offline: creating its log failed (%s); trying again every %.0f s",
                          topic, index, e, OFFLINE_LOG_RETRY_S)  # fmt: skip
            self.offline_logs.add((topic, index))
            return False
        if self.offline_logs:
            self.offline_logs.discard((topic, index))
        return True

    def _retry_offline_dirs(self) -> None:
        """Log directories back from a want of space: their logs are reloaded,
        so check them against the metadata again and make what is missing."""
        back = self.log_manager.retry_offline_dirs()
        if not back:
            return
        # Rebuilt from the reloaded logs on first use; the other directories'
        # partitions keep theirs (a rebuild reads the whole log).
        for tp in [tp for tp in self._producer_states if self.log_manager.log_dir_of(*tp) in back]:
            del self._producer_states[tp]
        self._drop_stale_logs(self.image)
        me = self.config.node_id
        for name, topic in self.image.topics.items():
            for index, part in topic.partitions.items():
                if me in part.replicas and self.log_manager.get_log(name, index) is None:
                    self._ensure_log(name, index, topic.topic_id)
        self.groups.on_metadata(self.image, self.image)

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
                self._ensure_log(change.topic, change.partition, change.topic_id)
        for name, topic in new.topics.items():
            before = old.topics.get(name)
            if before is not None and before.configs != topic.configs:
                self.log_manager.update_config(name, self.topic_config(name))
        self.groups.on_metadata(old, new)  # group coordination follows __consumer_offsets leadership

    async def _retry_offline_logs(self) -> None:
        while True:
            await trio.sleep(OFFLINE_LOG_RETRY_S)
            me = self.config.node_id
            for topic, index in sorted(self.offline_logs):
                t = self.image.topics.get(topic)
                part = t.partitions.get(index) if t is not None else None
                if part is None or me not in part.replicas:
                    self.offline_logs.discard((topic, index))  # no longer ours
                elif self._ensure_log(topic, index, t.topic_id):
                    log.info("%s-%d is online: its log is open", topic, index)

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        # Many machines start processes at a soft limit of 1024 descriptors:
        # raise it to the hard limit and bound the open segment files below it.
        open_files.configure(self.config.log_max_open_files)
        await trio.to_thread.run_sync(self.log_manager.startup)
        try:
            host, port = self.config.listener
            listeners = await trio.open_tcp_listeners(port, host=host)
            self.port = listeners[0].socket.getsockname()[1]
            async with trio.open_nursery() as nursery:
                await self._start_metadata(nursery)
                # No wait for the first producer id block (asked for as soon as
                # we were unfenced, one round trip): as in Kafka, InitProducerId
                # answers COORDINATOR_LOAD_IN_PROGRESS until it comes, which every
                # client retries, while waiting would delay the start by up to
                # controller.quorum.request.timeout.ms whenever the controller is slow.
                for name in self.image.topics:  # configs first, so logs open with them
                    self.log_manager.update_config(name, self.topic_config(name))
                self._drop_stale_logs(self.image)
                self._apply_metadata(MetadataImage.empty(self.image.cluster_id, self.config.node_id), self.image)
                assert self.controller is not None
                self.controller.on_change(self._apply_metadata)
                self.groups.load()  # groups and offsets back before the first request
                self._accepting = trio.CancelScope()
                self._connections_nursery = nursery
                nursery.start_soon(self._accept, listeners)
                nursery.start_soon(self._storage_timers)
                nursery.start_soon(self._retry_offline_logs)
                nursery.start_soon(self.groups.run)
                log.info(
                    "riverlog broker %d ready on %s:%d (data in %s)",
                    self.config.node_id, host, self.port, ", ".join(map(str, self.config.log_dirs)),
                )
                task_status.started(self)
                await self._stop_requested.wait()
                # Controlled shutdown (KIP-631): the controller moves this
                # broker's leaderships away and fences it before it goes;
                # pointless when no other broker could take them.
                if any(b.node_id != self.config.node_id for b in self.image.unfenced_brokers()):
                    await self.registration.shut_down(timeout_s=self.shutdown_grace_s)
                if self.is_active_controller() and len(self.config.voter_ids) > 1:
                    # Resign (EndQuorumEpoch), so the best placed voter
                    # campaigns now rather than after noticing we are gone.
                    self.controller.driver.resign()
                    await trio.sleep(0.1)  # let the senders put EndQuorumEpoch on the wire
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
                try:
                    stream = await listener.accept()
                except OSError as e:
                    if e.errno not in _ACCEPT_CAPACITY_ERRNOS:
                        raise
                    # As Trio's serve_listeners: out of descriptors, the
                    # connection waits in the backlog; the broker goes on.
                    freed = open_files.CACHE.shrink(len(open_files.CACHE) // 2)
                    self._accept_shortage.warning("cannot accept a connection: %s (closed %d cached segment files); "
                                                  "trying again every %.1f s", e.strerror, freed,
                                                  ACCEPT_BACKOFF_S)  # fmt: skip
                    await trio.sleep(ACCEPT_BACKOFF_S)
                    continue
                if self.connections >= self.config.max_connections:
                    log.warning("refusing a connection: max.connections (%d) reached", self.config.max_connections)
                    await stream.aclose()
                    continue
                try:
                    host, port = stream.socket.getpeername()[:2]
                except OSError:
                    await stream.aclose()  # gone already
                    continue
                host = canonical_ip(host) or host  # ::ffff:a.b.c.d is a.b.c.d for the per-IP limits
                limit = self.config.max_connections_per_ip_overrides.get(host, self.config.max_connections_per_ip)
                if self.connections_per_ip.get(host, 0) >= limit:
                    log.warning("refusing a connection from %s: max.connections.per.ip (%d) reached", host, limit)
                    await stream.aclose()
                    continue
                self.connections += 1
                self.connections_per_ip[host] = self.connections_per_ip.get(host, 0) + 1
                self._connections_nursery.start_soon(self._serve_connection, stream, host, port)

    async def _serve_connection(self, stream: trio.SocketStream, host: str, port: int) -> None:
        try:
            await Connection(self, stream, f"{host}:{port}").run()
        finally:
            self.connections -= 1
            left = self.connections_per_ip.pop(host) - 1
            if left:
                self.connections_per_ip[host] = left

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
            (OFFLINE_DIR_RETRY_MS, self._retry_offline_dirs),
        ]
        due = [trio.current_time() + ms / 1000 for ms, _ in jobs]
        while True:
            await trio.sleep_until(min(due))
            now = trio.current_time()
            for i, (interval_ms, job) in enumerate(jobs):
                if due[i] <= now:
                    try:
                        job()
                    except Exception as e:
                        if not open_files.is_out_of_descriptors(e):
                            raise
                        log.warning("periodic storage work deferred to its next run: %s", e)
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
            ago = -1 if ticks < 0 else ticks * tick_ms
            return {"replica_id": node, "log_end_offset": end, "last_fetch_ms_ago": ago}

        voters = driver.config.voters
        return {
            "leader_id": described["leader_id"], "leader_epoch": described["epoch"],
            "high_watermark": described["high_watermark"],
            "voters": [replica(n) for n in sorted(voters)],
            "observers": [replica(n) for n in sorted(set(described["replicas"]) - voters)],
        }  # fmt: skip


async def run_until_signalled(config: BrokerConfig) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully (the CLI's broker start).
    A signal during start-up (waiting for the quorum, say) stops it too."""
    import signal

    broker = Broker(config)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            started = False

            async def stop_on_signal() -> None:
                async for signum in signals:
                    log.info("received %s, stopping", signal.Signals(signum).name)
                    if started:
                        broker.request_stop()
                    else:
                        nursery.cancel_scope.cancel()  # still starting: nothing to drain
                    return

            nursery.start_soon(stop_on_signal)
            await nursery.start(broker.serve)
            started = True
