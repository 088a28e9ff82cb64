"""The coordinator's records (records_model) as ``__consumer_offsets`` key/value
bytes (offsets_format) and back; which partition a group lives in."""

from __future__ import annotations

from . import offsets_format as fmt
from .records_model import (
    GroupMetadataRecord,
    GroupTombstone,
    MemberRecord,
    OffsetAndMetadata,
    OffsetCommitRecord,
    OffsetTombstone,
    Record,
)

OFFSETS_TOPIC = "__consumer_offsets"


def java_string_hash(s: str) -> int:
    """Java's String.hashCode: s[0]*31^(n-1) + ... over UTF-16 code units, as int32."""
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(group_id: str, partitions: int) -> int:
    """Kafka's GroupMetadataManager.partitionFor: Utils.abs(hashCode) % count,
    where Utils.abs maps Integer.MIN_VALUE to 0."""
    h = java_string_hash(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def record_group(record: Record) -> str:
    return record.group_id


def encode(record: Record) -> tuple[bytes, bytes | None]:
    """The (key, value) of a record; value None is a tombstone."""
    if isinstance(record, OffsetCommitRecord):
        o = record.offset
        key = fmt.offset_key(record.group_id, record.topic, record.partition)
        return key, fmt.offset_value(fmt.OffsetValue(o.offset, o.leader_epoch, o.metadata, o.commit_timestamp_ms))
    if isinstance(record, OffsetTombstone):
        return fmt.offset_key(record.group_id, record.topic, record.partition), None
    if isinstance(record, GroupMetadataRecord):
        members = tuple(
            fmt.MemberValue(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                            m.rebalance_timeout_ms, m.session_timeout_ms, m.subscription, m.assignment)
            for m in record.members
        )  # fmt: skip
        value = fmt.GroupValue(record.protocol_type or "", record.generation_id, record.protocol_name,
                               record.leader_id, record.current_state_timestamp_ms or -1, members)  # fmt: skip
        return fmt.group_key(record.group_id), fmt.group_value(value)
    if isinstance(record, GroupTombstone):
        return fmt.group_key(record.group_id), None
    raise TypeError(f"not a __consumer_offsets record: {record!r}")


def decode(key: bytes, value: bytes | None) -> Record:
    """The record a key/value pair holds; FormatError for bytes that are not one."""
    k = fmt.parse_key(key)
    if isinstance(k, fmt.OffsetKey):
        if value is None:
            return OffsetTombstone(k.group, k.topic, k.partition)
        v = fmt.parse_offset_value(value)
        expire = v.expire_timestamp_ms if v.expire_timestamp_ms >= 0 else None
        return OffsetCommitRecord(k.group, k.topic, k.partition,
                                  OffsetAndMetadata(v.offset, v.leader_epoch, v.metadata, v.commit_timestamp_ms,
                                                    expire))  # fmt: skip
    if value is None:
        return GroupTombstone(k.group)
    g = fmt.parse_group_value(value)
    members = tuple(
        MemberRecord(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                     m.rebalance_timeout_ms, m.session_timeout_ms, m.subscription, m.assignment)
        for m in g.members
    )  # fmt: skip
    return GroupMetadataRecord(k.group, g.protocol_type or None, g.generation, g.protocol, g.leader,
                               g.state_timestamp_ms if g.state_timestamp_ms >= 0 else None, members)  # fmt: skip
