"""One generic encoder/decoder, compiled from the message tables.

`compile(message, version)` walks the table once for that version and builds
closures: a list of (name, reader) and (name, default, writer) pairs per
struct, with the compact/classic and nullable choices already made. Encoding
and decoding then only run those lists: no version checks and no dispatch on
type names per field. Compiled plans are cached per (message, version).

Decoded messages are plain dicts keyed by the tables' snake_case names. Every
field of the table is present: fields not on the wire in that version (and
tagged fields that were not sent) hold their default, so handlers need not
branch on version to read them. Encoding takes the same dicts; a missing key
encodes its default; keys not in the table are ignored. Unknown tagged fields
are skipped on decode. `records` fields decode to memoryview slices of the
input (no copy); keep the input alive while they are used.
"""

from __future__ import annotations

from typing import Any, Callable

from . import primitives as p
from .errors import LocalProtocolError, RemoteProtocolError, UnsupportedApi
from .schema import Field, Message, in_range

_IMMUTABLE = (bool, int, float, str, bytes, type(None))


def _field_codec(fld: Field, version: int, flexible: bool) -> tuple[p.Reader, p.Writer]:
    nullable = in_range(fld.nullable, version)
    kind = fld.type
    if kind == "[]":
        elem = _struct_codec(fld.fields, version, flexible)
        return p.array_codec(*elem, compact=flexible, nullable=nullable)
    if kind == "{}":
        read, write = _struct_codec(fld.fields, version, flexible)
        return _nullable_struct(read, write) if nullable else (read, write)
    if kind.startswith("[]"):
        elem = _primitive(kind[2:], flexible, nullable=False)
        return p.array_codec(*elem, compact=flexible, nullable=nullable)
    return _primitive(kind, flexible, nullable)


def _primitive(kind: str, flexible: bool, nullable: bool) -> tuple[p.Reader, p.Writer]:
    if kind == "string":
        return p.string_codec(flexible, nullable)
    if kind in ("bytes", "records"):
        return p.bytes_codec(flexible, nullable, zero_copy=kind == "records")
    return p.FIXED[kind]


def _nullable_struct(read: p.Reader, write: p.Writer) -> tuple[p.Reader, p.Writer]:
    # A nullable struct is preceded by an int8 marker: -1 null, 1 present.
    def read_n(buf: memoryview, pos: int) -> tuple[Any, int]:
        marker, pos = p.read_int8(buf, pos)
        return (None, pos) if marker < 0 else read(buf, pos)

    def write_n(out: bytearray, value: Any) -> None:
        if value is None:
            out.append(0xFF)
        else:
            out.append(1)
            write(out, value)

    return read_n, write_n


def _struct_codec(fields: tuple[Field, ...], version: int, flexible: bool) -> tuple[p.Reader, p.Writer]:
    reads: list[tuple[str, p.Reader]] = []
    writes: list[tuple[str, Any, p.Writer]] = []
    tag_reads: dict[int, tuple[str, p.Reader]] = {}
    tag_writes: list[tuple[int, str, Any, p.Writer]] = []
    consts: dict[str, Any] = {}  # immutable defaults of fields not read inline
    factories: list[tuple[str, Callable[[], Any]]] = []  # mutable defaults
    for fld in fields:
        if not in_range(fld.versions, version):
            read = write = None
        else:
            read, write = _field_codec(fld, version, flexible)
        tagged = flexible and in_range(fld.tagged, version)
        if read is None or tagged:
            default = fld.default()
            if isinstance(default, _IMMUTABLE) or fld.type == "uuid":
                consts[fld.name] = default
            else:
                factories.append((fld.name, fld.default))
        if read is None:
            continue
        if tagged:
            assert fld.tag is not None, fld.name
            tag_reads[fld.tag] = (fld.name, read)
            tag_writes.append((fld.tag, fld.name, fld.default(), write))
        else:
            reads.append((fld.name, read))
            writes.append((fld.name, fld.default(), write))
    tag_writes.sort(key=lambda t: t[0])

    def read_struct(buf: memoryview, pos: int) -> tuple[dict, int]:
        d: dict[str, Any] = {}
        for name, read in reads:
            d[name], pos = read(buf, pos)
        if consts:
            d.update(consts)
        for name, make in factories:
            d[name] = make()
        if flexible:
            pos = p.read_tagged_fields(buf, pos, tag_reads, d)
        return d, pos

    def write_struct(out: bytearray, value: dict) -> None:
        get = value.get
        for name, default, write in writes:
            write(out, get(name, default))
        if flexible:
            present = []
            for tag, name, default, write in tag_writes:
                v = get(name, default)
                if v != default:  # a tagged field equal to its default is omitted
                    raw = bytearray()
                    write(raw, v)
                    present.append((tag, raw))
            p.write_tagged_fields(out, present)

    return read_struct, write_struct


_CACHE: dict[tuple[int, int], tuple[Message, p.Reader, p.Writer]] = {}


def compile(message: Message, version: int) -> tuple[p.Reader, p.Writer]:
    """The (reader, writer) pair for one message version, built once."""
    key = (id(message), version)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is message:
        return hit[1], hit[2]
    if not message.is_valid(version):
        raise UnsupportedApi(message.api_key, version)
    read, write = _struct_codec(message.fields, version, message.is_flexible(version))
    _CACHE[key] = (message, read, write)  # keeps `message` alive so its id stays unique
    return read, write


def encode_into(out: bytearray, message: Message, version: int, value: dict) -> None:
    try:
        _, write = compile(message, version)
    except UnsupportedApi:
        raise LocalProtocolError(f"{message.name} has no version {version}") from None
    try:
        write(out, value)
    except (AttributeError, TypeError) as exc:
        raise LocalProtocolError(f"cannot encode {message.name} v{version}: {exc}") from exc


def encode(message: Message, version: int, value: dict) -> bytes:
    out = bytearray()
    encode_into(out, message, version, value)
    return bytes(out)


def decode_from(message: Message, version: int, buf: memoryview, pos: int = 0) -> tuple[dict, int]:
    """Decode one body at `pos`; returns it and the position after it."""
    read, _ = compile(message, version)
    return read(buf, pos)


def decode(message: Message, version: int, data: bytes | memoryview) -> dict:
    """Decode a whole body; trailing bytes are a protocol violation."""
    buf = data if isinstance(data, memoryview) else memoryview(data)
    value, pos = decode_from(message, version, buf, 0)
    if pos != len(buf):
        raise RemoteProtocolError(f"{len(buf) - pos} trailing bytes after {message.name} v{version}")
    return value
