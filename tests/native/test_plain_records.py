"""native.plain_records (native/py_records.c): a producer batch's records
area encoded from its Python lists in C must be byte for byte what the
general encoder makes, and anything not plain must be left to it (None)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from riverlog import native
from riverlog.client.records import build_batch, iter_batches
from riverlog.client.records.builder import build_batch_columns

_field = st.one_of(st.none(), st.binary(max_size=300))


def _available() -> bool:
    # Compiled and not forced to the twins (RIVERLOG_NO_NATIVE=1): then it exists.
    assert (native.plain_records is not None) == native.NATIVE
    return native.NATIVE


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(-(2**40), 2**40), _field, _field), min_size=1, max_size=40),
       base=st.integers(-(2**40), 2**40))  # fmt: skip
def test_plain_records_are_the_general_encoders_bytes(rows, base):
    timestamps, keys, values = (list(col) for col in zip(*rows))
    general = native.encode_records([t - base for t in timestamps], keys, values, [()] * len(rows))
    if _available():
        assert native.plain_records(timestamps, base, keys, values) == general


def test_what_is_not_plain_is_left_to_the_general_encoder():
    if not _available():
        return
    ok = ([1, 2], 1, [None, b"k"], [b"v", None])
    assert native.plain_records(*ok) is not None
    for timestamps, base, keys, values in [
        ([1, 2.0], 1, [None, None], [b"v", b"v"]),  # a float timestamp
        ([1, 2], 1, [None, "k"], [b"v", b"v"]),  # a str key
        ([1, 2], 1, [None, None], [b"v", bytearray(b"v")]),  # bytes-like, not bytes
        ([1, 2], 1, [None], [b"v", b"v"]),  # lengths differ
        ([1, 2**63 - 1], -5, [None, None], [b"v", b"v"]),  # a delta past int64
        ([1, 2**70], 1, [None, None], [b"v", b"v"]),  # a timestamp past int64
        ([], 0, [], []),
    ]:
        assert native.plain_records(timestamps, base, keys, values) is None


def test_a_producer_batch_reads_back_whichever_encoder_made_it():
    timestamps = [1_700_000_000_000 + i for i in range(50)]
    keys = [None if i % 3 else b"k%d" % i for i in range(50)]
    values = [b"v" * i if i % 5 else None for i in range(50)]
    fast = build_batch_columns(timestamps, keys, values, [()] * 50, base_offset=7)
    slow = build_batch([(k, v, t, []) for t, k, v in zip(timestamps, keys, values)], base_offset=7)
    assert fast == slow
    (batch,) = iter_batches(fast)
    assert [(r.offset, r.timestamp, r.key, r.value) for r in batch.records()] == [
        (7 + i, t, k, v) for i, (t, k, v) in enumerate(zip(timestamps, keys, values))
    ]
