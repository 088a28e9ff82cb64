"""Pure-Python twins of the native functions: the reference semantics.

``native/riverlog_native.c`` must behave exactly like this module: the same
results, and an exception of the same type where this one raises. The
argument checks shared by both sides (``prepare_records`` and the index and
scan argument checks) live here and ``native.compiled`` calls them too.

Varints are Kafka's (``ByteUtils.readVarint`` / ``readVarlong``): zigzag, then
LEB128. A varint takes at most 5 bytes and a varlong at most 10; a longer or
unterminated one is an error. Like Kafka, bits beyond 32 (64) in the last
allowed byte are dropped rather than rejected, so ``ff ff ff ff 7f`` reads
as ``ff ff ff ff 0f`` (-2**31). The encoder always writes the shortest form.
"""

from __future__ import annotations

import mmap
import operator
import struct
from collections.abc import Sequence
from typing import TypeAlias

from riverlog.client.records.layout import BATCH_HEADER_BYTES, LAST_OFFSET_DELTA_OFFSET, LOG_OVERHEAD, MAGIC
from riverlog.client.records.layout import PARTITION_LEADER_EPOCH_OFFSET, header_struct
from riverlog.native.common import (
    RECORDS_BAD_HEADER_KEY,
    RECORDS_BAD_OFFSET_DELTA,
    RECORDS_MALFORMED,
    RECORDS_OK,
    RECORDS_TOO_FEW,
    RECORDS_TOO_MANY,
    SCAN_BAD_LENGTH,
    SCAN_BAD_MAGIC,
    SCAN_OK,
    SCAN_TRUNCATED,
    BatchInfo,
    RecordDecodeError,
)

INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
WARM_SECTION_BYTES = 8192  # Kafka's AbstractIndex warm section
_OFFSET_ENTRY = struct.Struct(">II")  # relative offset, position
_TIME_ENTRY = struct.Struct(">qI")  # timestamp, relative offset
_PREFIX = header_struct("base_offset", "batch_length")
_EPOCH_MAGIC = header_struct("partition_leader_epoch", "magic")
_FACTS = header_struct("last_offset_delta", "max_timestamp", "records_count")

Buffer: TypeAlias = bytes | bytearray | memoryview | mmap.mmap
Record: TypeAlias = tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]


def byte_view(buf: Buffer) -> memoryview:
    """A flat byte view of any contiguous buffer (so len() counts bytes).

    BufferError for a strided one, as cffi's from_buffer raises."""
    view = memoryview(buf)
    if not view.c_contiguous:
        raise BufferError("a contiguous buffer is needed")
    return view.cast("B")


# ---- scan_batches


def pin_buffer(buf: Buffer) -> memoryview:
    """A handle on ``buf`` for repeated index lookups (here: a byte view).

    Release it with ``unpin_buffer`` before the buffer is closed or resized.
    """
    return byte_view(buf)


def unpin_buffer(pinned: memoryview) -> None:
    pinned.release()


def check_scan_args(max_batches: int, max_batch_bytes: int) -> tuple[int, int]:
    max_batches, max_batch_bytes = operator.index(max_batches), operator.index(max_batch_bytes)
    if max_batches < 0 or max_batch_bytes < 0:
        raise ValueError("max_batches and max_batch_bytes must be >= 0")
    return max_batches, max_batch_bytes


def scan_batches(buf: Buffer, max_batches: int, max_batch_bytes: int) -> tuple[list[BatchInfo], int, int]:
    max_batches, max_batch_bytes = check_scan_args(max_batches, max_batch_bytes)
    infos: list[BatchInfo] = []
    pos = 0
    with byte_view(buf) as mv:
        size = len(mv)
        while len(infos) < max_batches and pos < size:
            if size - pos < LOG_OVERHEAD:
                return infos, pos, SCAN_TRUNCATED
            base_offset, batch_length = _PREFIX.unpack_from(mv, pos)
            total = batch_length + LOG_OVERHEAD
            # Length before truncation: a torn tail with an impossible length is corruption.
            if total < BATCH_HEADER_BYTES or total > max_batch_bytes:
                return infos, pos, SCAN_BAD_LENGTH
            if total > size - pos:  # total >= 61 so this also covers a missing magic byte
                return infos, pos, SCAN_TRUNCATED
            epoch, magic = _EPOCH_MAGIC.unpack_from(mv, pos + PARTITION_LEADER_EPOCH_OFFSET)
            if magic != MAGIC:
                return infos, pos, SCAN_BAD_MAGIC
            last_offset_delta, max_timestamp, records_count = _FACTS.unpack_from(mv, pos + LAST_OFFSET_DELTA_OFFSET)
            infos.append(
                BatchInfo(pos, total, base_offset, last_offset_delta, records_count, max_timestamp, epoch)
            )
            pos += total
    return infos, pos, SCAN_OK


# ---- index lookups


