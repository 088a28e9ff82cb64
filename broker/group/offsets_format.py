"""The key/value format of records in ``__consumer_offsets``, Kafka's own.

Every record's key starts with an int16 version that says what it is:

- key v0/v1 ``OffsetCommitKey``: group, topic, partition; the value is an
  ``OffsetCommitValue`` (we write v3: offset, leader epoch, metadata, commit
  timestamp; v1 also carried an expire timestamp, v4 is the flexible form);
- key v2 ``GroupMetadataKey``: group; the value is a ``GroupMetadataValue``
  (we write v3: protocol type, generation, protocol, leader, state
  timestamp, members with instance ids and timeouts, subscription and
  assignment bytes).

A null value is a tombstone: the offset, or the whole group, is gone, and
compaction drops the key for good. Using Kafka's layout means Kafka's own
tools (``kafka-console-consumer --formatter ...OffsetsMessageFormatter``)
read our topic, and readers here accept every version Kafka ever wrote.
Pure: bytes in, NamedTuples out; ValueError for anything malformed.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

OFFSET_KEY_VERSION = 1
GROUP_KEY_VERSION = 2
OFFSET_VALUE_VERSION = 3
GROUP_VALUE_VERSION = 3


class OffsetKey(NamedTuple):
    group: str
    topic: str
    partition: int


class GroupKey(NamedTuple):
    group: str


class OffsetValue(NamedTuple):
    offset: int
    leader_epoch: int  # -1: unknown
    metadata: str
    commit_timestamp_ms: int
    expire_timestamp_ms: int = -1  # only key v1 values carried one


class MemberValue(NamedTuple):
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


class GroupValue(NamedTuple):
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    state_timestamp_ms: int
    members: tuple[MemberValue, ...]


class FormatError(ValueError):
    """Bytes that are not a record of ``__consumer_offsets``."""


# -- writing -------------------------------------------------------------------


def _str(out: bytearray, s: str | None) -> None:
    if s is None:
        out += b"\xff\xff"
        return
    raw = s.encode()
    if len(raw) > 0x7FFF:
        raise ValueError(f"string of {len(raw)} bytes is too long for an int16 length")
    out += struct.pack(">h", len(raw)) + raw


def _bytes(out: bytearray, b: bytes | None) -> None:
    if b is None:
        out += b"\xff\xff\xff\xff"
        return
    out += struct.pack(">i", len(b)) + b


def offset_key(group: str, topic: str, partition: int) -> bytes:
    out = bytearray(struct.pack(">h", OFFSET_KEY_VERSION))
    _str(out, group)
    _str(out, topic)
    out += struct.pack(">i", partition)
    return bytes(out)


def group_key(group: str) -> bytes:
    out = bytearray(struct.pack(">h", GROUP_KEY_VERSION))
    _str(out, group)
    return bytes(out)


def offset_value(value: OffsetValue) -> bytes:
    out = bytearray(struct.pack(">hqi", OFFSET_VALUE_VERSION, value.offset, value.leader_epoch))
    _str(out, value.metadata)
    out += struct.pack(">q", value.commit_timestamp_ms)
    return bytes(out)


def group_value(value: GroupValue) -> bytes:
    out = bytearray(struct.pack(">h", GROUP_VALUE_VERSION))
    _str(out, value.protocol_type)
    out += struct.pack(">i", value.generation)
    _str(out, value.protocol)
    _str(out, value.leader)
    out += struct.pack(">qi", value.state_timestamp_ms, len(value.members))
    for m in value.members:
        _str(out, m.member_id)
        _str(out, m.group_instance_id)
        _str(out, m.client_id)
        _str(out, m.client_host)
        out += struct.pack(">ii", m.rebalance_timeout_ms, m.session_timeout_ms)
        _bytes(out, m.subscription)
        _bytes(out, m.assignment)
    return bytes(out)


# -- reading -------------------------------------------------------------------


class _Reader:
    """Kafka's classic (v0-v3) and flexible (v4) primitives over one buffer."""

    def __init__(self, data: bytes, flexible: bool = False) -> None:
        self.data = data
        self.pos = 0
        self.flexible = flexible

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError(f"record truncated at byte {self.pos} (wanted {n} more)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self._take(size))[0]

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            b = self._take(1)[0]
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7
            if shift > 28:
                raise FormatError("varint longer than 5 bytes")

    def string(self, nullable: bool = False) -> str | None:
        n = self.uvarint() - 1 if self.flexible else self.int(">h")
        if n == -1 and nullable:
            return None
        if n < 0:
            raise FormatError("null where a string is required")
        try:
            return self._take(n).decode()
        except UnicodeDecodeError as exc:
            raise FormatError(f"string is not UTF-8: {exc}") from None

    def blob(self) -> bytes:
        n = self.uvarint() - 1 if self.flexible else self.int(">i")
        if n < 0:
            return b""  # Kafka writes empty, never null, for these; be lenient reading
        return self._take(n)

    def array_len(self) -> int:
        n = self.uvarint() - 1 if self.flexible else self.int(">i")
        if n < 0 or n > len(self.data):
            raise FormatError(f"array of {n} entries in a {len(self.data)}-byte record")
        return n

    def skip_tags(self) -> None:
        if self.flexible:
            for _ in range(self.uvarint()):
                self.uvarint()
                self._take(self.uvarint())


def parse_key(key: bytes) -> OffsetKey | GroupKey:
    r = _Reader(key)
    version = r.int(">h")
    if version in (0, 1):
        return OffsetKey(r.string(), r.string(), r.int(">i"))  # type: ignore[arg-type]
    if version == 2:
        return GroupKey(r.string())  # type: ignore[arg-type]
    raise FormatError(f"unknown __consumer_offsets key version {version}")


def parse_offset_value(value: bytes) -> OffsetValue:
    version = _Reader(value).int(">h")
    if not 0 <= version <= 4:
        raise FormatError(f"unknown offset commit value version {version}")
    r = _Reader(value, flexible=version >= 4)
    r.pos = 2
    offset = r.int(">q")
    leader_epoch = r.int(">i") if version >= 3 else -1
    metadata = r.string()
    commit_ts = r.int(">q")
    expire_ts = r.int(">q") if version == 1 else -1
    r.skip_tags()
    return OffsetValue(offset, leader_epoch, metadata, commit_ts, expire_ts)  # type: ignore[arg-type]


def parse_group_value(value: bytes) -> GroupValue:
    version = _Reader(value).int(">h")
    if not 0 <= version <= 4:
        raise FormatError(f"unknown group metadata value version {version}")
    r = _Reader(value, flexible=version >= 4)
    r.pos = 2
    protocol_type = r.string()
    generation = r.int(">i")
    protocol = r.string(nullable=True)
    leader = r.string(nullable=True)
    state_ts = r.int(">q") if version >= 2 else -1
    members = []
    for _ in range(r.array_len()):
        member_id = r.string()
        instance_id = r.string(nullable=True) if version >= 3 else None
        client_id = r.string()
        client_host = r.string()
        rebalance_timeout = r.int(">i") if version >= 1 else -1
        session_timeout = r.int(">i")
        subscription = r.blob()
        assignment = r.blob()
        r.skip_tags()
        if rebalance_timeout == -1:
            rebalance_timeout = session_timeout  # v0 had one timeout for both
        members.append(MemberValue(member_id, instance_id, client_id, client_host,  # type: ignore[arg-type]
                                   rebalance_timeout, session_timeout, subscription, assignment))  # fmt: skip
    r.skip_tags()
    return GroupValue(protocol_type, generation, protocol, leader, state_ts, tuple(members))  # type: ignore[arg-type]
