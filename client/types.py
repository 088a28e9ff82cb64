"""The small value types users see: partitions, delivered and consumed records."""

from __future__ import annotations

from typing import NamedTuple


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class RecordMetadata(NamedTuple):
    """Where a produced record landed. ``offset`` is -1 with acks=0 (the
    broker does not answer); ``timestamp`` is the broker's append time for
    LogAppendTime topics, else the record's own."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class ConsumerRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int  # 0 CreateTime, 1 LogAppendTime
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]  # () when there are none
    leader_epoch: int = -1


class OffsetAndTimestamp(NamedTuple):
    """A ListOffsets answer: offset -1 when no record is at or after the time."""

    offset: int
    timestamp: int
    leader_epoch: int = -1
