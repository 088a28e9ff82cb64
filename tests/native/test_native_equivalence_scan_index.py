"""scan_batches and the index lookups: compiled and twin agree on any input."""

from __future__ import annotations

import array
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riverlog.native import twin

from .equivalence import (
    BUFFER_KINDS,
    COMPILED_IMPORT_ERROR,
    INT32,
    INT64,
    assert_same,
    equivalence_settings,
    outcome,
    require_compiled,
)


def test_compiled_module_is_built():
    assert COMPILED_IMPORT_ERROR is None, f"native._native is not built: {COMPILED_IMPORT_ERROR}"


# ---- scan_batches


@st.composite
def batch_bytes(draw):
    payload = draw(st.binary(max_size=24))
    head = struct.pack(">qii", draw(INT64), 49 + len(payload), draw(INT32))
    fields = struct.pack(">4xhiqqqhii", 0, draw(INT32), 0, draw(INT64), 0, 0, 0, draw(INT32))
    return head + b"\x02" + fields + payload


BAD_LENGTHS = st.one_of(
    st.sampled_from([47, 48, 49, 50]), st.sampled_from([-12, -13, 0, 2**31 - 12, 2**31 - 1, -(2**31)]), INT32
)
FAULTS = ["length", "magic", "cut", "flip", "tail"]


@st.composite
def batch_log(draw):
    """Well-formed batches end to end with up to two faults: a batch's length
    or magic, a cut, a flipped byte, or bytes after the last batch. Returns
    the bytes and the batches' sizes."""
    batches = draw(st.lists(batch_bytes(), max_size=4))
    sizes = [len(b) for b in batches]
    faults = draw(st.lists(st.sampled_from(FAULTS), max_size=2, unique=True))
    for fault in ("length", "magic"):
        if batches and fault in faults:
            i = draw(st.integers(0, len(batches) - 1))
            victim = bytearray(batches[i])
            if fault == "length":
                victim[8:12] = struct.pack(">i", draw(BAD_LENGTHS))
            else:
                victim[16] = draw(st.sampled_from([0, 1, 3, 255]))
            batches[i] = bytes(victim)
    data = b"".join(batches)
    if "cut" in faults:
        data = data[: draw(st.integers(0, len(data)))]
    if "flip" in faults and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if "tail" in faults:
        data += draw(st.binary(min_size=1, max_size=70))
    return data, sizes


MAX_BATCH_BYTES = st.one_of(st.integers(-1, 100), st.sampled_from([2**31 + 11, 2**63 - 1, 2**63, 2**80]))


@settings(parent=equivalence_settings, max_examples=400)  # cheap, and the rules are many
@given(
    log=st.one_of(batch_log(), st.binary(max_size=200).map(lambda data: (data, []))),
    kind=BUFFER_KINDS,
    max_batches=st.integers(-1, 6),
    limit=st.data(),
)
def test_scan_batches_matches_twin(log, kind, max_batches, limit):
    data, sizes = log
    # A limit right at a batch's size, or anywhere.
    near = st.sampled_from(sizes).flatmap(lambda size: st.integers(size - 1, size + 1)) if sizes else MAX_BATCH_BYTES
    max_batch_bytes = limit.draw(st.one_of(MAX_BATCH_BYTES, near))
    assert_same("scan_batches", kind(data), max_batches, max_batch_bytes)


def fixed_batch(base_offset: int, payload: bytes) -> bytes:
    head = struct.pack(">qii", base_offset, 49 + len(payload), 7)
    return head + b"\x02" + struct.pack(">4xhiqqqhii", 0, 2, 0, 99, 0, 0, 0, 3) + payload


FIXED_LOG = [fixed_batch(0, b""), fixed_batch(3, b"abc"), fixed_batch(6, b"x" * 20)]
FIXED_LIMITS = [60, 61, 62, 63, 64, 80, 81, 82, 2**63]


@pytest.mark.parametrize("at", range(len(FIXED_LOG)))
def test_scan_batches_matches_twin_for_each_single_fault(at):
    """Every bad length or magic in one batch, every cut, under limits at the batch sizes."""
    variants = []
    for length in [47, 48, 49, 50, -12, -13, 0, 2**31 - 12, 2**31 - 1, -(2**31)]:
        variants.append(struct.pack(">i", length).join([FIXED_LOG[at][:8], FIXED_LOG[at][12:]]))
    for magic in (0, 1, 3, 255):
        variants.append(FIXED_LOG[at][:16] + bytes([magic]) + FIXED_LOG[at][17:])
    logs = [b"".join(FIXED_LOG[:at] + [v] + FIXED_LOG[at + 1 :]) for v in variants]
    whole = b"".join(FIXED_LOG)
    logs += [whole[:cut] for cut in range(len(whole) + 1)]
    for data in logs:
        for limit in FIXED_LIMITS:
            for max_batches in (at, at + 1, 5):
                assert_same("scan_batches", data, max_batches, limit)


