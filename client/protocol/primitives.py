"""Readers and writers for the Kafka wire primitives (the protocol guide's types).

Readers take `(buf, pos)` with `buf` a memoryview and return `(value, pos)`;
writers append to a bytearray. Every length read from the wire is checked
against the bytes that remain *before* anything is sliced or allocated, so a
hostile count of 2**31 fails at once. Readers raise only RemoteProtocolError
(the peer's bytes are bad); writers raise LocalProtocolError (our value cannot
be expressed).
"""

from __future__ import annotations

import struct
import uuid
from typing import Any, Callable

from .errors import LocalProtocolError, RemoteProtocolError

Reader = Callable[[memoryview, int], tuple[Any, int]]
Writer = Callable[[bytearray, Any], None]

ZERO_UUID = uuid.UUID(int=0)


class Truncated(RemoteProtocolError):
    """The input ended inside a value."""


def _fixed(fmt: str) -> tuple[Reader, Writer, int]:
    s = struct.Struct(">" + fmt)
    unpack, pack, size = s.unpack_from, s.pack, s.size

    def read(buf: memoryview, pos: int) -> tuple[Any, int]:
        if pos + size > len(buf):
            raise Truncated(f"need {size} bytes at {pos}, have {len(buf) - pos}")
        return unpack(buf, pos)[0], pos + size

    def write(out: bytearray, value: Any) -> None:
        try:
            out += pack(value)
        except (struct.error, TypeError) as exc:
            raise LocalProtocolError(f"cannot encode {value!r} as {fmt}: {exc}") from None

    return read, write, size


read_int8, write_int8, _ = _fixed("b")
read_int16, write_int16, _ = _fixed("h")
read_int32, write_int32, _ = _fixed("i")
read_int64, write_int64, _ = _fixed("q")
read_uint16, write_uint16, _ = _fixed("H")
read_uint32, write_uint32, _ = _fixed("I")
read_float64, write_float64, _ = _fixed("d")
_read_u8, _, _ = _fixed("B")


def read_bool(buf: memoryview, pos: int) -> tuple[bool, int]:
    # Kafka reads any non-zero byte as true.
    value, pos = _read_u8(buf, pos)
    return value != 0, pos


def write_bool(out: bytearray, value: Any) -> None:
    out.append(1 if value else 0)


