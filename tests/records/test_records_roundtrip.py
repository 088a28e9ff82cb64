"""build_batch -> iter_batches -> records() gives back what went in."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riverlog import native
from riverlog.client.records import (
    LOG_OVERHEAD,
    Compression,
    CorruptRecordError,
    NewRecord,
    RecordBatch,
    TimestampType,
    build_batch,
    iter_batches,
)
from riverlog.client.records import layout
from tests.records.records_strategies import as_expected, as_read, codecs, new_records, reseal

T0 = 1_700_000_000_000

MIXED = [
    NewRecord(b"key-0", b"value " * 200, T0, [("trace", b"abc"), ("ключ-ü-鍵", b"\x00\xff"), ("null", None)]),
    NewRecord(None, b"null key", T0 + 5),
    NewRecord(b"tombstone", None, T0 - 10),  # earlier than the first: negative delta
    NewRecord(b"", b"", T0 + 1, [("", b"")]),
    NewRecord(bytearray(b"ba"), memoryview(b"mv"), T0 + 2, (("h", bytearray(b"x")),)),
]


def only_batch(data: bytes) -> RecordBatch:
    batches = list(iter_batches(data))
    assert len(batches) == 1
    return batches[0]


@pytest.mark.parametrize("codec", list(Compression))
def test_every_codec_round_trips_keys_values_headers_and_timestamps(codec):
    data = build_batch(MIXED, compression=codec, base_offset=42)
    batch = only_batch(data)
    batch.validate()
    assert batch.compression is codec
    records = batch.records()
    assert as_read(records) == as_expected(MIXED)
    assert [r.offset for r in records] == list(range(42, 42 + len(MIXED)))


@settings(max_examples=150, deadline=None)
@given(records=new_records, codec=codecs, base_offset=st.integers(0, 2**62))
def test_any_records_round_trip_under_any_codec(records, codec, base_offset):
    batch = only_batch(build_batch(records, compression=codec, base_offset=base_offset))
    out = batch.records()
    assert as_read(out) == as_expected(records)
    assert [r.offset for r in out] == [base_offset + i for i in range(len(records))]
    assert batch.max_timestamp == max(r.timestamp for r in records)


def test_header_fields_read_back_as_built():
    records = [NewRecord(b"k", b"v", T0 + 7), NewRecord(b"k", b"v", T0 + 9), NewRecord(b"k", b"v", T0 + 3)]
    data = build_batch(
        records,
        compression=Compression.LZ4,
        base_offset=1000,
        partition_leader_epoch=17,
        producer_id=123_456_789_012,
        producer_epoch=7,
        base_sequence=40,
        is_transactional=True,
    )
    batch = only_batch(data)
    assert batch.base_offset == 1000
    assert batch.batch_length == len(data) - LOG_OVERHEAD
    assert batch.size_in_bytes == len(data)
    assert batch.partition_leader_epoch == 17
    assert batch.magic == 2
    assert batch.attributes == Compression.LZ4 | layout.ATTR_TRANSACTIONAL
    assert batch.timestamp_type is TimestampType.CREATE_TIME
    assert batch.is_transactional and not batch.is_control and not batch.has_delete_horizon
    assert batch.last_offset_delta == 2
    assert (batch.last_offset, batch.next_offset) == (1002, 1003)
    assert batch.base_timestamp == T0 + 7  # the first record's, as Kafka, not the smallest
    assert batch.max_timestamp == T0 + 9
    assert (batch.producer_id, batch.producer_epoch) == (123_456_789_012, 7)
    assert (batch.base_sequence, batch.last_sequence) == (40, 42)
    assert batch.records_count == 3


def test_defaults_are_a_non_idempotent_producer_batch():
    batch = only_batch(build_batch([NewRecord(b"k", b"v", T0)]))
    assert (batch.base_offset, batch.partition_leader_epoch) == (0, -1)
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (-1, -1, -1)
    assert batch.last_sequence == -1
    assert batch.attributes == 0


def test_last_sequence_wraps_past_int32_max_to_zero():
    records = [NewRecord(None, b"v", T0)] * 3
    batch = only_batch(build_batch(records, producer_id=1, producer_epoch=0, base_sequence=2**31 - 2))
    assert batch.last_sequence == 0
    batch = only_batch(build_batch(records, producer_id=1, producer_epoch=0, base_sequence=2**31 - 1))
    assert batch.last_sequence == 1


def test_log_append_time_reads_every_timestamp_as_max_timestamp():
    records = [NewRecord(b"a", b"1", T0), NewRecord(b"b", b"2", T0 + 50), NewRecord(b"c", b"3", T0 - 5)]
    batch = only_batch(build_batch(records, timestamp_type=TimestampType.LOG_APPEND_TIME))
    assert batch.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert [r.timestamp for r in batch.records()] == [T0 + 50] * 3


def test_broker_stamping_log_append_time_rewrites_max_timestamp_and_crc():
    buf = bytearray(build_batch([NewRecord(b"a", b"1", T0), NewRecord(b"b", b"2", T0 + 1)]))
    attributes = struct.unpack_from(">h", buf, layout.ATTRIBUTES_OFFSET)[0]
    struct.pack_into(">h", buf, layout.ATTRIBUTES_OFFSET, attributes | layout.ATTR_TIMESTAMP_TYPE)
    struct.pack_into(">q", buf, layout.MAX_TIMESTAMP_OFFSET, T0 + 999)
    batch = RecordBatch(reseal(buf))
    batch.validate()
    assert [r.timestamp for r in batch.records()] == [T0 + 999] * 2


def test_explicit_base_timestamp_keeps_record_timestamps():
    records = [NewRecord(b"a", b"1", T0 + 10), NewRecord(b"b", b"2", T0 + 20)]
    batch = only_batch(build_batch(records, base_timestamp=T0))
    assert batch.base_timestamp == T0
    assert [r.timestamp for r in batch.records()] == [T0 + 10, T0 + 20]


def test_control_and_delete_horizon_bits_read_back():
    batch = only_batch(build_batch([NewRecord(b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x05", T0)], is_control=True))
    assert batch.is_control
    buf = bytearray(batch.buffer)
    struct.pack_into(">h", buf, layout.ATTRIBUTES_OFFSET, batch.attributes | layout.ATTR_DELETE_HORIZON)
    assert RecordBatch(reseal(buf)).has_delete_horizon


def test_iter_batches_walks_concatenated_batches_and_drops_a_partial_tail():
    parts = [
        build_batch([NewRecord(b"k", b"v" * 100, T0 + i)] * (i + 1), compression=codec, base_offset=10 * i)
        for i, codec in enumerate(Compression)
    ]
    data = b"".join(parts)
    batches = list(iter_batches(data))
    assert [b.base_offset for b in batches] == [0, 10, 20, 30, 40]
    assert [len(b.records()) for b in batches] == [1, 2, 3, 4, 5]
    for cut in range(1, len(parts[-1])):
        batches = list(iter_batches(data[: len(data) - cut]))
        assert len(batches) == 4  # the torn fifth batch is dropped, silently
    assert list(iter_batches(b"")) == []


def test_a_view_sees_the_broker_assigning_offsets_in_place():
    buf = bytearray(build_batch([NewRecord(b"k", b"v", T0)] * 3))
    batch = only_batch(buf)  # a view: no copy of buf
    struct.pack_into(">q", buf, layout.BASE_OFFSET_OFFSET, 500)
    struct.pack_into(">i", buf, layout.PARTITION_LEADER_EPOCH_OFFSET, 9)
    assert (batch.base_offset, batch.partition_leader_epoch) == (500, 9)
    batch.validate()  # both fields lie outside the CRC
    assert [r.offset for r in batch.records()] == [500, 501, 502]


@pytest.mark.parametrize("codec", list(Compression))
def test_a_compacted_batch_keeps_gaps_and_its_last_offset_delta(codec):
    # What the log cleaner builds: survivors keep their offsets, and the batch
    # keeps its original lastOffsetDelta so the producer's last sequence holds.
    records = [NewRecord(b"a", b"1", T0), NewRecord(b"c", b"3", T0 + 2), NewRecord(b"z", None, T0 + 9)]
    data = build_batch(
        records, compression=codec, base_offset=100, offset_deltas=[0, 2, 300],
        last_offset_delta=1000, producer_id=5, producer_epoch=0, base_sequence=7,
    )  # fmt: skip
    batch = only_batch(data)
    assert [(r.offset, r.key, r.timestamp) for r in batch.records()] == [
        (100, b"a", T0), (102, b"c", T0 + 2), (400, b"z", T0 + 9),
    ]  # fmt: skip
    assert (batch.records_count, batch.last_offset_delta, batch.next_offset) == (3, 1000, 1101)
    assert batch.last_sequence == 1007


@settings(max_examples=60, deadline=None)
@given(
    records=new_records,
    gaps=st.lists(st.integers(1, 100_000), min_size=20, max_size=20),
    first=st.integers(0, 2**20),
    codec=codecs,
)
def test_any_increasing_offset_deltas_round_trip(records, gaps, first, codec):
    offset_deltas = [first + sum(gaps[:i]) for i in range(len(records))]
    batch = only_batch(build_batch(records, compression=codec, offset_deltas=offset_deltas))
    out = batch.records()
    assert [r.offset for r in out] == offset_deltas
    assert as_read(out) == as_expected(records)
    assert batch.last_offset_delta == offset_deltas[-1]


@pytest.mark.parametrize(
    ("offset_deltas", "last_offset_delta"),
    [([0, 0], None), ([1, 0], None), ([-1, 3], None), ([0, 2**31], None), ([0], None), ([0, 5], 4), (None, 0)],
)
def test_offset_deltas_that_do_not_increase_or_fit_are_refused(offset_deltas, last_offset_delta):
    with pytest.raises(ValueError):
        build_batch(
            [NewRecord(b"a", b"1", T0)] * 2, offset_deltas=offset_deltas, last_offset_delta=last_offset_delta
        )


def test_no_records_is_refused():
    with pytest.raises(ValueError):
        build_batch([])


@pytest.mark.parametrize(
    "record",
    [
        (b"k", "text value", T0, ()),
        ("text key", b"v", T0, ()),
        (b"k", b"v", 1.5, ()),
        (b"k", b"v", None, ()),
        (b"k", b"v", T0, [(b"bytes key", b"v")]),
        (b"k", b"v", T0, [("k", "text value")]),
    ],
)
def test_wrong_field_types_are_refused_with_type_error(record):
    with pytest.raises(TypeError):
        build_batch([record])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"producer_epoch": 2**15},
        {"base_sequence": 2**31},
        {"base_offset": 2**63},
        {"compression": 5},
        {"compression_level": 3},  # NONE takes no level
        {"compression": Compression.SNAPPY, "compression_level": 1},
        {"compression": Compression.GZIP, "compression_level": 10},
        {"timestamp_type": 2},
    ],
)
def test_fields_out_of_range_are_refused_with_value_error(kwargs):
    with pytest.raises(ValueError):
        build_batch([NewRecord(b"k", b"v", T0)], **kwargs)


def test_layout_agrees_with_the_native_package():
    # The C scanner keeps its own copy of the header size: a batch of just a
    # header is the smallest it takes, one byte less is a bad length.
    tail = layout.TAIL_STRUCT.pack(0, -1, 0, 0, -1, -1, -1, 0)
    impls = [native.twin] + ([native.compiled] if native.NATIVE else [])
    smallest = layout.MIN_BATCH_LENGTH
    for length, status in ((smallest, native.SCAN_OK), (smallest - 1, native.SCAN_BAD_LENGTH)):
        batch = layout.HEAD_STRUCT.pack(0, length, -1, layout.MAGIC, 0) + tail
        for impl in impls:
            assert impl.scan_batches(batch, 4, 1 << 20)[2] == status, (impl.__name__, length)


def test_corrupt_record_error_is_a_value_error():
    assert issubclass(CorruptRecordError, ValueError)