# ---- index lookups

TARGETS = st.one_of(st.integers(-3, 300), st.integers(-(2**70), 2**70), st.sampled_from([2**32, 2**63, -(2**63)]))


@equivalence_settings
@given(data=st.binary(max_size=160), kind=BUFFER_KINDS, entries=st.integers(-2, 22), target=TARGETS)
def test_index_lookups_match_twin_on_any_bytes(data, kind, entries, target):
    assert_same("offset_index_lookup", kind(data), entries, target)
    assert_same("time_index_lookup", kind(data), entries, target)


@st.composite
def long_index(draw, entry, steps, start, key_range):
    """An index often longer than the warm section, sorted or with a few
    entries corrupted (around the warm boundary, say), and a target near its keys."""
    rng = draw(st.randoms(use_true_random=False))
    count = draw(st.sampled_from([0, 1, 2, 5, 682, 683, 684, 1024, 1025, 1026, 1500]))
    key, keys = draw(start), []
    for _ in range(count):
        keys.append(key)
        key += rng.choice(steps)
    if keys and draw(st.booleans()):
        first_warm = max(0, count - 1 - 8192 // entry.size)
        spots = [0, first_warm - 1, first_warm, first_warm + 1, count - 1]
        for slot in draw(st.lists(st.sampled_from(spots), max_size=3)):
            keys[slot % count] = rng.randint(*key_range)
    buf = b"".join(entry.pack(k, slot) for slot, k in enumerate(keys))
    target = draw(st.one_of(TARGETS, st.sampled_from(keys or [0]).flatmap(lambda k: st.integers(k - 1, k + 1))))
    return buf, count, target


@equivalence_settings
@given(index=long_index(struct.Struct(">II"), [1, 2, 7, 1000], st.integers(0, 2**31), (0, 2**32 - 1)))
def test_offset_index_lookup_matches_twin_on_long_indexes(index):
    assert_same("offset_index_lookup", *index)


@equivalence_settings
@given(index=long_index(struct.Struct(">qI"), [0, 0, 1, 5, 2**40], INT64.map(lambda t: t // 2), (-(2**63), 2**63 - 1)))
def test_time_index_lookup_matches_twin_on_long_indexes(index):
    assert_same("time_index_lookup", *index)


def test_odd_buffers_raise_alike():
    strided = memoryview(bytes(240))[::2]
    ints = memoryview(array.array("i", range(30)))  # len() counts items, not bytes
    for buf in (strided, ints, "text", None, 5):
        assert_same("scan_batches", buf, 5, 100)
        for entries in (0, 1, 10):
            assert_same("offset_index_lookup", buf, entries, 7)
            assert_same("time_index_lookup", buf, entries, 7)
        assert_same("decode_records", buf, 1)


def _assert_pinned_same(name: str, buf: bytes, entries, target) -> None:
    """A lookup on each side's pinned buffer answers as the twin on the plain one."""
    expected = outcome(getattr(twin, name), buf, entries, target)
    for impl in (twin, require_compiled()):
        pinned = impl.pin_buffer(buf)
        assert outcome(getattr(impl, name), pinned, entries, target) == expected, impl.__name__
        impl.unpin_buffer(pinned)


@equivalence_settings
@given(data=st.binary(max_size=160), entries=st.one_of(st.integers(-2, 22), st.sampled_from([2**63, 2**70])), target=TARGETS)
def test_pinned_lookups_match_twin_on_any_bytes(data, entries, target):
    _assert_pinned_same("offset_index_lookup", data, entries, target)
    _assert_pinned_same("time_index_lookup", data, entries, target)


@equivalence_settings
@given(index=long_index(struct.Struct(">II"), [1, 2, 7, 1000], st.integers(0, 2**31), (0, 2**32 - 1)))
def test_pinned_offset_index_lookup_matches_twin_on_long_indexes(index):
    _assert_pinned_same("offset_index_lookup", *index)
