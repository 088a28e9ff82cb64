"""Partition choice agrees with the Java client (murmur2, keyed records) and
sticks for keyless records until the batch closes.

kafka-python implements the Java client's murmur2 and default partitioner;
its murmur2 returns the unsigned 32-bit pattern where Java returns a signed
int, so the comparison is on the low 32 bits.
"""

from __future__ import annotations

import random
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():  # kafka-python's schema loading uses deprecated importlib APIs
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.partitioner.default import DefaultPartitioner
    from kafka.partitioner.default import murmur2 as kp_murmur2

from riverlog.client.partitioner import StickyPartitioner, murmur2, partition_for_key, to_positive

# From Kafka's UtilsTest.testMurmur2 (Java's signed results).
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("data", "expected"), JAVA_VECTORS.items())
def test_murmur2_matches_java_utils_test_vectors(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


@given(st.binary(min_size=0, max_size=64))
@settings(max_examples=500)
def test_murmur2_matches_kafka_python_on_random_bytes(data: bytes) -> None:
    assert murmur2(data) & 0xFFFFFFFF == kp_murmur2(data)


@given(st.binary(min_size=0, max_size=64))
def test_murmur2_is_a_signed_32_bit_int(data: bytes) -> None:
    assert -(2**31) <= murmur2(data) < 2**31


def test_murmur2_accepts_bytearray_and_memoryview() -> None:
    data = b"a-little-bit-longer-string"
    assert murmur2(bytearray(data)) == murmur2(memoryview(data)) == murmur2(data)
    assert murmur2(memoryview(b"xx" + data)[2:]) == murmur2(data)


def test_murmur2_of_empty_input_is_defined() -> None:
    assert murmur2(b"") == murmur2(bytearray())


def test_to_positive_drops_only_the_sign_bit() -> None:
    assert to_positive(-(2**31)) == 0
    assert to_positive(-1) == 0x7FFFFFFF
    assert to_positive(0) == 0
    assert to_positive(12345) == 12345


class _Cluster:
    """Just enough of kafka-python's ClusterMetadata for DefaultPartitioner."""

    def __init__(self, topic: str, num_partitions: int) -> None:
        self._topic = topic
        self._partitions = set(range(num_partitions))

    def topics(self) -> set[str]:
        return {self._topic}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions


def test_partition_for_key_matches_kafka_python_default_partitioner() -> None:
    rng = random.Random(20240611)
    kp = DefaultPartitioner()
    keys = [b"", b"21", b"foobar", *JAVA_VECTORS] + [
        rng.randbytes(rng.randrange(0, 80)) for _ in range(2000)
    ] + [b"key-%d" % i for i in range(500)]
    for num_partitions in (1, 2, 3, 7, 12, 50, 64, 100, 1000):
        cluster = _Cluster("t", num_partitions)
        for key in keys:
            expected = kp.partition("t", key, key, None, None, cluster)
            assert partition_for_key(key, num_partitions) == expected


def test_partition_for_key_of_java_vectors() -> None:
    for key, hashed in JAVA_VECTORS.items():
        assert partition_for_key(key, 7) == (hashed & 0x7FFFFFFF) % 7


def test_partition_for_key_rejects_no_partitions() -> None:
    with pytest.raises(ValueError):
        partition_for_key(b"k", 0)


def test_sticky_partition_stays_until_its_batch_closes() -> None:
    sticky = StickyPartitioner(random.Random(1))
    first = sticky.partition("t", 10)
    assert all(sticky.partition("t", 10) == first for _ in range(100))
    switched = sticky.on_new_batch("t", first, 10)
    assert switched != first
    assert all(sticky.partition("t", 10) == switched for _ in range(100))


def test_sticky_partition_is_per_topic() -> None:
    sticky = StickyPartitioner(random.Random(2))
    a = sticky.partition("a", 1000)
    b = sticky.partition("b", 1000)
    sticky.on_new_batch("a", a, 1000)
    assert sticky.partition("b", 1000) == b


def test_sticky_partition_is_chosen_among_available_partitions() -> None:
    sticky = StickyPartitioner(random.Random(3))
    available = [2, 5]
    current = sticky.partition("t", 10, available)
    for _ in range(200):
        assert current in available
        nxt = sticky.on_new_batch("t", current, 10, available)
        assert nxt in available and nxt != current
        current = nxt


def test_sticky_partition_falls_back_to_all_partitions_when_none_available() -> None:
    sticky = StickyPartitioner(random.Random(4))
    seen = set()
    current = sticky.partition("t", 4, [])
    for _ in range(200):
        seen.add(current)
        current = sticky.on_new_batch("t", current, 4, None)
    assert seen == {0, 1, 2, 3}


def test_sticky_with_one_choice_stays_on_it() -> None:
    sticky = StickyPartitioner(random.Random(5))
    assert sticky.partition("t", 1) == 0
    assert sticky.on_new_batch("t", 0, 1) == 0
    assert sticky.partition("u", 8, [6]) == 6
    assert sticky.on_new_batch("u", 6, 8, [6]) == 6


def test_closing_a_stale_batch_does_not_switch_again() -> None:
    """Two batches closing for the same old partition switch the topic once."""
    sticky = StickyPartitioner(random.Random(6))
    old = sticky.partition("t", 100)
    new = sticky.on_new_batch("t", old, 100)
    assert sticky.on_new_batch("t", old, 100) == new
    assert sticky.partition("t", 100) == new


def test_sticky_rechooses_when_partition_count_shrinks() -> None:
    sticky = StickyPartitioner(random.Random(7))
    assert sticky.partition("t", 10, [9]) == 9
    assert sticky.partition("t", 3) < 3


def test_sticky_spreads_over_partitions() -> None:
    sticky = StickyPartitioner(random.Random(8))
    counts = [0] * 5
    current = sticky.partition("t", 5)
    for _ in range(5000):
        counts[current] += 1
        current = sticky.on_new_batch("t", current, 5)
    assert min(counts) > 700
