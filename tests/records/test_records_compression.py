"""The four batch codecs: Kafka's stream formats, and bounded decompression."""

from __future__ import annotations

import errno
import gzip
import io
import os
import struct
import tracemalloc
import zlib

import cramjam
import lz4.frame
import pytest
import zstandard

from riverlog.client.records import Compression, CorruptRecordError, compress, decompress
from riverlog.client.records import compression as codecs

KIB, MIB = 1024, 1024 * 1024
SIZES = [0, 1, 32 * KIB - 1, 32 * KIB, 32 * KIB + 1, 200 * KIB]


def sample(n: int) -> bytes:
    """Half random, half repetitive: both compressible and not."""
    half = n // 2
    return os.urandom(half) + b"riverlog " * ((n - half) // 9) + b"x" * ((n - half) % 9)


@pytest.mark.parametrize("codec", list(Compression))
@pytest.mark.parametrize("n", SIZES)
def test_every_codec_round_trips(codec, n):
    data = sample(n)
    assert decompress(codec, compress(codec, data)) == data


@pytest.mark.parametrize(
    ("codec", "levels"),
    [(Compression.GZIP, [1, 9]), (Compression.LZ4, [1, 17]), (Compression.ZSTD, [-5, 1, 22])],
)
def test_levels_within_kafkas_ranges_round_trip(codec, levels):
    data = sample(50 * KIB)
    for level in levels:
        assert decompress(codec, compress(codec, data, level)) == data


@pytest.mark.parametrize(
    ("codec", "level"),
    [(Compression.GZIP, 0), (Compression.GZIP, 10), (Compression.LZ4, 18), (Compression.ZSTD, 23),
     (Compression.SNAPPY, 1), (Compression.NONE, 1)],
)  # fmt: skip
def test_levels_outside_the_codecs_range_are_refused(codec, level):
    with pytest.raises(ValueError):
        compress(codec, b"data", level)


def test_snappy_writes_xerial_framing_with_32_kib_blocks():
    data = sample(100 * KIB)
    out = compress(Compression.SNAPPY, data)
    assert out[:16] == b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    pos, blocks = 16, []
    while pos < len(out):
        (n,) = struct.unpack_from(">i", out, pos)
        blocks.append(bytes(cramjam.snappy.decompress_raw(out[pos + 4 : pos + 4 + n])))
        pos += 4 + n
    assert [len(b) for b in blocks] == [32 * KIB, 32 * KIB, 32 * KIB, 4 * KIB]
    assert b"".join(blocks) == data


def test_snappy_reads_raw_unframed_snappy_as_librdkafka_may_send():
    data = sample(100 * KIB)
    assert decompress(Compression.SNAPPY, bytes(cramjam.snappy.compress_raw(data))) == data


def test_snappy_reads_xerial_with_little_endian_version_fields():
    framed = compress(Compression.SNAPPY, b"abc" * 1000)
    odd = framed[:8] + struct.pack("<ii", 1, 1) + framed[16:]
    assert decompress(Compression.SNAPPY, odd) == b"abc" * 1000


def test_lz4_writes_independent_blocks_as_kafkas_reader_requires():
    out = compress(Compression.LZ4, sample(300 * KIB))
    assert out[:4] == b"\x04\x22\x4d\x18"
    flg = out[4]
    assert flg >> 6 == 1  # frame version 01
    assert flg & 0x20  # block independence
    assert lz4.frame.decompress(out) == decompress(Compression.LZ4, out)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"block_linked": False},
        {"store_size": True, "content_checksum": True},
        {"block_size": lz4.frame.BLOCKSIZE_MAX4MB, "block_checksum": True},
    ],
)
def test_lz4_reads_frames_from_the_lz4_package(options):
    data = sample(300 * KIB)
    assert decompress(Compression.LZ4, lz4.frame.compress(data, **options)) == data


