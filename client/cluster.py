"""The client's view of the cluster: connections per broker, the metadata cache.

A `Cluster` is shared by everything one client does. It owns:

- one `BrokerConnection` per broker node (and, until the first Metadata
  answer names the nodes, per bootstrap address), opened on demand and
  reopened after a failure with the Java client's exponential backoff;
- the metadata cache (`ClusterMetadata`, immutable, swapped whole), refreshed
  on demand, when older than ``metadata_max_age_ms``, and whenever a caller
  reports a stale leader (`invalidate`). Concurrent refreshes coalesce into
  one request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from riverlog.client.config import ClientConfig
from riverlog.client.connection import BrokerConnection, connect, jittered_backoff
from riverlog.client.errors import KafkaConnectionError, KafkaTimeoutError, raise_for_code
from riverlog.client.protocol.api_keys import ApiKey
from riverlog.client.protocol.errors import ErrorCode

METADATA = ApiKey.METADATA


@dataclass(frozen=True)
class BrokerInfo:
    node_id: int
    host: str
    port: int
    rack: str | None = None
    fenced: bool = False  # known only from DescribeCluster v2 with fenced brokers included


@dataclass(frozen=True)
class PartitionInfo:
    topic: str
    partition: int
    leader: int  # -1: no leader right now
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...] = ()
    error_code: int = 0


@dataclass(frozen=True)
class TopicInfo:
    name: str
    error_code: int
    partitions: dict[int, PartitionInfo] = field(default_factory=dict)
    is_internal: bool = False

    @property
    def available_partitions(self) -> list[int]:
        return [p for p, info in self.partitions.items() if info.leader >= 0]


@dataclass(frozen=True)
class ClusterMetadata:
    cluster_id: str | None = None
    controller_id: int = -1
    brokers: dict[int, BrokerInfo] = field(default_factory=dict)
    topics: dict[str, TopicInfo] = field(default_factory=dict)
    fetched_at: float = -1e9  # trio clock

    def leader_for(self, topic: str, partition: int) -> int:
        t = self.topics.get(topic)
        p = t.partitions.get(partition) if t else None
        return p.leader if p else -1


def metadata_from_response(response: dict, now: float, previous: ClusterMetadata | None,
                           all_topics: bool) -> ClusterMetadata:  # fmt: skip
    """A new cache from a Metadata answer. A partial answer (some topics)
    replaces those topics and keeps the others."""
    brokers = {
        b["node_id"]: BrokerInfo(b["node_id"], b["host"], b["port"], b.get("rack"))
        for b in response["brokers"]
    }
    topics = {} if all_topics or previous is None else dict(previous.topics)
    for t in response["topics"]:
        if t["name"] is None:
            continue
        parts = {
            p["partition_index"]: PartitionInfo(
                t["name"], p["partition_index"], p["leader_id"], p.get("leader_epoch", -1),
                tuple(p["replica_nodes"]), tuple(p["isr_nodes"]),
                tuple(p.get("offline_replicas", ())), p["error_code"],
            )  # fmt: skip
            for p in t["partitions"]
        }
        topics[t["name"]] = TopicInfo(t["name"], t["error_code"], parts, t.get("is_internal", False))
    return ClusterMetadata(
        response.get("cluster_id"), response.get("controller_id", -1), brokers, topics, now
    )


class _NodeState:
    __slots__ = ("conn", "connecting", "failures", "next_attempt")

    def __init__(self) -> None:
        self.conn: BrokerConnection | None = None
        self.connecting: trio.Event | None = None
        self.failures = 0
        self.next_attempt = 0.0


class _Refresh:
    """A Metadata request under way, for others asking the same to join."""

    __slots__ = ("topics", "done", "error")

    def __init__(self, topics: frozenset[str] | None) -> None:
        self.topics = topics  # None: all topics
        self.done = trio.Event()
        self.error: BaseException | None = None


class Cluster:
    """Connections and metadata for one client; its connections' reader
    tasks run in the nursery it is given (the client's)."""

    def __init__(self, config: ClientConfig, nursery: trio.Nursery) -> None:
        self.config = config
        self._nursery = nursery
        self._nodes: dict[object, _NodeState] = {}
        self.metadata = ClusterMetadata()
        self._refreshing: _Refresh | None = None
        self._bootstrap_index = 0
        self.closed = False

    # -- connections -------------------------------------------------------

    def _address(self, node: object) -> tuple[str, int]:
        if isinstance(node, tuple):  # ("bootstrap", (host, port))
            return node[1]
        info = self.metadata.brokers.get(node)  # type: ignore[call-overload]
        if info is None:
            raise KafkaConnectionError(f"broker {node} is not in the cluster metadata")
        return info.host, info.port

    async def connection(self, node: object) -> BrokerConnection:
        """The open connection to `node` (a node id), connecting if need be.
        Waits out the node's reconnect backoff; raises KafkaConnectionError."""
        if self.closed:
            raise KafkaConnectionError("client is closed")
        state = self._nodes.get(node)
        if state is None:
            state = self._nodes[node] = _NodeState()
        while True:
            if state.conn is not None and not state.conn.closed:
                return state.conn
            if state.connecting is not None:
                await state.connecting.wait()
                if state.conn is not None and not state.conn.closed:
                    return state.conn
                raise KafkaConnectionError(f"cannot connect to {self._describe(node)}")
            state.connecting = trio.Event()
            try:
                await trio.sleep_until(state.next_attempt)
                host, port = self._address(node)
                cfg = self.config
                try:
                    conn = await connect(
                        self._nursery, host, port,
                        client_id=cfg.client_id,
                        connect_timeout=cfg.socket_connection_setup_timeout_ms / 1000,
                        request_timeout=cfg.request_timeout_ms / 1000,
                        max_in_flight=cfg.max_in_flight_requests_per_connection,
                        max_response_bytes=cfg.max_response_bytes,
                    )  # fmt: skip
                except (KafkaConnectionError, KafkaTimeoutError):
                    state.failures += 1
                    state.next_attempt = trio.current_time() + jittered_backoff(
                        cfg.reconnect_backoff_ms, cfg.reconnect_backoff_max_ms, state.failures
                    )
                    raise
                conn.node_id = node if isinstance(node, int) else None
                state.conn = conn
                state.failures = 0
                return conn
            finally:
                state.connecting.set()
                state.connecting = None

    def _describe(self, node: object) -> str:
        try:
            host, port = self._address(node)
            return f"{host}:{port}"
        except KafkaConnectionError:
            return f"broker {node}"

    async def any_connection(self, timeout: float | None = None) -> BrokerConnection:
        """A connection to some broker: an open one if there is, else the
        known brokers and bootstrap addresses in turn until `timeout`
        (default_api_timeout_ms) runs out."""
        for state in self._nodes.values():
            if state.conn is not None and not state.conn.closed:
                return state.conn
        timeout = self.config.default_api_timeout_ms / 1000 if timeout is None else timeout
        # Give up just before an enclosing deadline would cut us off, so the
        # caller hears "no broker reachable" rather than a bare timeout.
        deadline = min(trio.current_time() + timeout, trio.current_effective_deadline() - 0.01)
        timeout = max(deadline - trio.current_time(), 0.0)
        last: BaseException | None = None
        attempts = 0
        while True:
            candidates: list[object] = list(self.metadata.brokers)
            candidates += [("bootstrap", addr) for addr in self.config.bootstrap]
            for node in candidates:
                if trio.current_time() >= deadline:
                    break
                try:
                    with trio.fail_after(max(deadline - trio.current_time(), 0.001)):
                        return await self.connection(node)
                except (KafkaConnectionError, KafkaTimeoutError, trio.TooSlowError) as exc:
                    last = exc
            attempts += 1
            now = trio.current_time()
            if now >= deadline:
                raise self._unreachable(timeout, last)
            await trio.sleep(min(jittered_backoff(self.config.reconnect_backoff_ms,
                                                  self.config.reconnect_backoff_max_ms, attempts),
                                 deadline - now))  # fmt: skip

    def _unreachable(self, timeout: float, last: BaseException | None = None) -> KafkaConnectionError:
        servers = ",".join(f"{h}:{p}" for h, p in self.config.bootstrap)
        reason = f": {last}" if last else ""
        return KafkaConnectionError(f"no broker reachable at {servers} within {timeout:.1f} s{reason}")

    def unreachable(self, timeout: float) -> KafkaConnectionError | None:
        """The "no broker reachable" error when no broker connection is open,
        else None: for a caller whose own deadline cut a connection attempt
        off. any_connection gives up just before an enclosing deadline, but a
        loaded machine can resume the task after both have passed, and then
        the enclosing one wins (Trio's outermost cancelled scope does)."""
        if any(state.conn is not None and not state.conn.closed for state in self._nodes.values()):
            return None
        return self._unreachable(timeout)

    # -- metadata ----------------------------------------------------------

    def is_stale(self) -> bool:
        return trio.current_time() - self.metadata.fetched_at > self.config.metadata_max_age_ms / 1000

    def invalidate(self) -> None:
        """Mark the cache stale: the next `topic()` call refreshes it."""
        self.metadata = ClusterMetadata(
            self.metadata.cluster_id, self.metadata.controller_id,
            self.metadata.brokers, self.metadata.topics, fetched_at=-1e9,
        )  # fmt: skip

    async def refresh(self, topics: list[str] | None = None, *, allow_auto_create: bool = False) -> ClusterMetadata:
        """Fetch metadata for `topics` (None: all topics). A refresh already
        under way that covers them (all topics, or a superset) is joined
        rather than repeated; its error is ours too."""
        wanted = None if topics is None else frozenset(topics)
        running = self._refreshing
        if running is not None and (running.topics is None or (wanted is not None and wanted <= running.topics)):
            await running.done.wait()
            if running.error is not None:
                raise running.error
            return self.metadata
        mine = self._refreshing = _Refresh(wanted)
        try:
            conn = await self.any_connection()
            version = conn.version_for(METADATA, max_version=12)
            body: dict = {
                "topics": None if topics is None else [{"name": t, "topic_id": None} for t in topics],
                "allow_auto_topic_creation": allow_auto_create,
            }
            if topics is None and version == 0:
                body["topics"] = []
            response = await conn.request(METADATA, body, version=version)
            assert response is not None
            self.metadata = metadata_from_response(response, trio.current_time(), self.metadata, topics is None)
            self._forget_departed_brokers()
            return self.metadata
        except BaseException as exc:
            mine.error = exc
            raise
        finally:
            if self._refreshing is mine:
                self._refreshing = None
            mine.done.set()

    def _forget_departed_brokers(self) -> None:
        for node, state in list(self._nodes.items()):
            if isinstance(node, int) and node not in self.metadata.brokers and state.conn is not None:
                state.conn._fail(KafkaConnectionError(f"broker {node} left the cluster"))
                del self._nodes[node]

    async def topic(self, name: str, *, allow_auto_create: bool = False, refresh: bool = False) -> TopicInfo:
        """The topic's metadata, refreshed if stale or asked; raises the
        topic's error (UnknownTopicOrPartitionError, ...) if it has one."""
        info = self.metadata.topics.get(name)
        if refresh or info is None or info.error_code != 0 or self.is_stale():
            await self.refresh([name], allow_auto_create=allow_auto_create)
            info = self.metadata.topics.get(name)
        if info is None:
            raise_for_code(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name)
        assert info is not None
        raise_for_code(info.error_code, name)
        return info

    async def aclose(self) -> None:
        self.closed = True
        for state in list(self._nodes.values()):  # a refresh may change _nodes meanwhile
            if state.conn is not None:
                await state.conn.aclose()
        self._nodes.clear()
