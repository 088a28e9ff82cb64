"""Hostile bytes get CorruptRecordError: never another exception, never a crash."""

from __future__ import annotations

import gzip
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riverlog import native
from riverlog.client.records import (
    BATCH_HEADER_BYTES,
    Compression,
    CorruptRecordError,
    NewRecord,
    RecordBatch,
    build_batch,
    iter_batches,
)
from riverlog.client.records import layout
from tests.records.records_strategies import reseal

T0 = 1_700_000_000_000
GOOD = build_batch(
    [NewRecord(b"k%d" % i, b"v" * 40, T0 + i, [("h", b"x")]) for i in range(4)], compression=Compression.NONE
)
SMALL_BOUND = 1 << 20  # keeps random codec streams cheap


def read_everything(data) -> None:
    """What a consumer does with bytes off the wire."""
    for batch in iter_batches(data, max_batch_bytes=1 << 24):
        batch.records(max_output_bytes=SMALL_BOUND)


def with_area(area: bytes, count: int, codec: int = 0, last_offset_delta: int | None = None) -> bytearray:
    """GOOD's header over another records area, lengths and CRC made consistent."""
    buf = bytearray(GOOD[:BATCH_HEADER_BYTES]) + area
    struct.pack_into(">i", buf, layout.BATCH_LENGTH_OFFSET, len(buf) - layout.LOG_OVERHEAD)
    struct.pack_into(">h", buf, layout.ATTRIBUTES_OFFSET, codec)
    struct.pack_into(">i", buf, layout.RECORDS_COUNT_OFFSET, count)
    if last_offset_delta is not None:
        struct.pack_into(">i", buf, layout.LAST_OFFSET_DELTA_OFFSET, last_offset_delta)
    return reseal(buf)


def test_a_batch_cut_anywhere_is_a_partial_tail_or_corrupt():
    for cut in range(len(GOOD)):
        assert list(iter_batches(GOOD[:cut])) == []  # partial: dropped silently
        with pytest.raises(CorruptRecordError):
            RecordBatch(GOOD[:cut]).records()


@pytest.mark.parametrize("magic", [0, 1, 3, -1])
def test_a_magic_other_than_2_is_corrupt(magic):
    buf = bytearray(GOOD)
    struct.pack_into(">b", buf, layout.MAGIC_OFFSET, magic)
    with pytest.raises(CorruptRecordError, match="magic"):
        list(iter_batches(buf))
    with pytest.raises(CorruptRecordError, match="magic"):
        list(iter_batches(buf[:20]))  # even in a partial tail
    with pytest.raises(CorruptRecordError, match="magic"):
        RecordBatch(buf).validate()
    with pytest.raises(CorruptRecordError, match="magic"):
        RecordBatch(buf).records(verify_crc=False)


@pytest.mark.parametrize("length", [-(2**31), -1, 0, 12, layout.MIN_BATCH_LENGTH - 1])
def test_a_batch_length_below_the_header_is_corrupt(length):
    buf = bytearray(GOOD)
    struct.pack_into(">i", buf, layout.BATCH_LENGTH_OFFSET, length)
    with pytest.raises(CorruptRecordError, match="batchLength"):
        list(iter_batches(buf))
    with pytest.raises(CorruptRecordError, match="batchLength"):
        RecordBatch(buf).validate()


@pytest.mark.parametrize("delta", [-1, 1, 2**31 - 1 - len(GOOD) + 12])
def test_a_batch_length_disagreeing_with_the_bytes_is_corrupt(delta):
    buf = bytearray(GOOD)
    struct.pack_into(">i", buf, layout.BATCH_LENGTH_OFFSET, len(GOOD) - 12 + delta)
    with pytest.raises(CorruptRecordError, match="batchLength"):
        RecordBatch(buf).validate()
    with pytest.raises(CorruptRecordError, match="batchLength"):
        RecordBatch(buf).records(verify_crc=False)


def test_a_huge_batch_length_is_a_partial_tail_unless_over_the_limit():
    buf = bytearray(GOOD)
    struct.pack_into(">i", buf, layout.BATCH_LENGTH_OFFSET, 2**31 - 1)
    assert list(iter_batches(buf)) == []
    with pytest.raises(CorruptRecordError, match="limit"):
        list(iter_batches(buf, max_batch_bytes=1 << 20))


