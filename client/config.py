"""Client configuration: the Java client's names in snake_case, its defaults.

``Producer(bootstrap_servers="127.0.0.1:9092", linger_ms=5)`` builds a
ProducerConfig; a name that is not a field is refused with the closest
match suggested, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any, TypeVar

from riverlog.client.errors import ConfigError
from riverlog.client.records.layout import Compression

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def parse_bootstrap(servers: str | list[str] | tuple[str, ...]) -> list[tuple[str, int]]:
    """``"h1:9092,h2:9092"`` or a list of ``host:port`` into (host, port) pairs."""
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    out = []
    for item in (s.strip() for s in items):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep:
            host, port = item, "9092"
        host = host.strip("[]")  # [::1]:9092
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"bootstrap server {item!r} is not HOST:PORT")
        out.append((host, int(port)))
    if not out:
        raise ConfigError("bootstrap_servers is empty")
    return out


@dataclass
class ClientConfig:
    """What every client (producer, consumer, admin) shares."""

    bootstrap_servers: str | list[str] = DEFAULT_BOOTSTRAP
    client_id: str = "riverlog"
    request_timeout_ms: int = 30_000
    socket_connection_setup_timeout_ms: int = 10_000
    # How long to keep trying to reach any broker before giving up on an
    # operation that needs one (the Java producer's max.block.ms plays this
    # role for send; other clients use default.api.timeout.ms).
    default_api_timeout_ms: int = 60_000
    retry_backoff_ms: int = 100
    retry_backoff_max_ms: int = 1_000
    reconnect_backoff_ms: int = 50
    reconnect_backoff_max_ms: int = 1_000
    metadata_max_age_ms: int = 300_000
    max_in_flight_requests_per_connection: int = 5
    # Largest response frame we accept from a broker (a Fetch answer is
    # bounded by fetch_max_bytes; this is the guard against a broken peer).
    max_response_bytes: int = 200 * 1024 * 1024

    def __post_init__(self) -> None:
        self.bootstrap = parse_bootstrap(self.bootstrap_servers)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_ms", "_bytes", "_size", "_memory", "_records")) or f.name.startswith("max_"):
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ConfigError(f"{f.name} must be a non-negative integer, got {value!r}")
        if self.max_in_flight_requests_per_connection < 1:
            raise ConfigError("max_in_flight_requests_per_connection must be at least 1")


ACKS = {"all": -1, "-1": -1, -1: -1, "1": 1, 1: 1, "0": 0, 0: 0}


@dataclass
class ProducerConfig(ClientConfig):
    acks: int | str = "all"
    linger_ms: int = 5
    batch_size: int = 16_384
    buffer_memory: int = 32 * 1024 * 1024
    max_block_ms: int = 60_000
    compression_type: str = "none"
    enable_idempotence: bool = True
    retries: int = 2**31 - 1
    delivery_timeout_ms: int = 120_000
    max_request_size: int = 1_048_576

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.acks not in ACKS:
            raise ConfigError(f"acks must be 0, 1 or 'all', got {self.acks!r}")
        self.acks = ACKS[self.acks]
        try:
            self.compression = Compression[str(self.compression_type).upper()]
        except KeyError:
            names = ", ".join(c.name.lower() for c in Compression)
            raise ConfigError(f"compression_type must be one of {names}, got {self.compression_type!r}") from None
        if self.enable_idempotence:
            # The Java client's rule: idempotence needs acks=all and at most
            # five requests in flight, so ordering survives retries.
            if self.acks != -1:
                raise ConfigError("enable_idempotence requires acks='all' (set enable_idempotence=False)")
            if self.max_in_flight_requests_per_connection > 5:
                raise ConfigError("enable_idempotence allows at most 5 requests in flight per connection")
        if self.batch_size < 1 or self.max_request_size < 1:
            raise ConfigError("batch_size and max_request_size must be positive")
        if self.buffer_memory < self.batch_size:
            raise ConfigError("buffer_memory must be at least batch_size")


@dataclass
class ConsumerConfig(ClientConfig):
    auto_offset_reset: str = "latest"
    fetch_min_bytes: int = 1
    fetch_max_bytes: int = 52_428_800
    fetch_max_wait_ms: int = 500
    max_partition_fetch_bytes: int = 1_048_576
    max_poll_records: int = 500
    check_crcs: bool = True
    isolation_level: str = "read_uncommitted"
    # Consumer groups (client/group/membership.py). group_id None: no group,
    # so no subscribe, commit or committed. max_poll_interval_ms is also the
    # rebalance timeout JoinGroup announces, as in Java.
    group_id: str | None = None
    group_instance_id: str | None = None
    session_timeout_ms: int = 45_000
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000
    partition_assignment_strategy: list[str] | str = dataclasses.field(
        default_factory=lambda: ["range", "cooperative-sticky"])  # Java 3.x's default
    enable_auto_commit: bool = True
    auto_commit_interval_ms: int = 5_000

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_group()
        if self.auto_offset_reset not in ("earliest", "latest", "none"):
            raise ConfigError(f"auto_offset_reset must be earliest, latest or none, got {self.auto_offset_reset!r}")
        if self.isolation_level not in ("read_uncommitted", "read_committed"):
            raise ConfigError(f"isolation_level must be read_uncommitted or read_committed, got {self.isolation_level!r}")
        if self.max_poll_records < 1:
            raise ConfigError("max_poll_records must be at least 1")


    def _check_group(self) -> None:
        from riverlog.client.group.assignors import ASSIGNORS  # the group package imports config

        strategies = self.partition_assignment_strategy
        if isinstance(strategies, str):
            strategies = [s.strip() for s in strategies.split(",") if s.strip()]
        self.partition_assignment_strategy = list(strategies)
        unknown = [s for s in self.partition_assignment_strategy if s not in ASSIGNORS]
        if unknown or not self.partition_assignment_strategy:
            names = ", ".join(ASSIGNORS)
            raise ConfigError(f"partition_assignment_strategy must name some of {names}, got {strategies!r}")
        if self.group_id is not None and not self.group_id:
            raise ConfigError("group_id must not be empty (None: no group)")
        if self.heartbeat_interval_ms < 1 or self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ConfigError("heartbeat_interval_ms must be positive and below session_timeout_ms")
        if self.group_id is None:
            self.enable_auto_commit = False  # Java: nothing to commit to without a group
        if self.auto_commit_interval_ms < 1 or self.max_poll_interval_ms < 1:
            raise ConfigError("auto_commit_interval_ms and max_poll_interval_ms must be positive")


@dataclass
class AdminConfig(ClientConfig):
    pass


C = TypeVar("C", bound=ClientConfig)


def build_config(cls: type[C], options: dict[str, Any]) -> C:
    """``cls(**options)``, with unknown names refused by name, with a hint."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    for name in options:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown {cls.__name__} option {name!r}{hint}")
    return cls(**options)
