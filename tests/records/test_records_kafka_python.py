"""Byte-level compatibility with a real Kafka client's record batches (kafka-python).

kafka-python's DefaultRecordBatchBuilder writes batches the way every Kafka
producer does, with its own codecs (python-snappy xerial, lz4.frame,
zstandard, gzip); its DefaultRecordBatch and MemoryRecords read them the way
a consumer does. Batches cross in both directions and must read the same.
"""

from __future__ import annotations

import struct
import warnings

import pytest

with warnings.catch_warnings():  # kafka-python's schema loading uses deprecated importlib APIs
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
    from kafka.record.memory_records import MemoryRecords
    from kafka.record.util import calc_crc32c

from riverlog.client.records import Compression, NewRecord, RecordBatch, TimestampType, build_batch, iter_batches

T0 = 1_700_000_000_000
# Compressible values: kafka-python sends uncompressed when a codec does not help.
RECORDS = [
    NewRecord(b"key-%d" % i, b"value %d " % i * 50, T0 + (i * 7) % 5, [("trace-id", b"t%d" % i), ("ü-ключ", None)])
    for i in range(20)
] + [NewRecord(None, None, T0 - 3), NewRecord(b"", b"", T0 + 11, [("empty", b"")])]

KP_CODEC = {
    Compression.NONE: DefaultRecordBatch.CODEC_NONE,
    Compression.GZIP: DefaultRecordBatch.CODEC_GZIP,
    Compression.SNAPPY: DefaultRecordBatch.CODEC_SNAPPY,
    Compression.LZ4: DefaultRecordBatch.CODEC_LZ4,
    Compression.ZSTD: DefaultRecordBatch.CODEC_ZSTD,
}


def kafka_python_batch(codec: Compression, producer_id=4242, producer_epoch=3, base_sequence=77) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=KP_CODEC[codec],
        is_transactional=False,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        batch_size=1 << 20,
    )
    for offset, (key, value, ts, headers) in enumerate(RECORDS):
        assert builder.append(offset, ts, key, value, list(headers)) is not None
    return bytes(builder.build())


def kp_records(batch: DefaultRecordBatch) -> list[tuple]:
    return [(r.offset, r.timestamp, r.key, r.value, tuple(map(tuple, r.headers))) for r in batch]


def our_records(batch: RecordBatch) -> list[tuple]:
    return [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in batch.records()]


def assert_same_header(ours: RecordBatch, theirs: DefaultRecordBatch) -> None:
    assert ours.base_offset == theirs.base_offset
    assert ours.size_in_bytes == theirs.size_in_bytes
    assert ours.partition_leader_epoch == theirs.leader_epoch
    assert ours.magic == theirs.magic == 2
    assert ours.crc == theirs.crc
    assert ours.attributes == theirs.attributes
    assert ours.compression == theirs.compression_type
    assert ours.timestamp_type == theirs.timestamp_type
    assert ours.is_transactional == theirs.is_transactional
    assert ours.is_control == theirs.is_control_batch
    assert ours.last_offset_delta == theirs.last_offset_delta
    assert ours.next_offset == theirs.next_offset
    assert ours.base_timestamp == theirs.first_timestamp
    assert ours.max_timestamp == theirs.max_timestamp
    assert (ours.producer_id, ours.producer_epoch) == (theirs.producer_id, theirs.producer_epoch)
    assert (ours.base_sequence, ours.last_sequence) == (theirs.base_sequence, theirs.last_sequence)
    assert ours.records_count == theirs.records_count


@pytest.mark.parametrize("codec", list(Compression))
def test_we_read_kafka_python_batches_as_kafka_python_does(codec):
    data = bytearray(kafka_python_batch(codec))
    struct.pack_into(">q", data, 0, 1_000_000)  # as a leader assigns offsets
    [ours] = list(iter_batches(data))
    assert ours.compression is codec  # the codec really was used
    ours.validate()
    theirs = DefaultRecordBatch(bytes(data))
    assert theirs.validate_crc()
    assert_same_header(ours, theirs)
    expected = kp_records(theirs)
    assert our_records(ours) == expected
    assert [r[0] for r in expected] == list(range(1_000_000, 1_000_000 + len(RECORDS)))


@pytest.mark.parametrize("codec", list(Compression))
@pytest.mark.parametrize("timestamp_type", list(TimestampType))
def test_kafka_python_reads_our_batches_as_we_do(codec, timestamp_type):
    data = build_batch(
        RECORDS,
        compression=codec,
        base_offset=555,
        partition_leader_epoch=4,
        producer_id=9001,
        producer_epoch=2,
        base_sequence=2**31 - 5,  # last sequence wraps
        timestamp_type=timestamp_type,
    )
    theirs = DefaultRecordBatch(data)
    assert theirs.validate_crc()
    ours = RecordBatch(data)
    assert_same_header(ours, theirs)
    assert kp_records(theirs) == our_records(ours)
    assert calc_crc32c(data[21:]) == ours.compute_crc()


def test_kafka_python_memory_records_walks_our_concatenated_batches():
    parts = [build_batch(RECORDS, compression=codec, base_offset=100 * i) for i, codec in enumerate(Compression)]
    data = b"".join(parts) + parts[0][:40]  # plus a torn tail, as a Fetch response may end
    memory = MemoryRecords(data)
    seen = []
    while memory.has_next():
        batch = memory.next_batch()
        assert batch.validate_crc()
        seen.append(kp_records(batch))
    assert seen == [our_records(b) for b in iter_batches(data)]
    assert len(seen) == len(Compression)


def test_transactional_batches_agree():
    builder = DefaultRecordBatchBuilder(2, DefaultRecordBatch.CODEC_NONE, True, 12, 1, 0, 1 << 20)
    builder.append(0, T0, b"k", b"v", [])
    theirs_bytes = bytes(builder.build())
    ours = RecordBatch(theirs_bytes)
    assert ours.is_transactional and ours.records()[0].value == b"v"
    data = build_batch([NewRecord(b"k", b"v", T0)], producer_id=12, producer_epoch=1, base_sequence=0, is_transactional=True)
    assert DefaultRecordBatch(data).is_transactional


def test_kafka_python_reads_a_compacted_batch_with_gaps():
    data = build_batch(RECORDS[:3], compression=Compression.ZSTD, offset_deltas=[1, 64, 9000], last_offset_delta=9999)
    theirs = DefaultRecordBatch(data)
    assert theirs.validate_crc()
    assert kp_records(theirs) == our_records(RecordBatch(data))
    assert [r.offset for r in DefaultRecordBatch(data)] == [1, 64, 9000]
    assert theirs.next_offset == 10000