@pytest.mark.parametrize("count", [-1, 0, 3, 5, 2**31 - 1])
def test_a_records_count_disagreeing_with_the_records_is_corrupt(count):
    buf = bytearray(GOOD)
    struct.pack_into(">i", buf, layout.RECORDS_COUNT_OFFSET, count)
    with pytest.raises(CorruptRecordError):
        RecordBatch(reseal(buf)).records()


def test_offset_deltas_beyond_last_offset_delta_are_corrupt():
    area = bytes(GOOD[BATCH_HEADER_BYTES:])
    with pytest.raises(CorruptRecordError, match="lastOffsetDelta"):
        RecordBatch(with_area(area, 4, last_offset_delta=2)).records()


def test_offset_deltas_that_do_not_increase_are_corrupt():
    one = native.encode_records([0], [b"k"], [b"v"], [[]])  # offset delta 0
    with pytest.raises(CorruptRecordError, match="offsetDelta"):
        RecordBatch(with_area(one + one, 2, last_offset_delta=1)).records()


@pytest.mark.parametrize(
    "area",
    [
        b"\x00" * 20,
        b"\xff" * 20,
        b"\x7f" + b"\x00" * 10,  # record length beyond the area
        b"\x16\x00\x00\x00\x02k\x02v\x02\x02\xff\x01",  # header key not UTF-8
    ],
)
def test_a_garbage_records_area_is_corrupt(area):
    with pytest.raises(CorruptRecordError, match="records do not decode"):
        RecordBatch(with_area(area, 1, last_offset_delta=0)).records()


def test_trailing_bytes_after_the_last_record_are_corrupt():
    area = bytes(GOOD[BATCH_HEADER_BYTES:]) + b"\x00"
    with pytest.raises(CorruptRecordError):
        RecordBatch(with_area(area, 4, last_offset_delta=3)).records()


@pytest.mark.parametrize("codec_id", [5, 6, 7])
def test_an_unknown_codec_is_corrupt(codec_id):
    batch = RecordBatch(with_area(bytes(GOOD[BATCH_HEADER_BYTES:]), 4, codec=codec_id))
    with pytest.raises(CorruptRecordError, match="codec"):
        batch.records()


def test_a_gzip_bomb_beyond_max_output_bytes_is_corrupt():
    bomb = gzip.compress(bytes(8 << 20))
    assert len(bomb) < 16 << 10
    batch = RecordBatch(with_area(bomb, 1, codec=Compression.GZIP))
    with pytest.raises(CorruptRecordError, match="max_output_bytes"):
        batch.records(max_output_bytes=4 << 20)


def test_a_compressed_stream_that_does_not_decompress_is_corrupt():
    for codec in (Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD):
        with pytest.raises(CorruptRecordError):
            RecordBatch(with_area(b"\x04\x22\x4d\x18not a stream at all", 1, codec=codec)).records()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300))
def test_random_bytes_never_raise_anything_but_corrupt_record_error(data):
    try:
        read_everything(data)
    except CorruptRecordError:
        pass


@settings(max_examples=400, deadline=None)
@given(
    area=st.binary(max_size=200),
    count=st.integers(-2, 40),
    codec=st.integers(0, 7),
    last_offset_delta=st.integers(-1, 40),
)
def test_any_records_area_under_a_valid_crc_decodes_or_is_corrupt(area, count, codec, last_offset_delta):
    buf = with_area(area, count, codec, last_offset_delta)
    try:
        read_everything(buf)
    except CorruptRecordError:
        pass


@settings(max_examples=300, deadline=None)
@given(
    codec=st.sampled_from(list(Compression)),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    fix_crc=st.booleans(),
)
def test_a_mutated_valid_batch_decodes_or_is_corrupt(codec, edits, fix_crc):
    buf = bytearray(build_batch([NewRecord(b"key", b"value" * 30, T0, [("h", b"v")])] * 3, compression=codec))
    for pos, byte in edits:
        buf[pos % len(buf)] = byte
    if fix_crc:
        reseal(buf)
    try:
        for batch in iter_batches(buf):
            batch.records(max_output_bytes=SMALL_BOUND, verify_crc=False)
    except CorruptRecordError:
        pass
