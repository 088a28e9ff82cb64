"""Batch compression codecs: gzip, snappy, lz4, zstd as Kafka frames them.

A compressed batch holds one compressed stream of its whole records area.
The stream formats are the ones the Java client and librdkafka write:

- gzip: a gzip stream (RFC 1952), from the standard library's zlib.
- snappy: xerial framing, a 16-byte header ``b"\\x82SNAPPY\\x00"``, int32
  version 1, int32 min-compatible version 1, then blocks of int32 BE length
  + a raw snappy block, each block compressing up to 32 KiB of input. Raw
  snappy without the framing is accepted on read (librdkafka can send it).
- lz4: the LZ4 frame format with independent blocks (Kafka's reader refuses
  linked blocks).
- zstd: zstd frames, with or without a content size (the Java client streams
  and leaves it out).

Everything but gzip and the xerial container goes through ``cramjam``.

Decompression is bounded by ``max_output_bytes`` because the input comes
from the network: a few KiB of zstd can expand to gigabytes. Per codec:

- gzip: ``zlib.decompressobj().decompress(data, max_length)`` stops at the
  bound.
- snappy: each raw block states its uncompressed length up front; it is
  checked against the bound before anything is allocated.
- lz4, zstd: decompressed into a fixed buffer, which cramjam fills as a
  stream and refuses to overrun. The buffer starts at the frame's declared
  content size when the header has one, else at a guess, and doubles on
  overrun up to the bound. Memory stays within ``max_output_bytes`` (plus the
  previous, freed buffer while growing).

Over the bound, or on any malformed stream, decompress raises
:class:`CorruptRecordError` (over the bound: its subclass
:class:`DecompressedTooLargeError`).
"""

from __future__ import annotations

import struct
import zlib

import cramjam

from client.records.errors import CorruptRecordError, DecompressedTooLargeError
from client.records.layout import Compression

DEFAULT_MAX_OUTPUT_BYTES = 256 * 1024 * 1024

XERIAL_MAGIC = b"\x82SNAPPY\x00"
XERIAL_HEADER = XERIAL_MAGIC + struct.pack(">ii", 1, 1)  # version 1, min compatible 1
XERIAL_BLOCK_BYTES = 32 * 1024  # uncompressed bytes per block, as the Java client writes

# Default levels are Kafka's (compression.<codec>.level); ranges are Kafka's too.
_DEFAULT_LEVEL = {Compression.GZIP: 6, Compression.LZ4: 9, Compression.ZSTD: 3}
_LEVEL_RANGE = {Compression.GZIP: (1, 9), Compression.LZ4: (1, 17), Compression.ZSTD: (-131072, 22)}

_INITIAL_GUESS_BYTES = 64 * 1024
_INITIAL_GUESS_RATIO = 8
# cramjam's message when decompress_into runs out of output buffer (the
# io::ErrorKind::WriteZero text). Only this error makes the buffer grow;
# anything else is corrupt input. tests/records pin it against the version.
_OVERRUN_MESSAGE = "failed to write whole buffer"

_BE_I32 = struct.Struct(">i")


def compress(codec: int, data: bytes, level: int | None = None) -> bytes:
    """Compress ``data`` (a bytes-like records area) with ``codec``.

    ``level`` None means Kafka's default for the codec; snappy and NONE take
    no level. Raises ValueError for an unknown codec or a level out of range.
    """
    codec = Compression(codec)
    if codec in (Compression.NONE, Compression.SNAPPY):
        if level is not None:
            raise ValueError(f"{codec.name} takes no compression level, got {level}")
        return bytes(data) if codec is Compression.NONE else _xerial_compress(data)
    if level is None:
        level = _DEFAULT_LEVEL[codec]
    lo, hi = _LEVEL_RANGE[codec]
    if not lo <= level <= hi:
        raise ValueError(f"{codec.name} level must be in [{lo}, {hi}], got {level}")
    if codec is Compression.GZIP:
        # mtime 0: the same records compress to the same bytes.
        c = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return c.compress(data) + c.flush()
    if codec is Compression.LZ4:
        c = cramjam.lz4.Compressor(level=level, content_checksum=False, block_linked=False)
        c.compress(data)
        return bytes(c.finish())
    return bytes(cramjam.zstd.compress(data, level=level))


def decompress(
    codec: int, data: bytes, max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
) -> bytes:
    """Decompress one batch's records stream, refusing to produce more than
    ``max_output_bytes``. Raises CorruptRecordError on an unknown codec, a
    malformed stream or output over the bound."""
    try:
        codec = Compression(codec)
    except ValueError:
        raise CorruptRecordError(f"unknown compression codec id {codec}") from None
    if codec is Compression.NONE:
        _check_bound(len(data), max_output_bytes)
        return bytes(data)
    if codec is Compression.GZIP:
        return _gunzip(data, max_output_bytes)
    if codec is Compression.SNAPPY:
        return _snappy_decompress(data, max_output_bytes)
    if codec is Compression.LZ4:
        return _decompress_into(cramjam.lz4.decompress_into, "lz4", data, max_output_bytes, _lz4_content_size(data))
    return _decompress_into(cramjam.zstd.decompress_into, "zstd", data, max_output_bytes, _zstd_content_size(data))