def check_index_args(buf: Buffer, entries: int, entry_bytes: int) -> int:
    entries = operator.index(entries)
    if entries < 0 or entries * entry_bytes > byte_view(buf).nbytes:
        raise ValueError(f"{entries} entries of {entry_bytes} bytes do not fit the index buffer")
    return entries


def _largest_le(mv: memoryview, entry: struct.Struct, lo: int, hi: int, target: int) -> int:
    """Largest slot in [lo, hi] whose key is <= target, given that slot lo's is."""
    while lo < hi:
        mid = lo + (hi - lo + 1) // 2
        if entry.unpack_from(mv, mid * entry.size)[0] <= target:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _index_lookup(buf: Buffer, entries: int, target: int, entry: struct.Struct) -> int:
    """Kafka's AbstractIndex search: the warm section (the last 8 KiB of
    entries) first when the target is at or past it, so lookups near the end,
    the common ones, touch only pages that are likely resident. Unlike Kafka's,
    equal keys do not end the search: the largest such slot wins, as time
    indexes may repeat a timestamp."""
    entries = check_index_args(buf, entries, entry.size)
    target = operator.index(target)
    if entries == 0:
        return -1
    first_warm = max(0, entries - 1 - WARM_SECTION_BYTES // entry.size)
    with byte_view(buf) as mv:
        if entry.unpack_from(mv, first_warm * entry.size)[0] <= target:
            return _largest_le(mv, entry, first_warm, entries - 1, target)
        if entry.unpack_from(mv, 0)[0] > target:
            return -1
        return _largest_le(mv, entry, 0, first_warm, target)


def offset_index_lookup(buf: Buffer, entries: int, target: int) -> int:
    return _index_lookup(buf, entries, target, _OFFSET_ENTRY)


def time_index_lookup(buf: Buffer, entries: int, target: int) -> int:
    return _index_lookup(buf, entries, target, _TIME_ENTRY)


# ---- varints


def write_varint(out: bytearray, value: int) -> None:
    """Zigzag + LEB128 of a value in int64 range (varint and varlong alike)."""
    raw = (value << 1) ^ (value >> 63)  # Python ints: >> is arithmetic, so this is zigzag
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)


def read_varint(mv: memoryview, pos: int, end: int, bits: int = 32) -> tuple[int, int]:
    """Reads a varint (bits=32) or varlong (bits=64) from mv[pos:end]: (value, new pos)."""
    max_bytes = (bits + 6) // 7  # 5 or 10
    raw = 0
    for i in range(max_bytes):
        if pos >= end:
            break
        b = mv[pos]
        pos += 1
        raw |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            raw &= (1 << bits) - 1  # as Kafka: what does not fit is dropped
            return (raw >> 1) ^ -(raw & 1), pos
    raise RecordDecodeError(f"varint unterminated or longer than {max_bytes} bytes before {pos}")


# ---- encode_records


def _as_bytes(obj: object, what: str) -> bytes | None:
    if obj is None or isinstance(obj, bytes):
        return obj
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    raise TypeError(f"{what} must be bytes-like or None, not {type(obj).__name__}")


def _header_key(key: object) -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8")
    raw = _as_bytes(key, "header key")
    if raw is None:
        raise TypeError("a header key is never None")
    raw.decode("utf-8")  # UnicodeDecodeError (a ValueError): it would never decode
    return raw


def prepare_records(
    timestamp_deltas: Sequence[int],
    keys: Sequence[object],
    values: Sequence[object],
    headers: Sequence[Sequence[tuple[object, object]]],
) -> list[tuple[int, bytes | None, bytes | None, list[tuple[bytes, bytes | None]]]]:
    """Checks and normalises encode_records' arguments (shared with compiled)."""
    count = len(timestamp_deltas)
    if not len(keys) == len(values) == len(headers) == count:
        raise ValueError("timestamp_deltas, keys, values and headers differ in length")
    records = []
    for ts, key, value, pairs in zip(timestamp_deltas, keys, values, headers):
        ts = operator.index(ts)
        if not INT64_MIN <= ts <= INT64_MAX:
            raise ValueError(f"timestamp delta {ts} is outside int64")
        hdrs = [(_header_key(k), _as_bytes(v, "header value")) for k, v in pairs]
        records.append((ts, _as_bytes(key, "key"), _as_bytes(value, "value"), hdrs))
    return records


def _write_field(out: bytearray, data: bytes | None) -> None:
    if data is None:
        write_varint(out, -1)
    else:
        write_varint(out, len(data))
        out += data


def encode_records(
    timestamp_deltas: Sequence[int],
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    headers: Sequence[Sequence[tuple[str | bytes, bytes | None]]],
) -> bytes:
    out = bytearray()
    for offset_delta, (ts, key, value, hdrs) in enumerate(prepare_records(timestamp_deltas, keys, values, headers)):
        body = bytearray(b"\x00")  # attributes: unused
        write_varint(body, ts)
        write_varint(body, offset_delta)
        _write_field(body, key)
        _write_field(body, value)
        write_varint(body, len(hdrs))
        for hkey, hvalue in hdrs:
            _write_field(body, hkey)
            _write_field(body, hvalue)
        if len(body) > INT32_MAX:
            raise ValueError(f"record {offset_delta} is over {INT32_MAX} bytes")
        write_varint(out, len(body))
        out += body
    return bytes(out)


