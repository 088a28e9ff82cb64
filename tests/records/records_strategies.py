"""Hypothesis strategies and byte helpers shared by the tests/records modules."""

from __future__ import annotations

import struct

import crc32c
from hypothesis import strategies as st

from riverlog.client.records import Compression, NewRecord

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

header_values = st.none() | st.binary(max_size=20)
headers = st.lists(st.tuples(st.text(max_size=10), header_values), max_size=4)
# Timestamps kept within 2**62 of each other so every delta fits an int64
# (each within 2**61 of zero: two at opposite ends span 2**62).
timestamps = st.integers(min_value=-(2**61), max_value=2**61)
new_records = st.lists(
    st.builds(
        NewRecord,
        key=st.none() | st.binary(max_size=30),
        value=st.none() | st.binary(max_size=200),
        timestamp=timestamps,
        headers=headers,
    ),
    min_size=1,
    max_size=20,
)
codecs = st.sampled_from(list(Compression))


def reseal(buf: bytearray) -> bytearray:
    """Recompute the CRC of a batch whose CRC'd bytes were edited on purpose."""
    struct.pack_into(">I", buf, 17, crc32c.crc32c(bytes(buf[21:])))
    return buf


def as_expected(records) -> list[tuple]:
    """(key, value, timestamp, headers) of NewRecords, in the shape Record has."""
    return [
        (bytes(k) if k is not None else None, bytes(v) if v is not None else None, ts, tuple(map(tuple, h)))
        for k, v, ts, h in records
    ]


def as_read(records) -> list[tuple]:
    return [(r.key, r.value, r.timestamp, r.headers) for r in records]