def zstd_streamed(data: bytes, level: int = 3) -> bytes:
    """A zstd frame without a content size, as zstd-jni's stream (the Java client) writes."""
    bio = io.BytesIO()
    with zstandard.ZstdCompressor(level=level).stream_writer(bio, closefd=False) as w:
        w.write(data)
    return bio.getvalue()


def test_zstd_reads_a_streamed_frame_without_content_size():
    data = sample(300 * KIB)
    frame = zstd_streamed(data)
    assert zstandard.get_frame_parameters(frame).content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert decompress(Compression.ZSTD, frame) == data


def test_zstd_reads_concatenated_frames():
    data = sample(10 * KIB)
    assert decompress(Compression.ZSTD, zstd_streamed(data) + compress(Compression.ZSTD, data)) == data * 2


def test_gzip_reads_concatenated_members_and_writes_plain_gzip():
    data = sample(10 * KIB)
    assert decompress(Compression.GZIP, gzip.compress(data) + gzip.compress(data)) == data * 2
    assert gzip.decompress(compress(Compression.GZIP, data)) == data


def test_highly_compressible_output_without_a_declared_size():
    # 40 MiB of zeros in ~1 KiB of stream, with no declared size: far past
    # any guess a buffer could start from.
    data = bytes(40 * MIB)
    for codec, stream in [
        (Compression.ZSTD, zstd_streamed(data)),
        (Compression.LZ4, lz4.frame.compress(data, store_size=False)),
    ]:
        assert decompress(codec, stream) == data


class CountingZlib:
    """zlib as the gzip reader sees it, counting the streams it opens and the
    bytes it hands them."""

    error = zlib.error
    MAX_WBITS = zlib.MAX_WBITS

    def __init__(self):
        self.streams = 0
        self.fed: list[int] = []

    def decompressobj(self, *args):
        self.streams += 1
        return CountingStream(zlib.decompressobj(*args), self.fed)


class CountingStream:
    def __init__(self, inner, fed):
        self._inner, self._fed = inner, fed

    def decompress(self, data, *args):
        self._fed.append(memoryview(data).nbytes)
        return self._inner.decompress(data, *args)

    def __getattr__(self, name):
        return getattr(self._inner, name)


EMPTY_GZIP_MEMBER = gzip.compress(b"", mtime=0)  # 20 bytes


