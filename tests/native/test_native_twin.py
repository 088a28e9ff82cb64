"""The pure-Python twins against values worked out by hand (and by kafka-python).

The twins are the reference the C is held to, so they are checked here on
their own, against the record batch v2 layout and Kafka's varint rules.
"""

from __future__ import annotations

import mmap
import random
import struct

import pytest

from riverlog.native import twin
from riverlog.native.common import (
    SCAN_BAD_LENGTH,
    SCAN_BAD_MAGIC,
    SCAN_OK,
    SCAN_TRUNCATED,
    BatchInfo,
    RecordDecodeError,
)

ZIGZAG_TABLE = [  # value, zigzag + LEB128 bytes
    (0, "00"),
    (-1, "01"),
    (1, "02"),
    (-2, "03"),
    (63, "7e"),
    (-64, "7f"),
    (64, "8001"),
    (2**31 - 1, "feffffff0f"),
    (-(2**31), "ffffffff0f"),
    (2**63 - 1, "feffffffffffffffff01"),
    (-(2**63), "ffffffffffffffffff01"),
]


def batch(base_offset=0, epoch=-1, magic=2, last_offset_delta=0, max_ts=0, count=1, payload=b"", length=None):
    """A v2 batch built field by field from the README's header table."""
    body_after_length = 49 + len(payload)
    head = struct.pack(">qiib", base_offset, body_after_length if length is None else length, epoch, magic)
    rest = struct.pack(">Ihiqqqhii", 0, 0, last_offset_delta, 0, max_ts, -1, -1, -1, count)
    return head + rest + payload


def record(body: bytes) -> bytes:
    out = bytearray()
    twin.write_varint(out, len(body))
    return bytes(out) + body


def test_varints_are_zigzag_leb128_as_in_kafka():
    for value, expected in ZIGZAG_TABLE:
        encoded = twin.encode_records([value], [None], [None], [[]])
        # length, attributes 0, timestampDelta, offsetDelta 0, key -1, value -1, no headers
        body = bytes([0]) + bytes.fromhex(expected) + bytes.fromhex("00010100")
        assert encoded == record(body)
        assert twin.decode_records(encoded, 1) == [(0, value, None, None, [])]


def test_five_byte_varint_drops_bits_past_32_like_kafka_readvarint():
    for fifth in ("0f", "7f", "1f"):
        body = bytes.fromhex("0000" + "ffffffff" + fifth + "010100")  # offsetDelta is the varint
        assert twin.decode_records(record(body), 1) == [(-(2**31), 0, None, None, [])]


def test_non_canonical_varints_decode_but_longer_than_kafka_allows_do_not():
    assert twin.decode_records(record(bytes.fromhex("00" "8000" "00010100")), 1)[0][1] == 0
    assert twin.decode_records(record(bytes.fromhex("00" + "80" * 9 + "00" + "00010100")), 1)[0][1] == 0
    with pytest.raises(RecordDecodeError):  # 11-byte varlong
        twin.decode_records(record(bytes.fromhex("00" + "80" * 10 + "00" + "00010100")), 1)
    with pytest.raises(RecordDecodeError):  # 6-byte varint
        twin.decode_records(record(bytes.fromhex("0000" + "80" * 5 + "00" + "010100")), 1)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(record(bytes.fromhex("0000000301")), id="key-length-below-minus-1"),
        pytest.param(record(bytes.fromhex("0000000a61010100")), id="key-past-record"),
        pytest.param(record(bytes.fromhex("00000001010000")), id="fields-short-of-length"),
        pytest.param(record(bytes.fromhex("0000000101")), id="record-ends-before-header-count"),
        pytest.param(bytes.fromhex("20000000010100"), id="record-past-buffer"),
        pytest.param(bytes.fromhex("ffffffffff0f"), id="negative-record-length"),
        pytest.param(record(bytes.fromhex("0000000101020100")), id="null-header-key"),
        pytest.param(record(bytes.fromhex("00000001010202ff00")), id="header-key-not-utf8"),
        pytest.param(record(bytes.fromhex("00000001010101")), id="negative-header-count"),
        pytest.param(record(bytes.fromhex("000000010100")) + b"\x00", id="bytes-left-over"),
        pytest.param(b"\x80\x80", id="unterminated-varint"),
        pytest.param(b"", id="fewer-records-than-count"),
    ],
)
def test_malformed_records_raise_record_decode_error(data):
    with pytest.raises(RecordDecodeError):
        twin.decode_records(data, 1)


def test_negative_record_count_raises():
    with pytest.raises(RecordDecodeError):
        twin.decode_records(b"", -1)


def test_encode_rejects_mismatched_or_ill_typed_arguments():
    with pytest.raises(ValueError):
        twin.encode_records([0, 1], [None], [None], [[]])
    with pytest.raises(ValueError):
        twin.encode_records([2**63], [None], [None], [[]])
    with pytest.raises(TypeError):
        twin.encode_records([0], [None], [None], [[(None, b"")]])
    with pytest.raises(TypeError):
        twin.encode_records([0], ["text key"], [None], [[]])
    with pytest.raises(ValueError):
        twin.encode_records([0], [None], [None], [[(b"\xff", b"")]])


