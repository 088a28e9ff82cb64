"""Building one record batch v2 from records, as a producer sends it.

Layout as in :mod:`client.records.layout`: the records get offset deltas
0..n-1 (lastOffsetDelta n-1), baseTimestamp is the first record's timestamp
(as Kafka's MemoryRecordsBuilder sets it) unless given, maxTimestamp is the
largest; the records area is encoded by native.encode_records, compressed as
one stream, and the CRC-32C computed last over bytes [21, end).

The log cleaner rebuilds compacted batches with gaps in the offset deltas and
the original lastOffsetDelta (Kafka's overrideLastOffset, which keeps the
producer's last sequence): ``offset_deltas`` and ``last_offset_delta``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import crc32c

from riverlog import native
from riverlog.client.records.compression import compress
from riverlog.client.records.layout import (
    ATTR_CONTROL,
    ATTR_TIMESTAMP_TYPE,
    ATTR_TRANSACTIONAL,
    HEAD_STRUCT,
    INT32_MAX,
    MAGIC,
    MAX_BATCH_LENGTH,
    MIN_BATCH_LENGTH,
    NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    TAIL_STRUCT,
    Compression,
    TimestampType,
)

_BYTES_LIKE = (bytes, bytearray, memoryview)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class NewRecord(NamedTuple):
    """A record to build into a batch. Plain 4-tuples in this order work too.

    ``key``/``value``: bytes-like or None (null). ``timestamp``: epoch ms
    (int). ``headers``: a sequence of (str key, bytes-like or None value).
    """

    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: Sequence[tuple[str, bytes | None]] = ()


def build_batch(
    records: Iterable[NewRecord | tuple],
    *,
    compression: Compression | int = Compression.NONE,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    is_transactional: bool = False,
    is_control: bool = False,
    timestamp_type: TimestampType | int = TimestampType.CREATE_TIME,
    base_timestamp: int | None = None,
    compression_level: int | None = None,
    offset_deltas: Sequence[int] | None = None,
    last_offset_delta: int | None = None,
) -> bytes:
    """Return the bytes of one batch holding ``records`` in order.

    ``offset_deltas`` (default 0..n-1) must be increasing from >= 0;
    ``last_offset_delta`` defaults to the last of them and may be larger.
    Raises ValueError for no records or a field out of its range, TypeError
    for a key, value, header or timestamp of the wrong type. Policy (say,
    transactional batches needing a producer id) is the producer's business,
    not checked here, so tests can build unusual batches.
    """
    codec = Compression(compression)
    ts_type = TimestampType(timestamp_type)
    keys: list = []
    values: list = []
    headers: list = []
    timestamps: list[int] = []
    for key, value, timestamp, hdrs in records:
        keys.append(_nullable_bytes(key, "key"))
        values.append(_nullable_bytes(value, "value"))
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            raise TypeError(f"record timestamp must be an int (epoch ms), got {timestamp!r}")
        timestamps.append(timestamp)
        headers.append(_headers(hdrs))
    return build_batch_columns(
        timestamps, keys, values, headers,
        compression=codec, base_offset=base_offset, partition_leader_epoch=partition_leader_epoch,
        producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence,
        is_transactional=is_transactional, is_control=is_control, timestamp_type=ts_type,
        base_timestamp=base_timestamp, compression_level=compression_level,
        offset_deltas=offset_deltas, last_offset_delta=last_offset_delta,
    )  # fmt: skip


def build_batch_columns(
    timestamps: Sequence[int],
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    headers: Sequence[Sequence[tuple[str, bytes | None]]],
    *,
    compression: Compression | int = Compression.NONE,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    is_transactional: bool = False,
    is_control: bool = False,
    timestamp_type: TimestampType | int = TimestampType.CREATE_TIME,
    base_timestamp: int | None = None,
    compression_level: int | None = None,
    offset_deltas: Sequence[int] | None = None,
    last_offset_delta: int | None = None,
) -> bytes:
    """`build_batch` for records already split into columns, as a producer's
    accumulator keeps them; the types are checked by the native encoder
    (TypeError for a key or value that is not bytes-like)."""
    codec = Compression(compression)
    ts_type = TimestampType(timestamp_type)
    if not timestamps:
        raise ValueError("a record batch needs at least one record")

    base_ts = timestamps[0] if base_timestamp is None else base_timestamp
    n = len(timestamps)
    area = _plain_area(timestamps, base_ts, keys, values, headers) if offset_deltas is None else None
    if area is not None:
        offset_deltas = range(n)
    else:
        deltas = [t - base_ts for t in timestamps]
        if min(deltas) < _INT64_MIN or max(deltas) > _INT64_MAX:
            raise ValueError("record timestamps too far from base_timestamp for an int64 delta")
        if offset_deltas is None or list(offset_deltas) == list(range(n)):
            area = native.encode_records(deltas, keys, values, headers)
            offset_deltas = range(n)
        else:
            offset_deltas = _checked_offset_deltas(offset_deltas, n)
            area = b"".join(map(_encode_one, deltas, keys, values, headers, offset_deltas))
    if last_offset_delta is None:
        last_offset_delta = offset_deltas[-1]
    elif last_offset_delta < offset_deltas[-1]:
        raise ValueError(f"last_offset_delta {last_offset_delta} is below the last record's {offset_deltas[-1]}")
    payload = compress(codec, area, compression_level)  # NONE: a copy; refuses a level

    attributes = int(codec)
    if ts_type is TimestampType.LOG_APPEND_TIME:
        attributes |= ATTR_TIMESTAMP_TYPE
    if is_transactional:
        attributes |= ATTR_TRANSACTIONAL
    if is_control:
        attributes |= ATTR_CONTROL
    batch_length = MIN_BATCH_LENGTH + len(payload)
    if batch_length > MAX_BATCH_LENGTH:
        raise ValueError(f"batch of {batch_length} bytes does not fit an int32 batchLength")
    try:
        tail = TAIL_STRUCT.pack(
            attributes, last_offset_delta, base_ts, max(timestamps),
            producer_id, producer_epoch, base_sequence, n,
        )  # fmt: skip
        crc = crc32c.crc32c(payload, crc32c.crc32c(tail))
        head = HEAD_STRUCT.pack(base_offset, batch_length, partition_leader_epoch, MAGIC, crc)
    except struct.error as e:
        raise ValueError(f"record batch header field out of range: {e}") from None
    return b"".join((head, tail, payload))


def _plain_area(timestamps, base_ts, keys, values, headers) -> bytes | None:
    """A producer's batch without headers (lists of int timestamps and of
    bytes-or-None keys and values), encoded from its lists in C
    (native/py_records.c); None for anything else or without the extension,
    for the general path, which raises for what is wrong."""
    if (native.plain_records is None or not type(timestamps) is type(keys) is type(values) is list
            or type(base_ts) is not int or not _INT64_MIN <= base_ts <= _INT64_MAX or any(headers)):  # fmt: skip
        return None
    return native.plain_records(timestamps, base_ts, keys, values)


def _nullable_bytes(b, what: str):
    if b is None or isinstance(b, _BYTES_LIKE):
        return b
    raise TypeError(f"record {what} must be bytes-like or None, got {type(b).__name__}")


def _headers(hdrs) -> list[tuple[str, bytes | None]]:
    out = []
    for hkey, hvalue in hdrs:
        if not isinstance(hkey, str):
            raise TypeError(f"header key must be str, got {type(hkey).__name__}")
        out.append((hkey, _nullable_bytes(hvalue, "header value")))
    return out


def _checked_offset_deltas(offset_deltas: Sequence[int], n: int) -> list[int]:
    out = list(offset_deltas)
    if len(out) != n:
        raise ValueError(f"{len(out)} offset deltas for {n} records")
    if out[0] < 0 or out[-1] > INT32_MAX or any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError("offset deltas must increase from >= 0 within int32")
    return out


def _encode_one(ts_delta: int, key, value, headers, offset_delta: int) -> bytes:
    """One record with any offset delta. native.encode_records numbers record
    i with delta i, so the record is encoded alone (delta 0: the single byte
    0x00 right after its timestampDelta), that byte is swapped for the wanted
    delta and the length prefix redone. Only the log cleaner comes here."""
    one = native.encode_records([ts_delta], [key], [value], [headers])
    length, pos = _read_varint(one, 0)
    ts_end = _read_varint(one, pos + 1)[1]  # past attributes and timestampDelta
    assert one[ts_end] == 0 and pos + length == len(one)
    body = one[pos:ts_end] + _varint(offset_delta) + one[ts_end + 1 :]
    return _varint(len(body)) + body


def _varint(n: int) -> bytes:
    """Kafka's varint: zigzag, then LEB128."""
    raw, out = (n << 1) ^ (n >> 63), bytearray()
    while raw >= 0x80:
        out.append(raw & 0x7F | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    raw = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        raw |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