# ---- decode_records


def _read_field(mv: memoryview, pos: int, end: int) -> tuple[bytes | None, int]:
    length, pos = read_varint(mv, pos, end)
    if length < -1 or length > end - pos:
        raise RecordDecodeError(f"field length {length} at {pos} does not fit its record")
    if length == -1:
        return None, pos
    return bytes(mv[pos : pos + length]), pos + length


def decode_records(buf: Buffer, count: int) -> list[Record]:
    count = operator.index(count)
    if count < 0:
        raise RecordDecodeError(f"negative record count {count}")
    records: list[Record] = []
    pos = 0
    with byte_view(buf) as mv:
        size = len(mv)
        for _ in range(count):
            length, pos = read_varint(mv, pos, size)
            if length < 0 or length > size - pos:
                raise RecordDecodeError(f"record length {length} at {pos} does not fit the buffer")
            end = pos + length
            if pos == end:
                raise RecordDecodeError(f"empty record at {pos}")
            pos += 1  # attributes: unused by v2 records
            timestamp_delta, pos = read_varint(mv, pos, end, bits=64)
            offset_delta, pos = read_varint(mv, pos, end)
            key, pos = _read_field(mv, pos, end)
            value, pos = _read_field(mv, pos, end)
            header_count, pos = read_varint(mv, pos, end)
            if header_count < 0:
                raise RecordDecodeError(f"negative header count {header_count}")
            headers = []
            for _ in range(header_count):
                hkey, pos = _read_field(mv, pos, end)
                if hkey is None:
                    raise RecordDecodeError("null header key")
                try:
                    name = hkey.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise RecordDecodeError(f"header key is not UTF-8: {exc}") from None
                hvalue, pos = _read_field(mv, pos, end)
                headers.append((name, hvalue))
            if pos != end:
                raise RecordDecodeError(f"record fields end at {pos}, its length says {end}")
            records.append((offset_delta, timestamp_delta, key, value, headers))
        if pos != size:
            raise RecordDecodeError(f"{size - pos} bytes left after {count} records")
    return records


# ---- check_records


def check_records_count(count: int) -> int:
    count = operator.index(count)
    if count < 0:
        raise ValueError(f"negative record count {count}")
    return count


def _field_end(mv: memoryview, pos: int, end: int) -> tuple[int, int]:
    """(length, position after the field) of a length-prefixed field."""
    length, pos = read_varint(mv, pos, end)
    if length < -1 or length > end - pos:
        raise RecordDecodeError(f"field length {length} at {pos} does not fit its record")
    return length, pos + max(length, 0)


def check_records(buf: Buffer, count: int) -> tuple[int, int]:
    """Walks a whole (uncompressed) records area of ``count`` records, keeping
    nothing: (RECORDS_OK, count), or (the first fault, the index of the record
    where it was found; count for RECORDS_TOO_MANY).

    The checks are decode_records' plus what Kafka's broker refuses on top:
    offset deltas 0, 1, ... in order. Header keys must be UTF-8: consumers
    that decode them as text (kafka-python, riverlog's) stop at one that is
    not, and the point of the walk is that no batch can stop a consumer.
    """
    count = check_records_count(count)
    pos = 0
    with byte_view(buf) as mv:
        size = len(mv)
        for i in range(count):
            if pos == size:
                return RECORDS_TOO_FEW, i
            try:
                body, pos = read_varint(mv, pos, size)
                if body <= 0 or body > size - pos:
                    return RECORDS_MALFORMED, i
                end = pos + body
                _, pos = read_varint(mv, pos + 1, end, bits=64)  # past attributes, the timestamp delta
                offset_delta, pos = read_varint(mv, pos, end)
                if offset_delta != i:
                    return RECORDS_BAD_OFFSET_DELTA, i
                _, pos = _field_end(mv, pos, end)  # key
                _, pos = _field_end(mv, pos, end)  # value
                header_count, pos = read_varint(mv, pos, end)
                if header_count < 0 or header_count > (end - pos) // 2:  # a header takes 2 bytes at least
                    return RECORDS_MALFORMED, i
                for _ in range(header_count):
                    key_len, key_end = _field_end(mv, pos, end)
                    if key_len < 0:
                        return RECORDS_BAD_HEADER_KEY, i
                    try:
                        str(mv[key_end - key_len : key_end], "utf-8")
                    except UnicodeDecodeError:
                        return RECORDS_BAD_HEADER_KEY, i
                    _, pos = _field_end(mv, key_end, end)  # value
            except RecordDecodeError:
                return RECORDS_MALFORMED, i
            if pos != end:  # fields must fill the declared length exactly
                return RECORDS_MALFORMED, i
        return (RECORDS_OK if pos == size else RECORDS_TOO_MANY), count