def _check_bound(n: int, max_output_bytes: int) -> None:
    if n > max_output_bytes:
        raise DecompressedTooLargeError(f"decompressed records exceed max_output_bytes ({max_output_bytes})")


def _gunzip(data: bytes, max_output_bytes: int) -> bytes:
    out: list[bytes] = []
    total = 0
    rest = data
    while True:  # one pass per gzip member; a stream may concatenate several
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            # max_length is never 0 here (0 would mean unbounded): total <= bound.
            chunk = d.decompress(rest, max_output_bytes - total + 1)
        except zlib.error as e:
            raise CorruptRecordError(f"gzip: {e}") from None
        total += len(chunk)
        _check_bound(total, max_output_bytes)
        out.append(chunk)
        if not d.eof:
            raise CorruptRecordError("gzip: truncated stream")
        rest = d.unused_data
        if not rest:
            return b"".join(out)


def _xerial_compress(data: bytes) -> bytes:
    view = memoryview(data).cast("B")
    parts = [XERIAL_HEADER]
    for start in range(0, len(view), XERIAL_BLOCK_BYTES):
        block = bytes(cramjam.snappy.compress_raw(view[start : start + XERIAL_BLOCK_BYTES]))
        parts.append(_BE_I32.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _snappy_decompress(data: bytes, max_output_bytes: int) -> bytes:
    view = memoryview(data).cast("B")
    if len(view) < len(XERIAL_HEADER) or view[: len(XERIAL_MAGIC)] != XERIAL_MAGIC:
        return _snappy_raw(view, max_output_bytes)
    # The version fields are not checked: some producers write them
    # little-endian, and there has only ever been one version.
    out: list[bytes] = []
    total = 0
    pos = len(XERIAL_HEADER)
    while pos < len(view):
        if len(view) - pos < 4:
            raise CorruptRecordError("snappy: truncated xerial block length")
        (n,) = _BE_I32.unpack_from(view, pos)
        pos += 4
        if n < 0 or n > len(view) - pos:
            raise CorruptRecordError(f"snappy: xerial block length {n} beyond the stream")
        block = _snappy_raw(view[pos : pos + n], max_output_bytes - total)
        total += len(block)
        out.append(block)
        pos += n
    return b"".join(out)


def _snappy_raw(block: memoryview, max_output_bytes: int) -> bytes:
    try:
        # The raw format leads with the uncompressed length: check before allocating.
        _check_bound(cramjam.snappy.decompress_raw_len(block), max_output_bytes)
        return bytes(cramjam.snappy.decompress_raw(block))
    except cramjam.DecompressionError as e:
        raise CorruptRecordError(f"snappy: {e}") from None


def _decompress_into(fn, name: str, data: bytes, max_output_bytes: int, hint: int | None) -> bytes:
    if hint is not None:
        _check_bound(hint, max_output_bytes)
        size = hint
    else:
        size = min(max(_INITIAL_GUESS_BYTES, _INITIAL_GUESS_RATIO * len(data)), max_output_bytes)
    while True:
        buf = bytearray(size)
        try:
            n = fn(data, buf)
        except cramjam.DecompressionError as e:
            if _OVERRUN_MESSAGE not in str(e):
                raise CorruptRecordError(f"{name}: {e}") from None
            # Overran: the declared size lied or the guess was low.
            _check_bound(size + 1, max_output_bytes)
            del buf
            size = min(max(2 * size, _INITIAL_GUESS_BYTES), max_output_bytes)
            continue
        del buf[n:]
        return bytes(buf)


def _lz4_content_size(data: bytes) -> int | None:
    """Frame Content Size from an LZ4 frame header (magic, FLG bit 3, BD, u64 LE)."""
    head = bytes(data[:14])
    if len(head) < 14 or head[:4] != b"\x04\x22\x4d\x18" or not head[4] & 0x08:
        return None
    return int.from_bytes(head[6:14], "little")


def _zstd_content_size(data: bytes) -> int | None:
    """Frame_Content_Size from a zstd frame header (RFC 8878 section 3.1.1.1)."""
    head = bytes(data[:18])
    if len(head) < 5 or head[:4] != b"\x28\xb5\x2f\xfd":
        return None
    fhd = head[4]
    single_segment = (fhd >> 5) & 1
    fcs_bytes = (single_segment, 2, 4, 8)[fhd >> 6]
    if fcs_bytes == 0:
        return None  # streamed without a size, as the Java client does
    pos = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[fhd & 3]
    if len(head) < pos + fcs_bytes:
        return None
    size = int.from_bytes(head[pos : pos + fcs_bytes], "little")
    return size + 256 if fcs_bytes == 2 else size