def _read_uvarint(buf: memoryview, pos: int, max_bytes: int) -> tuple[int, int]:
    # LEB128; max_bytes bounds the loop so a run of 0x80 bytes cannot spin.
    result = shift = 0
    end = len(buf)
    for _ in range(max_bytes):
        if pos >= end:
            raise Truncated("input ended inside a varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise RemoteProtocolError(f"varint longer than {max_bytes} bytes")


def read_uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Unsigned 32-bit varint: compact lengths, counts and tag headers."""
    value, pos = _read_uvarint(buf, pos, 5)
    if value > 0xFFFFFFFF:
        raise RemoteProtocolError("unsigned varint above 2**32-1")
    return value, pos


def write_uvarint(out: bytearray, value: int) -> None:
    if value < 0 or value > 0xFFFFFFFF:
        raise LocalProtocolError(f"unsigned varint out of range: {value}")
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Zigzag signed 32-bit varint (record fields)."""
    raw, pos = _read_uvarint(buf, pos, 5)
    if raw > 0xFFFFFFFF:
        raise RemoteProtocolError("varint above 32 bits")
    return (raw >> 1) ^ -(raw & 1), pos


def write_varint(out: bytearray, value: int) -> None:
    if not -(2**31) <= value < 2**31:
        raise LocalProtocolError(f"varint out of range: {value}")
    write_uvarint(out, ((value << 1) ^ (value >> 31)) & 0xFFFFFFFF)


def read_varlong(buf: memoryview, pos: int) -> tuple[int, int]:
    """Zigzag signed 64-bit varint."""
    raw, pos = _read_uvarint(buf, pos, 10)
    if raw >= 2**64:
        raise RemoteProtocolError("varlong above 64 bits")
    return (raw >> 1) ^ -(raw & 1), pos


def write_varlong(out: bytearray, value: int) -> None:
    if not -(2**63) <= value < 2**63:
        raise LocalProtocolError(f"varlong out of range: {value}")
    raw = ((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF
    while raw > 0x7F:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)


def read_uuid(buf: memoryview, pos: int) -> tuple[uuid.UUID, int]:
    if pos + 16 > len(buf):
        raise Truncated("input ended inside a uuid")
    return uuid.UUID(bytes=bytes(buf[pos : pos + 16])), pos + 16


def write_uuid(out: bytearray, value: uuid.UUID) -> None:
    if not isinstance(value, uuid.UUID):
        raise LocalProtocolError(f"not a uuid: {value!r}")
    out += value.bytes


# --- length-prefixed values -------------------------------------------------
# A length reader returns the length, or -1 for null. Classic forms use int16
# (strings) or int32 (bytes, arrays); compact forms use uvarint(length + 1).


def _classic_len(read_n: Reader) -> Reader:
    def read(buf: memoryview, pos: int) -> tuple[int, int]:
        n, pos = read_n(buf, pos)
        if n < -1:
            raise RemoteProtocolError(f"negative length {n}")
        return n, pos

    return read


read_len16 = _classic_len(read_int16)
read_len32 = _classic_len(read_int32)


def read_compact_len(buf: memoryview, pos: int) -> tuple[int, int]:
    n, pos = read_uvarint(buf, pos)
    return n - 1, pos


def write_compact_len(out: bytearray, n: int) -> None:
    write_uvarint(out, n + 1)


def _null_check(n: int, nullable: bool) -> None:
    if n == -1 and not nullable:
        raise RemoteProtocolError("null where the field is not nullable")


def _take(buf: memoryview, pos: int, n: int) -> memoryview:
    if n > len(buf) - pos:
        raise Truncated(f"length {n} exceeds the {len(buf) - pos} bytes left")
    return buf[pos : pos + n]


def string_codec(compact: bool, nullable: bool) -> tuple[Reader, Writer]:
    """Reader and writer of a UTF-8 string in the given form."""
    read_len = read_compact_len if compact else read_len16
    write_len = write_compact_len if compact else write_int16
    limit = 0xFFFFFFFE if compact else 0x7FFF

    def read(buf: memoryview, pos: int) -> tuple[str | None, int]:
        n, pos = read_len(buf, pos)
        if n == -1:
            _null_check(n, nullable)
            return None, pos
        raw = _take(buf, pos, n)
        try:
            return str(raw, "utf-8"), pos + n
        except UnicodeDecodeError:
            raise RemoteProtocolError("string is not valid UTF-8") from None

    def write(out: bytearray, value: str | None) -> None:
        if value is None:
            if not nullable:
                raise LocalProtocolError("null string where the field is not nullable")
            write_len(out, -1)
            return
        try:
            raw = value.encode("utf-8")
        except (AttributeError, UnicodeEncodeError) as exc:
            raise LocalProtocolError(f"cannot encode string {value!r}: {exc}") from None
        if len(raw) > limit:
            raise LocalProtocolError(f"string of {len(raw)} bytes is too long")
        write_len(out, len(raw))
        out += raw

    return read, write


class SegmentedBuffer(bytearray):
    """An encode buffer that may leave holes for bytes sent by other means.

    A ``records`` value that is not bytes-like (a broker's file slice, say)
    is written as its length only and listed in ``deferred`` as (position in
    this buffer, value): the sender writes the buffer up to that position,
    then the value's ``len(value)`` bytes (with ``os.sendfile``), and so on.
    """

    def __init__(self) -> None:
        super().__init__()
        self.deferred: list[tuple[int, Any]] = []

    @property
    def total_length(self) -> int:
        return len(self) + sum(len(v) for _, v in self.deferred)


_BYTES_LIKE = (bytes, bytearray, memoryview)


def bytes_codec(compact: bool, nullable: bool, zero_copy: bool = False) -> tuple[Reader, Writer]:
    """Bytes (or records, with zero_copy: a memoryview slice, not a copy; and
    on encode, a deferred value into a SegmentedBuffer)."""
    read_len = read_compact_len if compact else read_len32
    write_len = write_compact_len if compact else write_int32

    def read(buf: memoryview, pos: int) -> tuple[Any, int]:
        n, pos = read_len(buf, pos)
        if n == -1:
            _null_check(n, nullable)
            return None, pos
        raw = _take(buf, pos, n)
        return (raw if zero_copy else bytes(raw)), pos + n

    def write(out: bytearray, value: Any) -> None:
        if value is None:
            if not nullable:
                raise LocalProtocolError("null bytes where the field is not nullable")
            write_len(out, -1)
            return
        if len(value) > 0x7FFFFFFF:
            raise LocalProtocolError("bytes value too long")
        write_len(out, len(value))
        if zero_copy and not isinstance(value, _BYTES_LIKE):
            if not isinstance(out, SegmentedBuffer):
                raise LocalProtocolError("a deferred records value needs a SegmentedBuffer")
            out.deferred.append((len(out), value))
            return
        out += value

    return read, write


def array_codec(
    read_elem: Reader, write_elem: Writer, compact: bool, nullable: bool
) -> tuple[Reader, Writer]:
    """Arrays of any element. Every element type we use takes at least one
    byte, so a count above the bytes left is refused before the loop."""
    read_len = read_compact_len if compact else read_len32
    write_len = write_compact_len if compact else write_int32

    def read(buf: memoryview, pos: int) -> tuple[list | None, int]:
        n, pos = read_len(buf, pos)
        if n == -1:
            _null_check(n, nullable)
            return None, pos
        if n > len(buf) - pos:
            raise Truncated(f"array count {n} exceeds the {len(buf) - pos} bytes left")
        items = []
        append = items.append
        for _ in range(n):
            item, pos = read_elem(buf, pos)
            append(item)
        return items, pos

    def write(out: bytearray, value: list | None) -> None:
        if value is None:
            if not nullable:
                raise LocalProtocolError("null array where the field is not nullable")
            write_len(out, -1)
            return
        write_len(out, len(value))
        for item in value:
            write_elem(out, item)

    return read, write


def read_tagged_fields(
    buf: memoryview, pos: int, known: dict[int, tuple[str, Reader]], into: dict
) -> int:
    """Read a tagged-field section; known tags go into `into`, others are skipped."""
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        body = _take(buf, pos, size)
        entry = known.get(tag)
        if entry is not None:
            name, read = entry
            into[name], used = read(body, 0)
            if used != size:
                raise RemoteProtocolError(f"tagged field {tag} has {size - used} stray bytes")
        pos += size
    return pos


def write_tagged_fields(out: bytearray, fields: list[tuple[int, bytes]]) -> None:
    """Write (tag, encoded value) pairs; the caller passes them in tag order."""
    write_uvarint(out, len(fields))
    for tag, raw in fields:
        write_uvarint(out, tag)
        write_uvarint(out, len(raw))
        out += raw


FIXED: dict[str, tuple[Reader, Writer]] = {
    "bool": (read_bool, write_bool),
    "int8": (read_int8, write_int8),
    "int16": (read_int16, write_int16),
    "int32": (read_int32, write_int32),
    "int64": (read_int64, write_int64),
    "uint16": (read_uint16, write_uint16),
    "uint32": (read_uint32, write_uint32),
    "float64": (read_float64, write_float64),
    "uuid": (read_uuid, write_uuid),
}
