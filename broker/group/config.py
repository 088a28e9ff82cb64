"""Group coordinator settings, named after Kafka's broker configs."""

from __future__ import annotations

from dataclasses import dataclass

# Kafka's GroupCoordinator.NewMemberJoinTimeoutMs: how long a new member's
# pending JoinGroup may wait before the member is dropped (it is expected to
# retry if it is still alive).
NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000


@dataclass(frozen=True)
class GroupConfig:
    group_min_session_timeout_ms: int = 6000              # group.min.session.timeout.ms
    group_max_session_timeout_ms: int = 1_800_000         # group.max.session.timeout.ms
    group_initial_rebalance_delay_ms: int = 3000          # group.initial.rebalance.delay.ms
    group_max_size: int = 2**31 - 1                       # group.max.size
    offset_metadata_max_bytes: int = 4096                 # offset.metadata.max.bytes
    offsets_retention_minutes: int = 10080                # offsets.retention.minutes
    offsets_retention_check_interval_ms: int = 600_000    # offsets.retention.check.interval.ms

    def __post_init__(self) -> None:
        assert 0 <= self.group_min_session_timeout_ms <= self.group_max_session_timeout_ms
        assert self.group_initial_rebalance_delay_ms >= 0
        assert self.group_max_size >= 1
        assert self.offset_metadata_max_bytes >= 0
        assert self.offsets_retention_minutes >= 1
        assert self.offsets_retention_check_interval_ms >= 1

    @property
    def offsets_retention_ms(self) -> int:
        return self.offsets_retention_minutes * 60_000
