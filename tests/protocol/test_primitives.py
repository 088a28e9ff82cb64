"""Wire primitives: round trips, and hostile input fails fast and cleanly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riverlog.client.protocol import primitives as p
from riverlog.client.protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError


def _round(write, read, value):
    out = bytearray()
    write(out, value)
    got, pos = read(memoryview(bytes(out)), 0)
    assert pos == len(out)
    return got


@given(st.integers(-(2**31), 2**31 - 1))
def test_varint_round_trips(n):
    assert _round(p.write_varint, p.read_varint, n) == n


@given(st.integers(-(2**63), 2**63 - 1))
def test_varlong_round_trips(n):
    assert _round(p.write_varlong, p.read_varlong, n) == n


@given(st.integers(0, 2**32 - 1))
def test_unsigned_varint_round_trips(n):
    assert _round(p.write_uvarint, p.read_uvarint, n) == n


def test_zigzag_matches_kafka():
    out = bytearray()
    for n in (0, -1, 1, -2, 63, -64):
        p.write_varint(out, n)
    assert bytes(out) == bytes([0, 1, 2, 3, 126, 127])


@pytest.mark.parametrize("compact", [False, True])
@given(value=st.none() | st.text(st.characters(blacklist_categories=("Cs",)), max_size=20))
def test_nullable_strings_round_trip(compact, value):
    read, write = p.string_codec(compact, nullable=True)
    assert _round(write, read, value) == value


@pytest.mark.parametrize("compact", [False, True])
@given(value=st.none() | st.binary(max_size=40))
def test_nullable_bytes_round_trip(compact, value):
    read, write = p.bytes_codec(compact, nullable=True)
    assert _round(write, read, value) == value


@pytest.mark.parametrize("compact", [False, True])
@given(value=st.none() | st.lists(st.integers(-(2**31), 2**31 - 1), max_size=10))
def test_nullable_arrays_round_trip(compact, value):
    read, write = p.array_codec(p.read_int32, p.write_int32, compact, nullable=True)
    assert _round(write, read, value) == value


def test_classic_string_null_is_length_minus_one():
    read, write = p.string_codec(False, nullable=True)
    out = bytearray()
    write(out, None)
    assert bytes(out) == b"\xff\xff"


def test_null_refused_where_not_nullable():
    read, write = p.string_codec(False, nullable=False)
    with pytest.raises(RemoteProtocolError):
        read(memoryview(b"\xff\xff"), 0)
    with pytest.raises(LocalProtocolError):
        write(bytearray(), None)


def test_negative_lengths_other_than_minus_one_are_refused():
    read, _ = p.bytes_codec(False, nullable=True)
    with pytest.raises(RemoteProtocolError):
        read(memoryview(b"\xff\xff\xff\xfe"), 0)


def test_huge_array_count_fails_before_allocating():
    read, _ = p.array_codec(p.read_int32, p.write_int32, compact=False, nullable=False)
    with pytest.raises(RemoteProtocolError):
        read(memoryview(b"\x7f\xff\xff\xff" + bytes(10)), 0)


def test_length_beyond_remaining_bytes_is_refused():
    read, _ = p.bytes_codec(True, nullable=False)
    with pytest.raises(RemoteProtocolError):
        read(memoryview(b"\x0a" + bytes(3)), 0)


def test_overlong_varint_is_refused():
    with pytest.raises(RemoteProtocolError):
        p.read_uvarint(memoryview(b"\x80" * 6 + b"\x01"), 0)
    with pytest.raises(RemoteProtocolError):
        p.read_varlong(memoryview(b"\xff" * 11), 0)


def test_invalid_utf8_is_refused():
    read, _ = p.string_codec(False, nullable=False)
    with pytest.raises(RemoteProtocolError):
        read(memoryview(b"\x00\x02\xff\xfe"), 0)


def test_uuid_round_trips():
    import uuid
    u = uuid.uuid4()
    assert _round(p.write_uuid, p.read_uuid, u) == u


def _decoders():
    yield from (p.read_int8, p.read_int16, p.read_int32, p.read_int64, p.read_uint16,
                p.read_uint32, p.read_float64, p.read_bool, p.read_uuid, p.read_uvarint,
                p.read_varint, p.read_varlong)
    for compact in (False, True):
        for nullable in (False, True):
            yield p.string_codec(compact, nullable)[0]
            yield p.bytes_codec(compact, nullable)[0]
            yield p.array_codec(p.read_int64, p.write_int64, compact, nullable)[0]
    yield lambda buf, pos: (p.read_tagged_fields(buf, pos, {0: ("x", p.read_int32)}, {}), 0)


@settings(max_examples=300, deadline=None)
@given(junk=st.binary(max_size=40))
def test_random_bytes_into_every_decoder_raise_only_protocol_errors(junk):
    for read in _decoders():
        try:
            read(memoryview(junk), 0)
        except ProtocolError:
            pass
