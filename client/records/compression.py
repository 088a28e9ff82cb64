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
from the network: a few KiB of zstd can expand to gigabytes. Its cost is
bounded too, since the broker decompresses every batch inline: no codec does
Python work per byte, nor a number of Python steps the stream can choose.
Per codec:

- gzip: ``zlib.decompressobj().decompress(data, max_length)`` stops at the
  bound. The stream is fed in 64 KiB pieces, so what one member leaves for
  the next is never more than a piece, and at most MAX_GZIP_MEMBERS members
  are read (producers write one).
- snappy: each raw block states its uncompressed length up front; it is
  checked against the bound before anything is allocated. A xerial block
  must hold something, and there may be no more blocks than
  ``_xerial_max_blocks`` allows for the stream's size.
- lz4, zstd: decompressed in one pass into a buffer that cramjam refuses to
  overrun: of the frame's declared content size when the header has one,
  else (or when the declared size proves short) an anonymous mapping of
  ``max_output_bytes``, of which the kernel backs only the pages written.
  The buffer is returned as it is, not copied.

Over the bound, or on any malformed stream, decompress raises
:class:`CorruptRecordError` (over the bound: its subclass
:class:`DecompressedTooLargeError`).
"""

from __future__ import annotations

import mmap
import struct
import zlib

import cramjam

from riverlog.client.records.errors import CorruptRecordError, DecompressedTooLargeError
from riverlog.client.records.layout import Compression

DEFAULT_MAX_OUTPUT_BYTES = 256 * 1024 * 1024

XERIAL_MAGIC = b"\x82SNAPPY\x00"
XERIAL_HEADER = XERIAL_MAGIC + struct.pack(">ii", 1, 1)  # version 1, min compatible 1
XERIAL_BLOCK_BYTES = 32 * 1024  # uncompressed bytes per block, as the Java client writes

# Default levels are Kafka's (compression.<codec>.level); ranges are Kafka's too.
_DEFAULT_LEVEL = {Compression.GZIP: 6, Compression.LZ4: 9, Compression.ZSTD: 3}
_LEVEL_RANGE = {Compression.GZIP: (1, 9), Compression.LZ4: (1, 17), Compression.ZSTD: (-131072, 22)}

# Producers write one gzip member per batch (the Java client's
# GZIPOutputStream, librdkafka's deflate stream, kafka-python's GzipFile).
# Readers differ on more: Java's GZIPInputStream and Python's gzip read
# concatenated members, librdkafka reads the first and ignores the rest.
# They are read as Java does, but only a few: each member is a new zlib stream
# and a Python step, and a stream of 20-byte empty members would otherwise
# cost one per 20 bytes.
MAX_GZIP_MEMBERS = 16
# zlib is fed this much at a time: a member's end copies what is left of its
# last piece (unused_data), so a piece bounds that copy, not the whole rest.
_GZIP_FEED_BYTES = 64 * 1024

# A xerial block costs a Python step whatever it holds, so blocks are
# bounded by the stream's size. The writers' blocks hold 32 KiB (snappy-java,
# kafka-python), which snappy compresses to 1.5 KiB at best (its ratio tops out
# near 21:1); one block per 256 bytes of stream leaves room for writers whose
# blocks are several times smaller.
_XERIAL_STREAM_BYTES_PER_BLOCK = 256
_XERIAL_FREE_BLOCKS = 64

# cramjam's message when decompress_into runs out of output buffer (the
# io::ErrorKind::WriteZero text). Only this error means the output did not
# fit; anything else is corrupt input. tests/records pin it against the version.
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
    codec: int, data: bytes, max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES, *, gzip_members: int = MAX_GZIP_MEMBERS
) -> bytes | bytearray | memoryview:
    """Decompress one batch's records stream, refusing to produce more than
    ``max_output_bytes``. Raises CorruptRecordError on an unknown codec, a
    malformed stream or output over the bound.

    Returns a bytes-like object: lz4 and zstd return the buffer they were
    decompressed into (a bytearray, or a read-only view of an anonymous
    mapping, unmapped when the view goes), not a copy; ``bytes()`` it where
    bytes are needed. A gzip stream may hold at most ``gzip_members`` members."""
    try:
        codec = Compression(codec)
    except ValueError:
        raise CorruptRecordError(f"unknown compression codec id {codec}") from None
    if codec is Compression.NONE:
        _check_bound(len(data), max_output_bytes)
        return bytes(data)
    if codec is Compression.GZIP:
        return _gunzip(data, max_output_bytes, gzip_members)
    if codec is Compression.SNAPPY:
        return _snappy_decompress(data, max_output_bytes)
    if codec is Compression.LZ4:
        return _decompress_into(cramjam.lz4.decompress_into, "lz4", data, max_output_bytes, _lz4_content_size(data))
    return _decompress_into(cramjam.zstd.decompress_into, "zstd", data, max_output_bytes, _zstd_content_size(data))


def _check_bound(n: int, max_output_bytes: int) -> None:
    if n > max_output_bytes:
        raise _too_large(max_output_bytes)


def _too_large(max_output_bytes: int) -> DecompressedTooLargeError:
    return DecompressedTooLargeError(f"decompressed records exceed max_output_bytes ({max_output_bytes})")


def _gunzip(data: bytes, max_output_bytes: int, max_members: int) -> bytes:
    view = memoryview(data).cast("B")
    out: list[bytes] = []
    total = 0
    pos = 0
    for _ in range(max_members):  # a stream may concatenate a few members
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while not d.eof:
            if pos == len(view):
                raise CorruptRecordError("gzip: truncated stream")
            piece = view[pos : pos + _GZIP_FEED_BYTES]
            pos += len(piece)
            try:
                # max_length is never 0 here (0 would mean unbounded): total <= bound.
                # Short of it, zlib takes the whole piece (or stops at the member's end).
                chunk = d.decompress(piece, max_output_bytes - total + 1)
            except zlib.error as e:
                raise CorruptRecordError(f"gzip: {e}") from None
            total += len(chunk)
            _check_bound(total, max_output_bytes)
            out.append(chunk)
        pos -= len(d.unused_data)  # the next member starts where this one ended
        if pos == len(view):
            return b"".join(out)
    raise CorruptRecordError(f"gzip: more members than the {max_members} allowed (producers write one)")


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
    blocks_left = _xerial_max_blocks(len(view))
    while pos < len(view):
        if not blocks_left:
            raise CorruptRecordError(f"snappy: more xerial blocks than a {len(view)}-byte stream may hold")
        blocks_left -= 1
        if len(view) - pos < 4:
            raise CorruptRecordError("snappy: truncated xerial block length")
        (n,) = _BE_I32.unpack_from(view, pos)
        pos += 4
        if n < 0 or n > len(view) - pos:
            raise CorruptRecordError(f"snappy: xerial block length {n} beyond the stream")
        block = _snappy_raw(view[pos : pos + n], max_output_bytes - total)
        if not block:
            raise CorruptRecordError(f"snappy: empty xerial block at byte {pos - 4} (writers write none)")
        total += len(block)
        out.append(block)
        pos += n
    return b"".join(out)


def _xerial_max_blocks(stream_bytes: int) -> int:
    """How many blocks a xerial stream of ``stream_bytes`` may hold."""
    return _XERIAL_FREE_BLOCKS + stream_bytes // _XERIAL_STREAM_BYTES_PER_BLOCK


def _snappy_raw(block: memoryview, max_output_bytes: int) -> bytes:
    try:
        # The raw format leads with the uncompressed length: check before allocating.
        _check_bound(cramjam.snappy.decompress_raw_len(block), max_output_bytes)
        return bytes(cramjam.snappy.decompress_raw(block))
    except cramjam.DecompressionError as e:
        raise CorruptRecordError(f"snappy: {e}") from None


# Private anonymous memory, without a swap reservation where the system has
# MAP_NORESERVE: the mapping is as large as the bound, but only the pages
# written are ever backed, and it is unmapped with the last view of it.
_MAP_FLAGS = mmap.MAP_PRIVATE | getattr(mmap, "MAP_NORESERVE", 0)


def _decompress_into(
    fn, name: str, data: bytes, max_output_bytes: int, hint: int | None
) -> bytearray | memoryview:
    if hint is not None:
        _check_bound(hint, max_output_bytes)
        buf = bytearray(hint)
        if (n := _fill(fn, name, data, buf)) is not None:
            del buf[n:]
            return buf
        # The declared size was short (a lie, or more frames follow): once
        # more into the bound, so at most hint + bound bytes are decompressed.
        del buf
    # No declared size: one pass into a mapping as large as the bound. Growing
    # a buffer instead would decompress the stream again at each step.
    try:
        region = mmap.mmap(-1, max(max_output_bytes, 1), flags=_MAP_FLAGS)
    except OSError:
        # Refused (strict overcommit, a low RLIMIT_AS). Never an OSError from
        # here: the broker's log takes one for a failed disk.
        return _grow_into(fn, name, data, max_output_bytes)
    n = _fill(fn, name, data, region)
    if n is None or n > max_output_bytes:
        region.close()
        raise _too_large(max_output_bytes)
    return memoryview(region)[:n].toreadonly()


def _grow_into(fn, name: str, data: bytes, max_output_bytes: int) -> bytearray:
    """Where no mapping can be had: buffers doubling up to the bound, each
    pass decompressing again (about twice the bound in CPU at worst)."""
    size = min(64 * 1024, max_output_bytes)
    while True:
        buf = bytearray(size)
        if (n := _fill(fn, name, data, buf)) is not None:
            del buf[n:]
            return buf
        if size >= max_output_bytes:
            raise _too_large(max_output_bytes)
        del buf
        size = min(2 * size, max_output_bytes)


def _fill(fn, name: str, data: bytes, buf) -> int | None:
    """Decompress ``data`` into ``buf`` with cramjam's ``fn``: the byte count,
    or None if ``buf`` is too small."""
    try:
        return fn(data, buf)
    except cramjam.DecompressionError as e:
        if _OVERRUN_MESSAGE in str(e):
            return None
        raise CorruptRecordError(f"{name}: {e}") from None


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
