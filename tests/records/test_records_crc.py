"""CRC-32C protects bytes [21, end) of a batch, and only those."""

from __future__ import annotations

import struct

import crc32c
import pytest

from riverlog.client.records import Compression, CorruptRecordError, NewRecord, RecordBatch, build_batch
from riverlog.client.records import layout

RECORDS = [
    NewRecord(b"key", b"value-%d" % i * 10, 1_700_000_000_000 + i, [("h", b"v"), ("n", None)]) for i in range(3)
]


def test_crc32c_check_value():
    assert crc32c.crc32c(b"123456789") == 0xE3069283


@pytest.mark.parametrize("codec", list(Compression))
def test_a_built_batch_carries_the_crc32c_of_bytes_21_to_end(codec):
    data = build_batch(RECORDS, compression=codec)
    batch = RecordBatch(data)
    assert batch.crc == crc32c.crc32c(data[21:]) == batch.compute_crc()
    assert batch.is_valid_crc()
    batch.validate()


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.ZSTD])
def test_every_single_bit_flip_in_the_crc_range_or_the_crc_is_detected(codec):
    data = build_batch(RECORDS, compression=codec)
    for pos in range(layout.CRC_OFFSET, len(data)):
        for bit in range(8):
            buf = bytearray(data)
            buf[pos] ^= 1 << bit
            batch = RecordBatch(buf)
            assert not batch.is_valid_crc(), (pos, bit)
            with pytest.raises(CorruptRecordError, match="CRC"):
                batch.validate()
            with pytest.raises(CorruptRecordError):
                batch.records()


def test_base_offset_and_leader_epoch_lie_outside_the_crc():
    buf = bytearray(build_batch(RECORDS, compression=Compression.GZIP))
    crc = RecordBatch(buf).crc
    struct.pack_into(">q", buf, layout.BASE_OFFSET_OFFSET, 2**40)
    struct.pack_into(">i", buf, layout.PARTITION_LEADER_EPOCH_OFFSET, 12345)
    batch = RecordBatch(buf)
    assert batch.crc == crc
    batch.validate()
    assert batch.records()[0].offset == 2**40


def test_records_skips_the_crc_only_when_told():
    buf = bytearray(build_batch([NewRecord(b"k", b"value", 0)]))
    buf[-2] ^= 0x01  # a byte of the value: decodes fine, CRC does not match
    batch = RecordBatch(buf)
    with pytest.raises(CorruptRecordError, match="CRC"):
        batch.records()
    assert batch.records(verify_crc=False)[0].value == b"valud"
