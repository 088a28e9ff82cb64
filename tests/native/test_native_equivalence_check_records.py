"""check_records: compiled and twin agree on any input, and find what they should.

The hostile areas are those of decode_records' tests (one or two faults per
area, field by field), random and damaged bytes, and the faults only the
broker's walk looks for: offset deltas out of order and header keys that are
not UTF-8.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from riverlog.native import (
    RECORDS_BAD_HEADER_KEY,
    RECORDS_BAD_OFFSET_DELTA,
    RECORDS_MALFORMED,
    RECORDS_OK,
    RECORDS_TOO_FEW,
    RECORDS_TOO_MANY,
    twin,
)

from .equivalence import BUFFER_KINDS, DAMAGES, damage, assert_same, equivalence_settings
from .test_native_equivalence_records import (
    BASE,
    FAULT_AT,
    FAULTS,
    RECORDS,
    SIMPLE_RECORDS,
    VARINT_BYTES,
    build_area,
    columns,
    varint,
)


@equivalence_settings
@given(records=RECORDS, kind=BUFFER_KINDS)
def test_every_encoded_area_is_accepted(records, kind):
    area = twin.encode_records(*columns(records))
    assert assert_same("check_records", kind(area), len(records)) == ("returned", (RECORDS_OK, len(records)))


@pytest.mark.parametrize("fault", FAULTS, ids="-".join)
def test_check_records_matches_twin_for_each_single_fault(fault):
    for at in range(len(BASE)):
        data, count = build_area(BASE, [(at, *fault)])
        result = assert_same("check_records", data, count)
        if count < 0:
            assert result == ("raised", ValueError)
            continue
        try:
            twin.decode_records(data, count)
        except ValueError:
            assert result[1][0] != RECORDS_OK  # what consumers cannot decode is never let through


@equivalence_settings
@given(records=SIMPLE_RECORDS, faults=st.lists(FAULT_AT, max_size=2), kind=BUFFER_KINDS)
def test_check_records_matches_twin_on_faulty_areas(records, faults, kind):
    data, count = build_area(records, faults)
    result = assert_same("check_records", kind(data), count)
    if count >= 0:
        status = result[1][0]
        try:
            twin.decode_records(data, count)
        except ValueError:
            assert status != RECORDS_OK  # the walk never lets through what consumers cannot decode


@equivalence_settings
@given(ts=VARINT_BYTES, offset=VARINT_BYTES, length=st.one_of(st.none(), VARINT_BYTES))
def test_varint_and_varlong_reads_match_twin(ts, offset, length):
    body = b"\x00" + ts + offset + b"\x01\x01\x00"  # attributes, deltas, null key and value, no headers
    assert_same("check_records", (varint(len(body)) if length is None else length) + body, 1)


@equivalence_settings
@given(sizes=st.lists(st.one_of(st.integers(0, 70), st.integers(8180, 8200), st.integers(60, 20_000)), max_size=4),
       where=st.integers(0, 10**6), byte=st.integers(0, 255))  # fmt: skip
def test_one_two_and_three_byte_lengths_match_twin(sizes, where, byte):
    """Lengths around the walk's fast paths (1 byte under 64, 2 under 8192)."""
    records = [(0, None, b"v" * n, [("k" * (n % 100), b"h" * n)]) for n in sizes]
    data = twin.encode_records(*columns(records))
    assert assert_same("check_records", data, len(sizes))[1] == (RECORDS_OK, len(sizes))
    if data:
        at = where % len(data)
        assert_same("check_records", data[:at] + bytes([byte]) + data[at + 1 :], len(sizes))


@equivalence_settings
@given(data=st.binary(max_size=120), kind=BUFFER_KINDS, count=st.integers(-2, 40))
def test_check_records_matches_twin_on_random_bytes(data, kind, count):
    assert_same("check_records", kind(data), count)


@equivalence_settings
@given(records=RECORDS.filter(bool), where=st.integers(0, 10**6), byte=st.integers(0, 255),
       how=DAMAGES)  # fmt: skip
def test_check_records_matches_twin_on_damaged_bytes(records, where, byte, how):
    data, count = damage(twin.encode_records(*columns(records)), len(records), where, byte, how)
    assert_same("check_records", data, count)


def _area_at(offset_deltas, header_key=b"h"):
    out = bytearray()
    for delta in offset_deltas:
        body = bytearray(b"\x00")
        for field in (0, delta, -1, -1, 1, len(header_key)):  # ts, offset, null key and value, 1 header
            twin.write_varint(body, field)
        body += header_key
        twin.write_varint(body, -1)
        twin.write_varint(out, len(body))
        out += body
    return bytes(out)


@equivalence_settings
@given(deltas=st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=6))
def test_offset_deltas_must_run_from_0_in_order(deltas):
    status, index = assert_same("check_records", _area_at(deltas), len(deltas))[1]
    wrong = [i for i, d in enumerate(deltas) if d != i]
    assert (status, index) == ((RECORDS_BAD_OFFSET_DELTA, wrong[0]) if wrong else (RECORDS_OK, len(deltas)))


@equivalence_settings
@given(key=st.binary(max_size=8))
def test_header_keys_must_be_utf8_as_python_decodes_it(key):
    try:
        key.decode("utf-8")
        expected = (RECORDS_OK, 2)
    except UnicodeDecodeError:
        expected = (RECORDS_BAD_HEADER_KEY, 1)
    area = _area_at([0], b"ok") + _area_at([1], key)
    assert assert_same("check_records", area, 2)[1] == expected


@pytest.mark.parametrize(
    "key",
    [b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe0\x80\xaf", b"\xf0\x8f\xbf\xbf", b"\xc3", b"\x80",
     b"\xff", b"\xf8\x88\x80\x80\x80"],
    ids=["overlong-nul", "surrogate", "past-10ffff", "overlong-3", "overlong-4", "cut", "continuation", "ff",
         "5-byte"],
)  # fmt: skip
def test_not_utf8_header_keys(key):
    assert assert_same("check_records", _area_at([0], key), 1)[1] == (RECORDS_BAD_HEADER_KEY, 0)


@pytest.mark.parametrize(
    "key", ["é", "€", "𝄞", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\U0010ffff"], ids=lambda k: f"U+{ord(k):04X}"
)
def test_utf8_header_keys_at_the_edges(key):
    assert assert_same("check_records", _area_at([0], key.encode()), 1)[1] == (RECORDS_OK, 1)


def test_count_against_the_area():
    area = _area_at([0, 1, 2])
    assert assert_same("check_records", area, 4)[1] == (RECORDS_TOO_FEW, 3)
    assert assert_same("check_records", area, 2)[1] == (RECORDS_TOO_MANY, 2)
    assert assert_same("check_records", area, 2**70)[1] == (RECORDS_TOO_FEW, 3)
    assert assert_same("check_records", b"", 0)[1] == (RECORDS_OK, 0)
    assert assert_same("check_records", area[:-1], 3)[1] == (RECORDS_MALFORMED, 2)
    assert assert_same("check_records", area, -1) == ("raised", ValueError)
    assert assert_same("check_records", area, 1.0) == ("raised", TypeError)
