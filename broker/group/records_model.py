"""What the coordinator asks to append to ``__consumer_offsets``, as plain values.

Kafka keys these records by (group) or (group, topic, partition) in a
compacted topic; a tombstone deletes the key. The byte format (Kafka's
GroupMetadataKey/Value and OffsetCommitKey/Value) belongs to the codec, not
here. Replaying every record in log order into a fresh `GroupCoordinator`
rebuilds its groups and offsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from .group import Group


@dataclass(frozen=True)
class OffsetAndMetadata:
    offset: int
    leader_epoch: int                 # -1: none committed
    metadata: str                     # "" when the commit carried null
    commit_timestamp_ms: int
    expire_timestamp_ms: int | None   # only OffsetCommit v2-4 with retention_time_ms != -1


@dataclass(frozen=True)
class MemberRecord:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes               # the member's metadata for the selected protocol
    assignment: bytes


@dataclass(frozen=True)
class GroupMetadataRecord:
    """A group's generation, protocol, leader and members' assignments."""

    group_id: str
    protocol_type: str | None
    generation_id: int
    protocol_name: str | None         # None exactly when members is empty
    leader_id: str | None
    current_state_timestamp_ms: int | None
    members: tuple[MemberRecord, ...]

    @classmethod
    def of(cls, group: Group) -> GroupMetadataRecord:
        members = tuple(
            MemberRecord(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                         m.rebalance_timeout_ms, m.session_timeout_ms,
                         m.metadata(group.protocol_name) if group.protocol_name else b"",
                         m.assignment)
            for m in group.members.values())
        return cls(group.group_id, group.protocol_type, group.generation_id,
                   group.protocol_name if members else None, group.leader_id if members else None,
                   group.state_timestamp_ms, members)


@dataclass(frozen=True)
class GroupTombstone:
    group_id: str


@dataclass(frozen=True)
class OffsetCommitRecord:
    group_id: str
    topic: str
    partition: int
    offset: OffsetAndMetadata


@dataclass(frozen=True)
class OffsetTombstone:
    group_id: str
    topic: str
    partition: int


Record = Union[GroupMetadataRecord, GroupTombstone, OffsetCommitRecord, OffsetTombstone]
