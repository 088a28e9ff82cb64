"""__consumer_offsets keys and values: Kafka's layouts, every version read."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from riverlog.broker.group import offsets_format as fmt
from riverlog.broker.group.offsets_format import FormatError, GroupKey, GroupValue, MemberValue, OffsetKey, OffsetValue


def test_offset_key_and_value_bytes_are_kafkas():
    assert fmt.offset_key("g", "t", 7) == b"\x00\x01" + b"\x00\x01g" + b"\x00\x01t" + b"\x00\x00\x00\x07"
    value = fmt.offset_value(OffsetValue(42, 3, "meta", 1_700_000_000_000))
    assert value == (b"\x00\x03" + struct.pack(">qi", 42, 3) + b"\x00\x04meta" + struct.pack(">q", 1_700_000_000_000))
    assert fmt.parse_key(fmt.offset_key("g", "t", 7)) == OffsetKey("g", "t", 7)
    assert fmt.parse_offset_value(value) == OffsetValue(42, 3, "meta", 1_700_000_000_000, -1)


def test_group_key_and_value_round_trip():
    members = (
        MemberValue("m-1", None, "client", "/127.0.0.1", 60_000, 10_000, b"\x00\x01sub", b"\x00\x00asg"),
        MemberValue("m-2", "instance-2", "client", "/127.0.0.1", 60_000, 10_000, b"", b""),
    )
    value = GroupValue("consumer", 5, "range", "m-1", 1_700_000_000_000, members)
    assert fmt.parse_key(fmt.group_key("g")) == GroupKey("g")
    assert fmt.parse_group_value(fmt.group_value(value)) == value
    empty = GroupValue("consumer", 6, None, None, 1, ())
    assert fmt.parse_group_value(fmt.group_value(empty)) == empty


def test_older_value_versions_are_read():
    v0 = b"\x00\x00" + struct.pack(">q", 9) + b"\x00\x00" + struct.pack(">q", 123)
    assert fmt.parse_offset_value(v0) == OffsetValue(9, -1, "", 123, -1)
    v1 = b"\x00\x01" + struct.pack(">q", 9) + b"\x00\x01m" + struct.pack(">qq", 123, 456)
    assert fmt.parse_offset_value(v1) == OffsetValue(9, -1, "m", 123, 456)
    # Group value v0: no rebalance timeout (it was the session timeout), no state timestamp, no instance ids.
    g0 = (b"\x00\x00" + b"\x00\x08consumer" + struct.pack(">i", 2) + b"\x00\x05range" + b"\x00\x01a"
          + struct.pack(">i", 1) + b"\x00\x01a" + b"\x00\x01c" + b"\x00\x01h" + struct.pack(">i", 7000)
          + struct.pack(">i", 1) + b"s" + struct.pack(">i", 1) + b"x")  # fmt: skip
    assert fmt.parse_group_value(g0) == GroupValue(
        "consumer", 2, "range", "a", -1, (MemberValue("a", None, "c", "h", 7000, 7000, b"s", b"x"),)
    )


def test_flexible_v4_values_are_read():
    # Compact strings (length + 1 as an unsigned varint), tagged fields at the end.
    v4 = b"\x00\x04" + struct.pack(">qi", 11, 2) + b"\x03md" + struct.pack(">q", 99) + b"\x00"
    assert fmt.parse_offset_value(v4) == OffsetValue(11, 2, "md", 99, -1)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\x00\x09", b"\x00\x01\x00\x05ab", b"\x00\x02\xff\xfe", b"\x00\x01\x00\x01\xff\x00\x01t"],
)
def test_malformed_keys_raise_format_error(data):
    with pytest.raises(FormatError):
        fmt.parse_key(data)


@given(st.binary(max_size=80))
def test_any_bytes_parse_or_raise_format_error(data):
    for parse in (fmt.parse_key, fmt.parse_offset_value, fmt.parse_group_value):
        try:
            parse(data)
        except FormatError:
            pass


@given(
    group=st.text(max_size=20), topic=st.text(min_size=1, max_size=20), partition=st.integers(0, 2**31 - 1),
    offset=st.integers(-1, 2**63 - 1), epoch=st.integers(-1, 2**31 - 1), metadata=st.text(max_size=30),
    ts=st.integers(0, 2**62),
)  # fmt: skip
def test_offsets_round_trip(group, topic, partition, offset, epoch, metadata, ts):
    assert fmt.parse_key(fmt.offset_key(group, topic, partition)) == OffsetKey(group, topic, partition)
    value = OffsetValue(offset, epoch, metadata, ts)
    assert fmt.parse_offset_value(fmt.offset_value(value)) == value
