"""encode_records and decode_records: compiled and twin agree on any input.

Hostile records areas are built field by field, with one or two chosen
faults: a field whose declared value lies, or whose varint is over-long,
overflows its width or never ends. The sharpest check walks every such
single fault over a fixed area.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from riverlog.native import twin

from .equivalence import BUFFER_KINDS, DAMAGES, damage, INT64, assert_same, equivalence_settings

# ---- encode_records

HEADER_KEYS = st.one_of(st.text(max_size=6), st.text(max_size=6).map(str.encode))
OPT_BYTES = st.one_of(st.none(), st.binary(max_size=12))
RECORDS = st.lists(
    st.tuples(
        st.one_of(INT64, st.integers(-3, 3)),
        OPT_BYTES,
        OPT_BYTES,
        st.lists(st.tuples(HEADER_KEYS, OPT_BYTES), max_size=3),
    ),
    max_size=6,
)


def columns(records):
    return tuple(list(column) for column in zip(*records)) if records else ([], [], [], [])


@equivalence_settings
@given(records=RECORDS)
def test_encode_records_matches_twin_and_round_trips(records):
    _, area = assert_same("encode_records", *columns(records))
    expected = [
        (i, ts, key, value, [(k if isinstance(k, str) else k.decode(), v) for k, v in hdrs])
        for i, (ts, key, value, hdrs) in enumerate(records)
    ]
    assert assert_same("decode_records", area, len(records)) == ("returned", expected)


ODD = st.sampled_from([None, b"", bytearray(b"ba"), memoryview(b"mv"), "str", 7, 2**63, -(2**63) - 1, "\ud800"])


@equivalence_settings
@given(records=RECORDS, ts=st.one_of(INT64, ODD), key=ODD, value=ODD, hkey=ODD, hvalue=ODD, short=st.integers(0, 4))
def test_encode_records_raises_like_twin_on_odd_arguments(records, ts, key, value, hkey, hvalue, short):
    args = list(columns(records + [(ts, key, value, [(hkey, hvalue)])]))
    if short < 4:  # one column a record short
        args[short] = args[short][:-1]
    assert_same("encode_records", *args)


# ---- decode_records: hostile areas built field by field


def varint(value: int, bits: int = 32, how: str | None = None) -> bytes:
    """Zigzag LEB128 of value, or one of the ways to spoil it."""
    raw = (value << 1) ^ (value >> (bits - 1))
    out = bytearray()
    while True:
        out.append((raw & 0x7F) | (0x80 if raw >= 0x80 else 0))
        raw >>= 7
        if not raw:
            break
    longest = 5 if bits == 32 else 10
    if how in ("padded", "too-long", "high-bits"):  # non-canonical; too long past Kafka's limit
        pad = longest - len(out) + (how == "too-long")
        if pad > 0:
            out[-1] |= 0x80
            out += b"\x80" * (pad - 1) + b"\x00"
        if how == "high-bits":  # bits beyond the width: Kafka drops them
            out[-1] |= 0x70
    elif how == "unterminated":  # runs on into the next field's bytes
        out = bytearray(b | 0x80 for b in out)
    return bytes(out)


LIES = {  # declared value from the true one
    "minus-2": lambda n: n - 2,
    "minus-1": lambda n: n - 1,
    "plus-1": lambda n: n + 1,
    "plus-3": lambda n: n + 3,
    "null": lambda n: -1,
    "zero": lambda n: 0,
    "int32-max": lambda n: 2**31 - 1,
    "int32-min": lambda n: -(2**31),
}
VARINT_FAULTS = ["padded", "too-long", "high-bits", "unterminated"]
FIELDS = ["length", "ts", "offset", "key", "value", "headers", "hkey", "hvalue"]
FAULTS = [(field, how) for field in FIELDS for how in [*LIES, *VARINT_FAULTS]]
FAULTS += [("hkey", "not-utf8"), *(("count", lie) for lie in LIES)]


def build_area(records, faults=()):
    """(records area, count) for [(ts, key, value, [(hkey, hvalue)])], with each
    fault (record index, field, how) applied; header faults hit header 0."""
    spoil = {(at, field): how for at, field, how in faults}

    def enc(at, field, value, bits=32):
        how = spoil.get((at, field))
        if how in LIES:
            value = max(-(2 ** (bits - 1)), min(LIES[how](value), 2 ** (bits - 1) - 1))
        return varint(value, bits, how)

    def put(at, field, data):
        if spoil.get((at, field)) == "not-utf8":
            data = b"\xff" + (data or b"")
        return enc(at, field, -1 if data is None else len(data)) + (data or b"")

    out = bytearray()
    for at, (ts, key, value, headers) in enumerate(records):
        body = bytearray(b"\x00") + enc(at, "ts", ts, bits=64) + enc(at, "offset", at)
        body += put(at, "key", key) + put(at, "value", value) + enc(at, "headers", len(headers))
        for i, (hkey, hvalue) in enumerate(headers):
            body += put(at if i == 0 else None, "hkey", hkey) + put(at if i == 0 else None, "hvalue", hvalue)
        out += enc(at, "length", len(body)) + body
    count = len(records)
    how = spoil.get((0, "count"))
    return bytes(out), LIES[how](count) if how else count


BASE = [  # every field present in every record
    (5, b"k0", b"v0", [(b"h", b"x"), (b"\xc3\xa9", None)]),
    (-7, b"", None, [(b"", b""), (b"z", b"long value")]),
    (2**40, None, b"v2", [(b"a", None), (b"b", b"y")]),
]


@pytest.mark.parametrize("fault", FAULTS, ids="-".join)
def test_decode_records_matches_twin_for_each_single_fault(fault):
    for at in range(len(BASE)):
        assert_same("decode_records", *build_area(BASE, [(at, *fault)]))


UTF8_KEYS = st.text(max_size=3).map(str.encode)
SIMPLE_RECORDS = st.lists(
    st.tuples(INT64, OPT_BYTES, OPT_BYTES, st.lists(st.tuples(UTF8_KEYS, OPT_BYTES), max_size=3)),
    max_size=4,
)
FAULT_AT = st.tuples(st.integers(0, 3), st.sampled_from(FAULTS)).map(lambda t: (t[0], *t[1]))


@equivalence_settings
@given(records=SIMPLE_RECORDS, faults=st.lists(FAULT_AT, max_size=2), kind=BUFFER_KINDS)
def test_decode_records_matches_twin_on_faulty_areas(records, faults, kind):
    data, count = build_area(records, faults)
    assert_same("decode_records", kind(data), count)


# Terminated varints of every length up to 11 bytes, and junk.
VARINT_BYTES = st.one_of(
    st.tuples(st.lists(st.integers(0x80, 0xFF), max_size=10), st.integers(0, 0x7F)).map(
        lambda parts: bytes(parts[0]) + bytes([parts[1]])
    ),
    st.binary(min_size=1, max_size=11),
)


@equivalence_settings
@given(ts=VARINT_BYTES, offset=VARINT_BYTES, length=st.one_of(st.none(), VARINT_BYTES))
def test_varint_and_varlong_reads_match_twin(ts, offset, length):
    body = b"\x00" + ts + offset + b"\x01\x01\x00"  # attributes, deltas, null key and value, no headers
    assert_same("decode_records", (varint(len(body)) if length is None else length) + body, 1)


@equivalence_settings
@given(data=st.binary(max_size=80), kind=BUFFER_KINDS, count=st.integers(-2, 12))
def test_decode_records_matches_twin_on_random_bytes(data, kind, count):
    assert_same("decode_records", kind(data), count)


@equivalence_settings
@given(records=RECORDS.filter(bool), where=st.integers(0, 10**6), byte=st.integers(0, 255),
       how=DAMAGES)
def test_decode_records_matches_twin_on_damaged_bytes(records, where, byte, how):
    data, count = damage(twin.encode_records(*columns(records)), len(records), where, byte, how)
    assert_same("decode_records", data, count)


def test_decode_records_with_more_headers_than_the_first_guess():
    area = twin.encode_records([0], [None], [None], [[(f"h{i}", b"") for i in range(50)]])
    assert_same("decode_records", area, 1)
