"""Broker configuration with Kafka's names and defaults.

Read from a ``server.properties``-style file and ``--set key=value``
overrides; each name is Kafka's (``socket.request.max.bytes``), and the
``log.*`` broker defaults become the default ``LogConfig`` of every topic, as
in Kafka. Unknown names are reported and ignored (Kafka logs them too), so an
existing ``server.properties`` loads; a known name with a bad value is an
error that says which name and why.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from broker.storage.log_config import ConfigError, LogConfig

log = logging.getLogger(__name__)

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1


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
    num_partitions: int = 1
    default_replication_factor: int = 1
    auto_create_topics_enable: bool = True
    socket_request_max_bytes: int = 100 * 1024 * 1024  # largest request frame
    # Kafka's default is Int.MaxValue; every limit here is a real bound.
    max_connections: int = 10_000
    queued_max_requests: int = 500  # requests being worked on, across connections
    fetch_max_bytes: int = 55 * 1024 * 1024  # caps a Fetch response whatever the client asks
    max_partitions: int = 10_000  # riverlog.max.partitions: partitions the cluster may hold
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
    log_defaults: LogConfig = field(default_factory=LogConfig)  # from the log.* names

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
            if isinstance(value, tuple) and attr in ("listener", "advertised_listener"):
                value = f"{value[0]}:{value[1]}"
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
    "num.partitions": ("num_partitions", lambda n, r: _int(n, r, 1, _INT32_MAX)),
    "default.replication.factor": ("default_replication_factor", lambda n, r: _int(n, r, 1, 32767)),
    "auto.create.topics.enable": ("auto_create_topics_enable", _bool),
    "socket.request.max.bytes": ("socket_request_max_bytes", lambda n, r: _int(n, r, 1, _INT32_MAX)),
    "max.connections": ("max_connections", lambda n, r: _int(n, r, 1, _INT32_MAX)),
    "queued.max.requests": ("queued_max_requests", lambda n, r: _int(n, r, 1, _INT32_MAX)),
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
    # No Kafka name: Kafka leaves the partition count unbounded.
    "riverlog.max.partitions": ("max_partitions", lambda n, r: _int(n, r, 1, 1_000_000)),
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
    "message.max.bytes": ("max.message.bytes", str),
    "log.flush.interval.messages": ("flush.messages", str),
    "log.flush.interval.ms": ("flush.ms", str),
    "log.segment.delete.delay.ms": ("file.delete.delay.ms", str),
    "log.message.timestamp.type": ("message.timestamp.type", str),
}
_LOG_ALIASES = {"log.roll.hours", "log.retention.minutes", "log.retention.hours"}
_PRECEDENCE = {"log.roll.hours": -2, "log.retention.hours": -2, "log.retention.minutes": -1}

assert {f.name for f in dataclasses.fields(BrokerConfig)} >= {a for a, _ in _BROKER_NAMES.values()}
