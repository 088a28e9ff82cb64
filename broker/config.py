"""Broker configuration with Kafka's names and defaults.

Read from a ``server.properties``-style file and ``--set key=value``
overrides; each name is Kafka's (``socket.request.max.bytes``), and the
``log.*`` broker defaults become the default ``LogConfig`` of every topic, as
in Kafka. Unknown names are reported and ignored (Kafka logs them too), so an
existing ``server.properties`` loads; a known name with a bad value is an
error that says which name and why.

A cluster is KRaft's: ``controller.quorum.voters`` (``1@host:port,...``)
names the metadata quorum's voters and their controller listeners. A node
whose ``node.id`` is a voter is a combined broker and controller and binds
``controller.listener``; any other node is a broker-only observer of the
metadata log. With no voters configured the node is a one-voter quorum of
itself and needs no controller listener (the single broker). Relations
between settings are checked when the config is built, so a broker with an
inconsistent cluster config refuses to start with a message naming it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from dataclasses import dataclass, field
from pathlib import Path

from riverlog.broker.storage.log_config import ConfigError, LogConfig

log = logging.getLogger(__name__)

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_RAFT_FETCH_MAX_WAIT_MS = 500  # RaftConfig.fetch_max_wait_ms: a request timeout must outlast it


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise ConfigError(f"{name} must be true or false, not {raw!r}")
    return value == "true"


def _int(name: str, raw: str, minimum: int, maximum: int = _INT64_MAX) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, not {value}")
    return value


def parse_host_port(name: str, raw: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or Kafka's ``PLAINTEXT://HOST:PORT``."""
    text = raw.strip()
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme.upper() != "PLAINTEXT":
            raise ConfigError(f"{name}: only PLAINTEXT listeners are supported, not {scheme}")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{name} must be HOST:PORT, not {raw!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    number = int(port)
    if not 0 <= number < 65536:  # 0: any free port (tests)
        raise ConfigError(f"{name}: port {number} is out of range")
    return host or "0.0.0.0", number


@dataclass(frozen=True)
class BrokerConfig:
    node_id: int = 1
    listener: tuple[str, int] = ("127.0.0.1", 9092)  # listeners
    advertised_listener: tuple[str, int] | None = None  # advertised.listeners; None: the listener
    rack: str | None = None  # broker.rack
    log_dirs: tuple[Path, ...] = (Path("riverlog-data"),)
    metadata_log_dir: Path | None = None  # metadata.log.dir; None: the first of log.dirs (as Kafka)
    num_partitions: int = 1
    default_replication_factor: int = 1
    auto_create_topics_enable: bool = True
    socket_request_max_bytes: int = 100 * 1024 * 1024  # largest request frame
    # Kafka's default is Int.MaxValue; every limit here is a real bound.
    max_connections: int = 10_000
    # max.connections.per.ip: Kafka's default (no bound), enforced when set,
    # with max.connections.per.ip.overrides (host:count,...) per address.
    max_connections_per_ip: int = _INT32_MAX
    max_connections_per_ip_overrides: dict[str, int] = field(default_factory=dict)
    queued_max_requests: int = 500  # requests being worked on, across connections
    # queued.max.request.bytes (KIP-72): the memory of the requests being read
    # or worked on, across all connections. Kafka's default is -1 (unbounded);
    # riverlog's fits a small machine: 256 MiB, room for two requests of the
    # largest size (socket.request.max.bytes) and thousands of ordinary ones.
    # Charged as request bytes arrive, granted while any is free (memory_pool.py).
    queued_max_request_bytes: int = 256 * 1024 * 1024
    # connections.max.idle.ms: a connection that sends no request for this
    # long, or takes longer than this to send one whole request, is closed.
    connections_max_idle_ms: int = 600_000
    fetch_max_bytes: int = 55 * 1024 * 1024  # caps a Fetch response whatever the client asks
    max_partitions: int = 10_000  # riverlog.max.partitions: partitions the cluster may hold
    # riverlog.log.max.open.files: segment files open at once (see storage/open_files.py),
    # at most half the open-file limit whatever is set.
    log_max_open_files: int = 1000
    log_retention_check_interval_ms: int = 300_000
    log_flush_scheduler_interval_ms: int = _INT64_MAX
    log_flush_offset_checkpoint_interval_ms: int = 60_000
    log_cleaner_backoff_ms: int = 15_000
    # The group coordinator and its __consumer_offsets topic (Kafka's names, defaults).
    offsets_topic_num_partitions: int = 50
    offsets_topic_replication_factor: int = 3  # capped to the brokers present
    offsets_topic_segment_bytes: int = 100 * 1024 * 1024
    group_min_session_timeout_ms: int = 6000
    group_max_session_timeout_ms: int = 1_800_000
    group_initial_rebalance_delay_ms: int = 3000
    group_max_size: int = _INT32_MAX
    offset_metadata_max_bytes: int = 4096
    offsets_retention_minutes: int = 10080
    offsets_retention_check_interval_ms: int = 600_000
    # The cluster: KRaft's names and defaults. Empty voters: a one-voter quorum of this node.
    controller_quorum: dict[int, tuple[str, int]] = field(default_factory=dict)  # controller.quorum.voters
    controller_listener: tuple[str, int] | None = None  # controller.listener; voters only
    broker_session_timeout_ms: int = 9000  # no heartbeat for this long: the broker is fenced
    broker_heartbeat_interval_ms: int = 2000
    controller_quorum_election_timeout_ms: int = 1000
    controller_quorum_fetch_timeout_ms: int = 2000
    controller_quorum_request_timeout_ms: int = 2000
    # riverlog.initial.cluster (--initial-cluster): this voter may start with no
    # metadata (a new cluster's first start); see meta_properties.check_new_voter.
    initial_cluster: bool = False
    log_defaults: LogConfig = field(default_factory=LogConfig)  # from the log.* names

    def __post_init__(self) -> None:
        check_cluster(self)

    @property
    def metadata_dir(self) -> Path:
        """Where the metadata log, meta.properties and the producer id block live."""
        return self.metadata_log_dir if self.metadata_log_dir is not None else self.log_dirs[0]

    @property
    def voter_ids(self) -> frozenset[int]:
        """The metadata quorum's voters: the configured ones, else this node alone."""
        return frozenset(self.controller_quorum) or frozenset({self.node_id})

    @property
    def is_voter(self) -> bool:
        """A combined broker+controller (True) or a broker-only observer (False)."""
        return self.node_id in self.voter_ids

    @property
    def controller_peers(self) -> dict[int, tuple[str, int]]:
        """The other voters' controller listeners (empty for the single node)."""
        return {n: a for n, a in self.controller_quorum.items() if n != self.node_id}

    @property
    def advertised(self) -> tuple[str, int]:
        if self.advertised_listener is not None:
            return self.advertised_listener
        host, port = self.listener
        return ("127.0.0.1" if host in ("0.0.0.0", "::", "") else host, port)

    @classmethod
    def from_properties(cls, props: dict[str, str]) -> BrokerConfig:
        """Build from Kafka-named properties; unknown names are logged and skipped."""
        values: dict[str, object] = {}
        log_props: dict[str, str] = {}
        # As Kafka: log.retention.ms beats .minutes beats .hours (log.roll too).
        for name in sorted(props, key=lambda n: _PRECEDENCE.get(n, 0)):
            raw = props[name]
            if name in _LOG_NAMES:
                topic_name, convert = _LOG_NAMES[name]
                try:
                    log_props[topic_name] = convert(raw)
                except ValueError:
                    raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
            elif name in _BROKER_NAMES:
                attr, parse = _BROKER_NAMES[name]
                values[attr] = parse(name, raw)
            else:
                log.warning("ignoring unknown config %s", name)
        if log_props:
            values["log_defaults"] = LogConfig.from_properties(log_props)
        config = cls(**values)
        if config.log_defaults.max_message_bytes > config.socket_request_max_bytes:
            raise ConfigError("message.max.bytes must not exceed socket.request.max.bytes")
        return config

    def with_overrides(self, props: dict[str, str]) -> BrokerConfig:
        """This config with ``props`` applied over it (the CLI's --set)."""
        merged = self.to_properties()
        merged.update(props)
        return BrokerConfig.from_properties(merged)

    def to_properties(self) -> dict[str, str]:
        out = {}
        for name, (attr, _) in _BROKER_NAMES.items():
            value = getattr(self, attr)
            if value is None:
                continue
            if isinstance(value, tuple) and attr in ("listener", "advertised_listener", "controller_listener"):
                value = f"{value[0]}:{value[1]}"
            elif attr == "controller_quorum":
                if not value:
                    continue
                value = format_voters(value)
            elif attr == "max_connections_per_ip_overrides":
                if not value:
                    continue
                value = format_connection_overrides(value)
            elif attr == "log_dirs":
                value = ",".join(str(p) for p in value)
            elif isinstance(value, bool):
                value = str(value).lower()
            out[name] = str(value)
        topic = self.log_defaults.to_properties()
        for name, (topic_name, _) in _LOG_NAMES.items():
            if name not in _LOG_ALIASES:
                out[name] = topic[topic_name]
        return out


def parse_voters(name: str, raw: str) -> dict[int, tuple[str, int]]:
    """Kafka's ``1@host:port,2@host:port,...`` as {node id: (host, port)}."""
    voters: dict[int, tuple[str, int]] = {}
    if not raw.strip():
        return voters  # Kafka's default: none configured
    for item in (part.strip() for part in raw.split(",")):
        node, sep, address = item.partition("@")
        if not sep or not node.strip().isdigit():
            raise ConfigError(f"{name} must be ID@HOST:PORT,... (as 1@localhost:9093), not {raw!r}: bad entry {item!r}")
        node_id = int(node)
        if node_id > _INT32_MAX:
            raise ConfigError(f"{name}: node id {node_id} is out of range")
        host, port = parse_host_port(f"{name} entry {item!r}", address)
        if not host.strip() or not address.rpartition(":")[0].strip() or port == 0:
            raise ConfigError(f"{name}: entry {item!r} needs a host and a port from 1 to 65535")
        if any(c in host for c in "@;, \t") or (":" in host and not address.strip().startswith("[")):
            raise ConfigError(f"{name}: entry {item!r} has a bad host {host!r} (IPv6 hosts go in brackets)")
        if node_id in voters:
            raise ConfigError(f"{name}: node id {node_id} appears more than once in {raw!r}")
        voters[node_id] = (host, port)
    return voters


def canonical_ip(text: str) -> str | None:
    """An IP address as the accept loop names a peer (an IPv4-mapped IPv6
    address as its IPv4 one: the same client on a dual-stack socket); None
    if ``text`` is not an IP address."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def parse_connection_overrides(name: str, raw: str) -> dict[str, int]:
    """Kafka's ``host:count,host:count`` (an IPv6 host is everything before
    the last colon). Limits apply to the peer's address, so a host must be an
    IP address: Kafka resolves names at start, riverlog refuses them rather
    than match a name no peer ever has."""
    overrides: dict[str, int] = {}
    for item in (part.strip() for part in raw.split(",") if part.strip()):
        host, sep, count = item.rpartition(":")
        host = host.strip().removeprefix("[").removesuffix("]")
        if not sep or not host:
            raise ConfigError(f"{name} must be HOST:COUNT,... (as 127.0.0.1:200), not {raw!r}: bad entry {item!r}")
        ip = canonical_ip(host)
        if ip is None:
            raise ConfigError(f"{name} entry {item!r}: {host!r} is not an IP address (give the address its "
                              "clients connect from, as 127.0.0.1:200 or [::1]:200)")  # fmt: skip
        overrides[ip] = _int(f"{name} entry {item!r}", count, 0, _INT32_MAX)
    return overrides


def format_connection_overrides(overrides: dict[str, int]) -> str:
    return ",".join(f"[{h}]:{n}" if ":" in h else f"{h}:{n}" for h, n in overrides.items())


def _pool_bytes(name: str, raw: str) -> int:
    """queued.max.request.bytes: -1 (Kafka's unbounded) or a positive size."""
    value = _int(name, raw, -1, _INT64_MAX)
    if value == 0:
        raise ConfigError(f"{name} must be -1 (unbounded) or positive, not 0")
    return value


def format_voters(voters: dict[int, tuple[str, int]]) -> str:
    return ",".join(f"{n}@[{h}]:{p}" if ":" in h else f"{n}@{h}:{p}" for n, (h, p) in sorted(voters.items()))


def _same_address(a: tuple[str, int], b: tuple[str, int]) -> bool:
    """Two listeners that cannot both bind: same port (not 0), and the same
    host or a wildcard on either side."""
    wildcard = ("0.0.0.0", "::", "")
    return a[1] == b[1] != 0 and (a[0] == b[0] or a[0] in wildcard or b[0] in wildcard)


def check_cluster(config: BrokerConfig) -> None:
    """The cluster settings' relations (each error names the settings)."""
    quorum, listener = config.controller_quorum, config.controller_listener
    if quorum and config.node_id in quorum:
        voter_port = quorum[config.node_id][1]
        if listener is None:
            raise ConfigError(
                f"node.id {config.node_id} is a voter in controller.quorum.voters, so it needs "
                f"controller.listener (--controller-listen) on port {voter_port}"
            )
        if listener[1] != voter_port:
            raise ConfigError(
                f"controller.listener port {listener[1]} is not node {config.node_id}'s port in "
                f"controller.quorum.voters ({format_voters({config.node_id: quorum[config.node_id]})})"
            )
    elif listener is not None:
        if quorum:
            raise ConfigError(
                f"controller.listener is set but node.id {config.node_id} is not in controller.quorum.voters "
                f"({format_voters(quorum)}): a broker-only node has no controller listener"
            )
        raise ConfigError("controller.listener needs controller.quorum.voters (ID@HOST:PORT,...)")
    if listener is not None and _same_address(listener, config.listener):
        raise ConfigError(
            f"listeners and controller.listener are the same address ({listener[0]}:{listener[1]}); "
            "clients and the controller quorum need separate listeners"
        )
    if config.broker_session_timeout_ms <= config.broker_heartbeat_interval_ms:
        raise ConfigError(
            f"broker.session.timeout.ms ({config.broker_session_timeout_ms}) must be above "
            f"broker.heartbeat.interval.ms ({config.broker_heartbeat_interval_ms})"
        )
    if config.controller_quorum_request_timeout_ms <= _RAFT_FETCH_MAX_WAIT_MS:
        raise ConfigError(
            f"controller.quorum.request.timeout.ms must be above {_RAFT_FETCH_MAX_WAIT_MS}, the time a "
            "quorum Fetch waits at the leader"
        )


def broker_names_of_topic_configs() -> dict[str, str]:
    """Topic config -> the broker config that sets its default (retention.ms -> log.retention.ms)."""
    return {topic: broker for broker, (topic, _) in _LOG_NAMES.items() if broker not in _LOG_ALIASES}


def load_properties(path: Path) -> dict[str, str]:
    """A Java ``.properties`` file as Kafka's server.properties uses it: ``key=value``
    lines, ``#`` and ``!`` comments, blank lines (no line continuations)."""
    props: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text[0] in "#!":
            continue
        key, sep, value = text.partition("=")
        if not sep:
            key, sep, value = text.partition(":")
        if not sep or not key.strip():
            raise ConfigError(f"{path}:{number}: expected key=value, got {line!r}")
        props[key.strip()] = value.strip()
    return props


def _dirs(name: str, raw: str) -> tuple[Path, ...]:
    dirs = tuple(Path(p.strip()) for p in raw.split(",") if p.strip())
    if not dirs:
        raise ConfigError(f"{name} needs at least one directory")
    return dirs


def _hours(raw: str) -> str:
    return str(int(raw) * 3600 * 1000)


def _minutes(raw: str) -> str:
    return str(int(raw) * 60 * 1000)


_BROKER_NAMES = {
    "node.id": ("node_id", lambda n, r: _int(n, r, 0, _INT32_MAX)),
    "listeners": ("listener", parse_host_port),
    "advertised.listeners": ("advertised_listener", parse_host_port),
    "broker.rack": ("rack", lambda n, r: r.strip() or None),
    "log.dirs": ("log_dirs", _dirs),
    "metadata.log.dir": ("metadata_log_dir", lambda n, r: Path(r.strip()) if r.strip() else None),
    "num.partitions": ("num_partitions", lambda n, r: _int(n, r, 1, _INT32_MAX)),
    "default.replication.factor": ("default_replication_factor", lambda n, r: _int(n, r, 1, 32767)),
    "auto.create.topics.enable": ("auto_create_topics_enable", _bool),
    "socket.request.max.bytes": ("socket_request_max_bytes", lambda n, r: _int(n, r, 1, _INT32_MAX)),
    "max.connections": ("max_connections", lambda n, r: _int(n, r, 1, _INT32_MAX)),
    "max.connections.per.ip": ("max_connections_per_ip", lambda n, r: _int(n, r, 0, _INT32_MAX)),
    "max.connections.per.ip.overrides": ("max_connections_per_ip_overrides", parse_connection_overrides),
    "queued.max.requests": ("queued_max_requests", lambda n, r: _int(n, r, 1, _INT32_MAX)),
    "queued.max.request.bytes": ("queued_max_request_bytes", _pool_bytes),
    "connections.max.idle.ms": ("connections_max_idle_ms", lambda n, r: _int(n, r, 1)),
    "fetch.max.bytes": ("fetch_max_bytes", lambda n, r: _int(n, r, 1024, _INT32_MAX)),
    "offsets.topic.num.partitions": ("offsets_topic_num_partitions", lambda n, r: _int(n, r, 1, 10_000)),
    "offsets.topic.replication.factor": ("offsets_topic_replication_factor", lambda n, r: _int(n, r, 1, 32767)),
    "offsets.topic.segment.bytes": ("offsets_topic_segment_bytes", lambda n, r: _int(n, r, 14, _INT32_MAX)),
    "group.min.session.timeout.ms": ("group_min_session_timeout_ms", lambda n, r: _int(n, r, 0, _INT32_MAX)),
    "group.max.session.timeout.ms": ("group_max_session_timeout_ms", lambda n, r: _int(n, r, 0, _INT32_MAX)),
    "group.initial.rebalance.delay.ms": ("group_initial_rebalance_delay_ms", lambda n, r: _int(n, r, 0, _INT32_MAX)),
    "group.max.size": ("group_max_size", lambda n, r: _int(n, r, 1, _INT32_MAX)),
    "offset.metadata.max.bytes": ("offset_metadata_max_bytes", lambda n, r: _int(n, r, 0, _INT32_MAX)),
    "offsets.retention.minutes": ("offsets_retention_minutes", lambda n, r: _int(n, r, 1, _INT32_MAX)),
    "offsets.retention.check.interval.ms": (
        "offsets_retention_check_interval_ms", lambda n, r: _int(n, r, 1, _INT32_MAX)),
    "controller.quorum.voters": ("controller_quorum", parse_voters),
    "controller.listener": ("controller_listener", parse_host_port),
    "broker.session.timeout.ms": ("broker_session_timeout_ms", lambda n, r: _int(n, r, 1, _INT32_MAX)),
    "broker.heartbeat.interval.ms": ("broker_heartbeat_interval_ms", lambda n, r: _int(n, r, 1, _INT32_MAX)),
    "controller.quorum.election.timeout.ms": (
        "controller_quorum_election_timeout_ms", lambda n, r: _int(n, r, 1, _INT32_MAX)),
    "controller.quorum.fetch.timeout.ms": (
        "controller_quorum_fetch_timeout_ms", lambda n, r: _int(n, r, 1, _INT32_MAX)),
    "controller.quorum.request.timeout.ms": (
        "controller_quorum_request_timeout_ms", lambda n, r: _int(n, r, 1, _INT32_MAX)),
    "riverlog.initial.cluster": ("initial_cluster", _bool),
    # No Kafka name: Kafka leaves the partition count unbounded.
    "riverlog.max.partitions": ("max_partitions", lambda n, r: _int(n, r, 1, 1_000_000)),
    # No Kafka name: Kafka keeps every segment file open.
    "riverlog.log.max.open.files": ("log_max_open_files", lambda n, r: _int(n, r, 1, _INT32_MAX)),
    "log.retention.check.interval.ms": ("log_retention_check_interval_ms", lambda n, r: _int(n, r, 1)),
    "log.cleaner.backoff.ms": ("log_cleaner_backoff_ms", lambda n, r: _int(n, r, 1)),
    "log.flush.scheduler.interval.ms": ("log_flush_scheduler_interval_ms", lambda n, r: _int(n, r, 1)),
    "log.flush.offset.checkpoint.interval.ms": (
        "log_flush_offset_checkpoint_interval_ms",
        lambda n, r: _int(n, r, 1),
    ),
}

# Broker-level defaults of topic configs: broker name -> (topic name, converter).
_LOG_NAMES = {
    "log.segment.bytes": ("segment.bytes", str),
    "log.roll.ms": ("segment.ms", str),
    "log.roll.hours": ("segment.ms", _hours),
    "log.index.size.max.bytes": ("segment.index.bytes", str),
    "log.index.interval.bytes": ("index.interval.bytes", str),
    "log.retention.ms": ("retention.ms", str),
    "log.retention.minutes": ("retention.ms", _minutes),
    "log.retention.hours": ("retention.ms", _hours),
    "log.retention.bytes": ("retention.bytes", str),
    "log.cleanup.policy": ("cleanup.policy", str),
    "log.cleaner.delete.retention.ms": ("delete.retention.ms", str),
    "log.cleaner.min.compaction.lag.ms": ("min.compaction.lag.ms", str),
    "log.cleaner.max.compaction.lag.ms": ("max.compaction.lag.ms", str),
    "log.cleaner.min.cleanable.ratio": ("min.cleanable.dirty.ratio", str),
    "message.max.bytes": ("max.message.bytes", str),
    "log.flush.interval.messages": ("flush.messages", str),
    "log.flush.interval.ms": ("flush.ms", str),
    "log.segment.delete.delay.ms": ("file.delete.delay.ms", str),
    "log.message.timestamp.type": ("message.timestamp.type", str),
}
_LOG_ALIASES = {"log.roll.hours", "log.retention.minutes", "log.retention.hours"}
_PRECEDENCE = {"log.roll.hours": -2, "log.retention.hours": -2, "log.retention.minutes": -1}

assert {f.name for f in dataclasses.fields(BrokerConfig)} >= {a for a, _ in _BROKER_NAMES.values()}
