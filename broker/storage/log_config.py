"""Per-log configuration with Kafka's topic config names and defaults.

Each field is the Kafka topic config of the same name with dots replaced by
underscores (``segment.bytes`` -> ``segment_bytes``); ``from_properties``
takes the dotted names as an operator writes them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

_INT64_MAX = 2**63 - 1


class ConfigError(ValueError):
    """A config name that does not exist or a value out of its range."""


@dataclass(frozen=True)
class LogConfig:
    segment_bytes: int = 1024 * 1024 * 1024  # roll when the .log would grow past this
    segment_ms: int = 7 * 24 * 3600 * 1000  # roll when the segment's records span this long
    segment_index_bytes: int = 10 * 1024 * 1024  # preallocated size of each index file
    index_interval_bytes: int = 4096  # log bytes between two offset index entries
    retention_ms: int = 7 * 24 * 3600 * 1000  # -1: keep forever
    retention_bytes: int = -1  # -1: no size limit
    cleanup_policy: tuple[str, ...] = ("delete",)  # "delete", "compact" or both
    delete_retention_ms: int = 24 * 3600 * 1000  # how long compaction keeps tombstones
    min_compaction_lag_ms: int = 0  # records younger than this are not compacted
    max_compaction_lag_ms: int = _INT64_MAX  # a dirty record this old forces a pass
    min_cleanable_dirty_ratio: float = 0.5  # dirty share of the cleanable part that earns a pass
    max_message_bytes: int = 1024 * 1024 + 12  # largest record batch accepted
    # Kafka's defaults: never fsync on a count or a timer; replication gives
    # durability. flush_messages=1 is "fsync every batch" for single-node users.
    flush_messages: int = _INT64_MAX
    flush_ms: int = _INT64_MAX
    file_delete_delay_ms: int = 60_000  # deleted segments linger for in-flight reads
    message_timestamp_type: str = "CreateTime"

    def __post_init__(self) -> None:
        # Limits between settings, checked where a log is configured.
        _at_least("segment.bytes", self.segment_bytes, 14)
        if self.segment_bytes > 2**31 - 1:  # index positions are u32, Kafka caps it at int32 too
            raise ConfigError(f"segment.bytes must be at most {2**31 - 1}, not {self.segment_bytes}")
        _at_least("segment.ms", self.segment_ms, 1)
        _at_least("segment.index.bytes", self.segment_index_bytes, 24)  # two time index entries
        _at_least("index.interval.bytes", self.index_interval_bytes, 0)
        _at_least("retention.ms", self.retention_ms, -1)
        _at_least("retention.bytes", self.retention_bytes, -1)
        _at_least("delete.retention.ms", self.delete_retention_ms, 0)
        _at_least("min.compaction.lag.ms", self.min_compaction_lag_ms, 0)
        _at_least("max.compaction.lag.ms", self.max_compaction_lag_ms, 1)
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms:  # Kafka refuses this pair too
            raise ConfigError(
                f"min.compaction.lag.ms ({self.min_compaction_lag_ms}) must not exceed "
                f"max.compaction.lag.ms ({self.max_compaction_lag_ms})"
            )
        ratio = self.min_cleanable_dirty_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
            raise ConfigError(f"min.cleanable.dirty.ratio must be a number in [0, 1], not {ratio!r}")
        _at_least("max.message.bytes", self.max_message_bytes, 0)
        _at_least("flush.messages", self.flush_messages, 1)
        _at_least("flush.ms", self.flush_ms, 0)
        _at_least("file.delete.delay.ms", self.file_delete_delay_ms, 0)
        if not self.cleanup_policy or not set(self.cleanup_policy) <= {"delete", "compact"}:
            raise ConfigError(f"cleanup.policy must be delete, compact or both, not {self.cleanup_policy!r}")
        if self.message_timestamp_type not in ("CreateTime", "LogAppendTime"):
            raise ConfigError("message.timestamp.type must be CreateTime or LogAppendTime")

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy

    @classmethod
    def from_properties(cls, props: dict[str, str], base: LogConfig | None = None) -> LogConfig:
        """Apply Kafka-named properties (``{"segment.bytes": "1048576"}``) over ``base``."""
        changes: dict[str, object] = {}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name, raw in props.items():
            attr = name.replace(".", "_")
            if attr not in fields:
                raise ConfigError(f"unknown log config {name!r}")
            if attr == "cleanup_policy":
                changes[attr] = tuple(p.strip() for p in str(raw).split(",") if p.strip())
            elif attr == "message_timestamp_type":
                changes[attr] = str(raw)
            elif attr == "min_cleanable_dirty_ratio":
                try:
                    changes[attr] = float(raw)
                except ValueError:
                    raise ConfigError(f"{name} must be a number, not {raw!r}") from None
            else:
                try:
                    changes[attr] = int(raw)
                except ValueError:
                    raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
        return dataclasses.replace(base or cls(), **changes)

    def to_properties(self) -> dict[str, str]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name.replace("_", ".")] = ",".join(value) if isinstance(value, tuple) else str(value)
        return out


def _at_least(name: str, value: int, minimum: int) -> None:
    if not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, not {value!r}")
