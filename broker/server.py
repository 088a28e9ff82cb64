"""Broker: one Trio process serving the Kafka protocol over its partitions.

``Broker.serve()`` opens everything under one nursery (storage, listener,
periodic storage work) and reports ``started``; cancelling it stops the
broker: the listener closes first, requests being worked on get
``shutdown_grace_s`` to finish, then storage is flushed, checkpointed and
closed (a clean shutdown, so the next start does not re-scan).
"""

from __future__ import annotations

import errno
import functools
import logging

import trio

from riverlog.broker.clock import wall_ms
from riverlog.broker.config import BrokerConfig, canonical_ip, format_voters
from riverlog.broker.controller.controller_apis import ALLOCATE_PRODUCER_IDS, controller_apis
from riverlog.broker.controller.forwarding import ControllerChannel, ControllerUnavailable
from riverlog.broker.controller.raft.roles import RaftConfig
from riverlog.broker.controller.raft_driver import RaftDriver
from riverlog.broker.controller.registration import BrokerRegistration
from riverlog.broker.group.service import GroupService
from riverlog.broker.handlers import RequestContext, build_registry, default_modules
from riverlog.broker.meta_properties import check_new_voter, cluster_id_for, load_or_create_cluster_id
from riverlog.broker.metadata.controller import NotControllerError, QuorumController
from riverlog.broker.metadata.decisions import SUPPORTED_REPLICATION_FACTOR, TopicDefaults
from riverlog.broker.metadata.image import MetadataImage
from riverlog.broker.metadata.image_machine import MetadataStateMachine
from riverlog.broker.net.connection import Connection, Listener, ReadBuffers
from riverlog.broker.net.memory_pool import MemoryPool
from riverlog.broker.partitions import OFFLINE_LOG_RETRY_S, Partitions
from riverlog.broker.producer_ids import ProducerIdManager, legacy_producer_id_floor
from riverlog.broker.services import BrokerServices, ControllerLink, MetadataView
from riverlog.broker.storage import open_files
from riverlog.broker.storage.log_manager import LogManager
from riverlog.broker.storage.space_reserve import SpaceReserve
from riverlog.broker.throttled_log import ThrottledLog
from riverlog.client.protocol import ErrorCode, RequestHeader

log = logging.getLogger(__name__)

# How often a log directory offline for want of space is checked for room
# (log_dir_failure.py); Kafka has no such retry, so no config of its own.
OFFLINE_DIR_RETRY_MS = 1000
ACCEPT_BACKOFF_S = 0.1  # out of descriptors (or memory) for a new connection: wait, then accept again
_ACCEPT_CAPACITY_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS)


class Broker:
    """The lifecycle: start, stop, listeners and background tasks; it builds
    the services the request handlers get (``services``, broker/services.py)
    and hands them no reference to itself."""

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
        self._stop_requested = trio.Event()
        # What the handlers get; the quorum is attached to metadata and
        # controller_link once started (_start_metadata).
        self.metadata = MetadataView(config)
        self.controller_link = ControllerLink()
        self.partitions = Partitions(config, self.log_manager, self.metadata)
        self.producer_ids = ProducerIdManager()  # blocks from the active controller (KIP-730)
        self.groups = GroupService(config, self.metadata, self.partitions, self.controller_link)
        self.services = BrokerServices(config, self.metadata, self.partitions, self.groups, self.controller_link,
                                       self.producer_ids, self.registry)  # fmt: skip
        self.client_listener = Listener(
            "client listener", self.registry, functools.partial(RequestContext, self.services), self.memory_pool,
            self.read_buffers, config.socket_request_max_bytes, config.connections_max_idle_ms,
            self.request_limiter, self.max_in_flight_per_connection,
        )  # fmt: skip
        self._accept_shortage = ThrottledLog(log, clock=trio.current_time)  # retried every ACCEPT_BACKOFF_S

    @property
    def requests_in_flight(self) -> int:
        """Requests read from clients and not yet answered, across connections."""
        return self.client_listener.requests_in_flight

    @property
    def image(self) -> MetadataImage:
        """The latest metadata image (what the lifecycle acts on)."""
        return self.metadata.image

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
        apis = controller_apis(self.services)
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
        self.metadata.attach(self.controller)
        self.controller_link.attach(self.controller, self.channel)
        self.registration = BrokerRegistration(cfg, self.metadata, self.channel)
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

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        # Many machines start processes at a soft limit of 1024 descriptors:
        # raise it to the hard limit and bound the open segment files below it.
        open_files.configure(self.config.log_max_open_files)
        await trio.to_thread.run_sync(self.log_manager.startup)
        try:
            host, port = self.config.listener
            listeners = await trio.open_tcp_listeners(port, host=host)
            self.port = listeners[0].socket.getsockname()[1]
            self.metadata.listening_on(self.port)
            async with trio.open_nursery() as nursery:
                await self._start_metadata(nursery)
                # No wait for the first producer id block (asked for as soon as
                # we were unfenced, one round trip): as in Kafka, InitProducerId
                # answers COORDINATOR_LOAD_IN_PROGRESS until it comes, which every
                # client retries, while waiting would delay the start by up to
                # controller.quorum.request.timeout.ms whenever the controller is slow.
                self.partitions.start(self.image)
                assert self.controller is not None
                # Leading is read from the image at each request; the logs
                # follow it here, then group coordination follows
                # __consumer_offsets leadership (which needs those logs).
                self.controller.on_change(self.partitions.apply_metadata)
                self.controller.on_change(self.groups.on_metadata)
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
                if self.controller_link.is_active() and len(self.config.voter_ids) > 1:
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
            await Connection(self.client_listener, stream, f"{host}:{port}").run()
        finally:
            self.connections -= 1
            left = self.connections_per_ip.pop(host) - 1
            if left:
                self.connections_per_ip[host] = left

    def _retry_offline_dirs(self) -> None:
        if self.partitions.retry_offline_dirs():  # a directory back: its logs are reloaded
            self.groups.on_metadata(self.image, self.image)

    async def _retry_offline_logs(self) -> None:
        while True:
            await trio.sleep(OFFLINE_LOG_RETRY_S)
            self.partitions.retry_offline_logs()

    async def _storage_timers(self) -> None:
        """flush.ms, retention, checkpoints and compaction on Kafka's broker intervals.

        They run on the Trio thread, between requests: a Log is not
        thread-safe, and appends run here too.
        """
        jobs = [
            (self.config.log_flush_scheduler_interval_ms, lambda: self.log_manager.flush_due(wall_ms())),
            (self.config.log_retention_check_interval_ms, lambda: self.log_manager.cleanup(wall_ms())),
            (self.config.log_flush_offset_checkpoint_interval_ms, self.log_manager.checkpoint),
            # Kafka's cleaner thread wakes every log.cleaner.backoff.ms when idle.
            (self.config.log_cleaner_backoff_ms, lambda: self.log_manager.compact(wall_ms())),
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
