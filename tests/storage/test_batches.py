"""validate_batches: the one-batch fast path (a produce request's partition
data) and the native scan must agree on every input, error for error."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riverlog.broker.storage import batches
from riverlog.broker.storage.errors import CorruptRecordError, InvalidRecordError, RecordTooLargeError, StorageError
from riverlog.client.records import build_batch

_ONE = build_batch([(b"k%d" % i, b"v" * (i * 7), 1_700_000_000_000 + i, [("h", b"x")]) for i in range(5)],
                   base_offset=0, partition_leader_epoch=4)  # fmt: skip


def _outcome(fn, data: bytes, max_bytes: int):
    view = memoryview(data)
    try:
        return fn(view, len(view), max_bytes)
    except (CorruptRecordError, InvalidRecordError, RecordTooLargeError, StorageError) as e:
        return type(e), str(e)


def _one(view: memoryview, size: int, max_bytes: int):
    header = batches._HEADER.unpack_from(view)
    assert header[1] + batches.LOG_OVERHEAD == size, "not a one-batch buffer"
    return batches._validate_one(view, size, max_bytes, header)


@settings(max_examples=400, deadline=None)
@given(
    # Mostly in the 61-byte header, where every field the checks read lies.
    flips=st.lists(st.tuples(st.one_of(st.integers(0, 60), st.integers(0, len(_ONE) - 1)), st.integers(1, 255)),
                   max_size=3),  # fmt: skip
    max_bytes=st.sampled_from([len(_ONE) - 1, len(_ONE), 1 << 20]),
)
def test_the_one_batch_path_and_the_scan_agree(flips, max_bytes):
    data = bytearray(_ONE)
    for at, xor in flips:
        if 8 <= at < 12:
            continue  # batchLength: a different length is no longer a one-batch buffer
        data[at] ^= xor
    assert _outcome(_one, bytes(data), max_bytes) == _outcome(batches._validate_scanned, bytes(data), max_bytes)


@pytest.mark.parametrize(
    "mangle, error",
    [
        (lambda b: b[:16] + b"\x01" + b[17:], CorruptRecordError),  # magic 1
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), CorruptRecordError),  # a CRC-covered bit
        (lambda b: b[:23] + b"\xff\xff\xff\xff" + b[27:], InvalidRecordError),  # lastOffsetDelta -1 (CRC'd too)
    ],
)
def test_a_bad_single_batch_is_refused_as_the_scan_refuses_it(mangle, error):
    data = mangle(_ONE)
    with pytest.raises(error) as fast:
        batches.validate_batches(data, 1 << 20)
    assert (type(fast.value), str(fast.value)) == _outcome(batches._validate_scanned, data, 1 << 20)


def test_a_single_batch_over_the_limit_is_too_large():
    with pytest.raises(RecordTooLargeError):
        batches.validate_batches(_ONE, len(_ONE) - 1)


def test_two_batches_and_one_batch_give_the_same_facts_for_it():
    (one,) = batches.validate_batches(_ONE, 1 << 20)
    first, second = batches.validate_batches(_ONE + _ONE, 1 << 20)
    assert one == first and second == one._replace(position=len(_ONE))