def test_a_gzip_stream_of_many_members_is_refused_after_a_few(monkeypatch):
    # 1 MiB of empty members: a zlib stream and a Python step per 20 bytes,
    # and each member's end copied the whole rest of the stream (quadratic).
    counting = CountingZlib()
    monkeypatch.setattr(codecs, "zlib", counting)
    for member in (EMPTY_GZIP_MEMBER, gzip.compress(b"x", mtime=0)):
        with pytest.raises(CorruptRecordError, match="members"):
            decompress(Compression.GZIP, member * (MIB // len(member)))
    assert counting.streams <= 2 * (codecs.MAX_GZIP_MEMBERS + 1)


def test_gzip_reads_up_to_max_gzip_members_and_refuses_one_more():
    data = sample(KIB)
    most = codecs.MAX_GZIP_MEMBERS
    assert most >= 2
    assert decompress(Compression.GZIP, gzip.compress(data) * most) == data * most
    with pytest.raises(CorruptRecordError, match="members"):
        decompress(Compression.GZIP, gzip.compress(data) * (most + 1))


def test_gzip_hands_zlib_bounded_pieces_so_no_member_copies_the_rest(monkeypatch):
    data = os.urandom(300 * KIB)  # incompressible: each member about as long
    stream = gzip.compress(data, mtime=0) * 4
    counting = CountingZlib()
    monkeypatch.setattr(codecs, "zlib", counting)
    assert decompress(Compression.GZIP, stream) == data * 4
    assert counting.streams == 4
    # At most 64 KiB a call: a member's end copies what is left of its piece.
    assert max(counting.fed) <= 64 * KIB
    # Each byte once, plus less than a piece again where a member ends.
    assert sum(counting.fed) < len(stream) + counting.streams * 64 * KIB


def xerial(blocks: list[bytes]) -> bytes:
    return codecs.XERIAL_HEADER + b"".join(struct.pack(">i", len(b)) + b for b in blocks)


def test_snappy_refuses_an_empty_xerial_block():
    data = sample(10 * KIB)
    block = bytes(cramjam.snappy.compress_raw(data))
    empty = bytes(cramjam.snappy.compress_raw(b""))
    assert decompress(Compression.SNAPPY, xerial([block, block])) == data * 2
    with pytest.raises(CorruptRecordError, match="empty"):
        decompress(Compression.SNAPPY, xerial([block, empty, block]))


def test_snappy_xerial_blocks_are_bounded_by_the_stream_size(monkeypatch):
    # 7-byte blocks of one byte each (empty ones are refused anyway): a
    # Python step per 7 bytes of stream unless their number is bounded.
    tiny = bytes(cramjam.snappy.compress_raw(b"a"))
    calls = []
    real = cramjam.snappy.decompress_raw
    monkeypatch.setattr(cramjam.snappy, "decompress_raw", lambda block: calls.append(1) or real(block))
    stream = xerial([tiny] * (MIB // (4 + len(tiny))))
    with pytest.raises(CorruptRecordError, match="blocks"):
        decompress(Compression.SNAPPY, stream)
    assert len(calls) <= 64 + len(stream) // 256
    # A few small blocks, and blocks of a fifth of the writers' 32 KiB, are fine.
    assert decompress(Compression.SNAPPY, xerial([tiny] * 64)) == b"a" * 64
    data = bytes(2 * MIB)
    blocks = [bytes(cramjam.snappy.compress_raw(data[i : i + 6 * KIB])) for i in range(0, len(data), 6 * KIB)]
    assert decompress(Compression.SNAPPY, xerial(blocks)) == data


@pytest.mark.parametrize(
    ("codec", "frame"),
    [
        (Compression.ZSTD, zstd_streamed),
        (Compression.ZSTD, lambda data: compress(Compression.ZSTD, data)),  # declares its size
        (Compression.LZ4, lambda data: lz4.frame.compress(data, store_size=False)),
        (Compression.LZ4, lambda data: lz4.frame.compress(data, store_size=True)),
    ],
)
def test_lz4_and_zstd_decompress_once_and_keep_one_copy(codec, frame, monkeypatch):
    data = bytes(8 * MIB)
    stream = frame(data)
    module = cramjam.zstd if codec is Compression.ZSTD else cramjam.lz4
    passes = []
    real = module.decompress_into
    monkeypatch.setattr(module, "decompress_into", lambda src, dst: passes.append(1) or real(src, dst))
    tracemalloc.start()
    try:
        out = decompress(codec, stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out == data
    assert len(passes) == 1  # not again into a buffer twice as large
    assert peak < 1.25 * len(data)  # the buffer decompressed into, not a copy of it too


BOMB = bytes(4 * MIB)
BOMB = bytes(4 * MIB)


def bombs() -> list[tuple[Compression, bytes]]:
    return [
        (Compression.NONE, BOMB),
        (Compression.GZIP, gzip.compress(BOMB)),
        (Compression.GZIP, gzip.compress(BOMB[: 2 * MIB]) * 2),
        (Compression.SNAPPY, compress(Compression.SNAPPY, BOMB)),
        (Compression.SNAPPY, bytes(cramjam.snappy.compress_raw(BOMB))),
        (Compression.LZ4, compress(Compression.LZ4, BOMB)),
        (Compression.LZ4, lz4.frame.compress(BOMB, store_size=True)),
        (Compression.ZSTD, compress(Compression.ZSTD, BOMB)),  # declares its content size
        (Compression.ZSTD, zstd_streamed(BOMB)),
    ]


@pytest.mark.parametrize(("codec", "stream"), bombs())
def test_output_beyond_max_output_bytes_is_corrupt_and_exactly_at_it_is_fine(codec, stream):
    with pytest.raises(CorruptRecordError, match="max_output_bytes"):
        decompress(codec, stream, max_output_bytes=len(BOMB) - 1)
    with pytest.raises(CorruptRecordError, match="max_output_bytes"):
        decompress(codec, stream, max_output_bytes=MIB)
    assert decompress(codec, stream, max_output_bytes=len(BOMB)) == BOMB


def test_a_gigabyte_zstd_bomb_is_refused_under_the_default_bound():
    bio = io.BytesIO()
    with zstandard.ZstdCompressor(level=1).stream_writer(bio, closefd=False) as w:
        chunk = bytes(64 * MIB)
        for _ in range(16):
            w.write(chunk)
    stream = bio.getvalue()
    assert len(stream) < 64 * KIB
    with pytest.raises(CorruptRecordError, match="max_output_bytes"):
        decompress(Compression.ZSTD, stream)


def test_a_zstd_frame_claiming_more_than_the_bound_is_refused_before_decoding():
    frame = bytearray(compress(Compression.ZSTD, b"a" * 1000))
    assert frame[4] == 0x60  # single segment, 2-byte content size (value - 256)
    struct.pack_into("<H", frame, 5, 0xFFFF)
    with pytest.raises(CorruptRecordError, match="max_output_bytes"):
        decompress(Compression.ZSTD, bytes(frame), max_output_bytes=1000)


def test_a_zstd_frame_understating_its_size_is_corrupt_or_read_in_full():
    frame = bytearray(compress(Compression.ZSTD, b"a" * 1000))
    struct.pack_into("<H", frame, 5, 500 - 256)
    try:
        assert decompress(Compression.ZSTD, bytes(frame)) == b"a" * 1000
    except CorruptRecordError:
        pass


@pytest.mark.parametrize("codec", [Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD])
def test_truncated_or_garbage_streams_are_corrupt(codec):
    stream = compress(codec, sample(100 * KIB))
    for cut in [1, 2, 5, 17, len(stream) // 2, len(stream) - 1]:
        with pytest.raises(CorruptRecordError):
            decompress(codec, stream[:cut])
    for garbage in [b"", b"\x00" * 64, os.urandom(64), stream[:20] + os.urandom(200)]:
        try:
            decompress(codec, garbage)
        except CorruptRecordError:
            pass  # the only acceptable failure; b"" happens to be empty raw snappy


@pytest.mark.parametrize("codec_id", [5, 6, 7, -1])
def test_unknown_codec_ids_are_corrupt_on_read_and_refused_on_write(codec_id):
    with pytest.raises(CorruptRecordError):
        decompress(codec_id, b"data")
    with pytest.raises(ValueError):
        compress(codec_id, b"data")


def test_zstd_and_lz4_header_size_hints():
    assert codecs._zstd_content_size(compress(Compression.ZSTD, b"a" * 70000)) == 70000
    assert codecs._zstd_content_size(zstd_streamed(b"a" * 70000)) is None
    assert codecs._lz4_content_size(lz4.frame.compress(b"a" * 70000, store_size=True)) == 70000
    assert codecs._lz4_content_size(compress(Compression.LZ4, b"a" * 70000)) is None
    assert codecs._zstd_content_size(b"\x28\xb5\x2f") is None


def test_lz4_and_zstd_decompress_within_the_bound_where_no_mapping_can_be_had(monkeypatch):
    # Strict overcommit or a low RLIMIT_AS refuse the mapping of the bound: the
    # broker's log takes an OSError for a failed disk, so none may come out.
    def refused(*args, **kwargs):
        raise OSError(errno.ENOMEM, os.strerror(errno.ENOMEM))

    monkeypatch.setattr(codecs.mmap, "mmap", refused)
    data = sample(300 * KIB)
    for codec, stream in [(Compression.ZSTD, zstd_streamed(data)), (Compression.LZ4, compress(Compression.LZ4, data))]:
        assert decompress(codec, stream) == data
        with pytest.raises(CorruptRecordError, match="max_output_bytes"):
            decompress(codec, stream, max_output_bytes=len(data) - 1)
        assert decompress(codec, stream, max_output_bytes=len(data)) == data