def test_records_match_kafka_python_builder():
    # kafka-python is in the test extra: a missing one fails here, never skips.
    from kafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 20)
    builder.append(0, 1_000, b"k", b"v", [("h", b"x"), ("n", None)])
    builder.append(1, 990, None, b"v2", [])
    builder.append(2, 1_500, b"", None, [])
    built = bytes(builder.build())
    headers = [[("h", b"x"), ("n", None)], [], []]
    area = twin.encode_records([0, -10, 500], [b"k", None, b""], [b"v", b"v2", None], headers)
    assert built[61:] == area
    assert twin.scan_batches(built, 10, 1 << 20) == ([BatchInfo(0, len(built), 0, 2, 3, 1_500, 0)], len(built), SCAN_OK)


def test_scan_walks_batches_and_stops_at_a_torn_tail():
    first, second = batch(base_offset=5, epoch=3, last_offset_delta=1, max_ts=77, count=2, payload=b"ab"), batch(7)
    buf = first + second + second[:30]
    infos, end, status = twin.scan_batches(buf, 10, 1000)
    assert infos == [BatchInfo(0, 63, 5, 1, 2, 77, 3), BatchInfo(63, 61, 7, 0, 1, 0, -1)]
    assert (end, status) == (124, SCAN_TRUNCATED)
    assert twin.scan_batches(first + second, 10, 1000)[1:] == (124, SCAN_OK)
    assert twin.scan_batches(first + second + b"\x00" * 11, 10, 1000)[1:] == (124, SCAN_TRUNCATED)
    assert twin.scan_batches(first + second, 1, 1000) == ([infos[0]], 63, SCAN_OK)
    assert twin.scan_batches(first + second[:16], 10, 1000)[1:] == (63, SCAN_TRUNCATED)


def test_scan_reports_bad_length_before_truncation_and_bad_magic():
    assert twin.scan_batches(batch(length=48), 10, 1000)[1:] == (0, SCAN_BAD_LENGTH)
    assert twin.scan_batches(batch(length=-12), 10, 1000)[1:] == (0, SCAN_BAD_LENGTH)
    assert twin.scan_batches(batch()[:12], 10, 60) == ([], 0, SCAN_BAD_LENGTH)  # over max, torn
    assert twin.scan_batches(batch(length=2**31 - 1)[:20], 10, 1000)[1:] == (0, SCAN_BAD_LENGTH)
    assert twin.scan_batches(batch(magic=1), 10, 1000) == ([], 0, SCAN_BAD_MAGIC)
    assert twin.scan_batches(batch(magic=1)[:20], 10, 1000) == ([], 0, SCAN_TRUNCATED)


def test_every_buffer_kind_is_accepted():
    data = batch() + batch(1)
    with mmap.mmap(-1, len(data)) as mapped:
        mapped.write(data)
        for buf in (data, bytearray(data), memoryview(data), mapped):
            assert twin.scan_batches(buf, 10, 1000)[1:] == (122, SCAN_OK)
            assert twin.offset_index_lookup(buf, 15, 2**40) == 14


def linear_largest_le(keys, target):
    return max((slot for slot, key in enumerate(keys) if key <= target), default=-1)


@pytest.mark.parametrize("entries", [0, 1, 2, 1023, 1024, 1025, 1026, 3000])
def test_offset_index_lookup_matches_a_linear_scan(entries):
    rng = random.Random(entries)
    offsets = sorted(rng.sample(range(2**32), entries))
    buf = b"".join(struct.pack(">II", off, slot) for slot, off in enumerate(offsets))
    targets = [-1, 0, 2**32 - 1, 2**32, 2**70, -(2**70)] + [off + d for off in offsets[::97] for d in (-1, 0, 1)]
    for target in targets:
        assert twin.offset_index_lookup(buf, entries, target) == linear_largest_le(offsets, target)


@pytest.mark.parametrize("entries", [0, 1, 681, 682, 683, 684, 2000])
def test_time_index_lookup_returns_the_largest_slot_even_among_equal_timestamps(entries):
    rng = random.Random(entries)
    stamps, now = [], -50
    for _ in range(entries):
        now += rng.choice([0, 0, 1, 3])
        stamps.append(now)
    buf = b"".join(struct.pack(">qI", stamp, slot) for slot, stamp in enumerate(stamps))
    for target in [-(2**63), -(2**70), 2**63, -51] + [stamp + d for stamp in stamps[::41] for d in (-1, 0, 1)]:
        assert twin.time_index_lookup(buf, entries, target) == linear_largest_le(stamps, target)


def test_index_lookup_checks_entries_against_the_buffer():
    buf = bytes(24)
    assert twin.offset_index_lookup(buf, 3, 0) == 2
    assert twin.time_index_lookup(buf, 2, 0) == 1
    for entries in (-1, 4):
        with pytest.raises(ValueError):
            twin.offset_index_lookup(buf, entries, 0)
    with pytest.raises(ValueError):
        twin.time_index_lookup(buf, 3, 0)
