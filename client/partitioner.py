"""Choosing a record's partition, as the Java producer does. Pure: no I/O.

- A record with a key goes to ``to_positive(murmur2(key)) % num_partitions``
  (Java's ``BuiltInPartitioner.partitionForKey``), so keyed records land on
  the same partitions whichever Kafka client wrote them.
- A record without a key goes to the topic's *sticky* partition
  (:class:`StickyPartitioner`): every keyless record goes to one partition
  until its batch closes, then the producer moves on to another. This fills
  batches instead of spreading single records over every partition.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

_SEED = 0x9747B28C
_M = 0x5BD1E995
_R = 24
_MASK32 = 0xFFFFFFFF
_WORD = struct.Struct("<I")


def murmur2(data: bytes | bytearray | memoryview) -> int:
    """MurmurHash2 of ``data`` as Java's ``Utils.murmur2`` computes it.

    Returns Java's signed 32-bit int (-2**31 .. 2**31-1): Kafka's partition
    choice depends on these exact bits, so this must agree with the Java
    client byte for byte. Arithmetic is done on unsigned 32-bit values and
    the sign applied at the end.
    """
    view = memoryview(data).cast("B")
    length = len(view)
    body_bytes = length & ~3
    h = (_SEED ^ length) & _MASK32
    # Little-endian 4-byte words, as Java assembles them from data[i+0..3].
    for (k,) in _WORD.iter_unpack(view[:body_bytes]):
        k = (k * _M) & _MASK32
        k ^= k >> _R
        k = (k * _M) & _MASK32
        h = ((h * _M) & _MASK32) ^ k
    tail_bytes = length - body_bytes
    if tail_bytes == 3:
        h ^= view[body_bytes + 2] << 16
    if tail_bytes >= 2:
        h ^= view[body_bytes + 1] << 8
    if tail_bytes >= 1:
        h ^= view[body_bytes]
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h - 0x1_0000_0000 if h & 0x8000_0000 else h


def to_positive(n: int) -> int:
    """Java's ``Utils.toPositive``: drop the sign bit (not ``abs``, which
    would overflow on ``Integer.MIN_VALUE``)."""
    return n & 0x7FFFFFFF


def partition_for_key(key: bytes | bytearray | memoryview, num_partitions: int) -> int:
    """The partition Java's default partitioner picks for a keyed record."""
    if num_partitions <= 0:
        raise ValueError(f"num_partitions must be positive, got {num_partitions}")
    return to_positive(murmur2(key)) % num_partitions


class StickyPartitioner:
    """Partitions for keyless records: one sticky partition per topic.

    A simplified form of the Java client's sticky partitioner (KIP-480's
    ``StickyPartitionCache``): the sticky partition is chosen at random among
    the *available* partitions (those with a leader) when the caller names
    any, else among all ``num_partitions``. It stays until the producer calls
    :meth:`on_new_batch` because that partition's batch closed (full or
    sent), then moves to a different partition where there is a choice.

    ``rng`` is injectable so tests and simulations can be seeded.
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()
        # topic -> sticky partition; always < the num_partitions last seen.
        self._current: dict[str, int] = {}

    def partition(
        self, topic: str, num_partitions: int, available: Sequence[int] | None = None
    ) -> int:
        """The topic's sticky partition, choosing one on first use.

        Also rechooses when the remembered partition no longer exists
        (``>= num_partitions``, e.g. after a metadata change).
        """
        current = self._current.get(topic)
        if current is None or current >= num_partitions:
            current = self._choose(topic, None, num_partitions, available)
        return current

    def on_new_batch(
        self,
        topic: str,
        prev_partition: int,
        num_partitions: int,
        available: Sequence[int] | None = None,
    ) -> int:
        """The batch for ``prev_partition`` closed: move the topic on.

        Only switches when ``prev_partition`` is still the sticky one, so
        several batches closing at once switch the topic once, as in Java.
        Returns the (possibly new) sticky partition.
        """
        current = self._current.get(topic)
        if current is None or current == prev_partition or current >= num_partitions:
            current = self._choose(topic, prev_partition, num_partitions, available)
        return current

    def _choose(
        self,
        topic: str,
        avoid: int | None,
        num_partitions: int,
        available: Sequence[int] | None,
    ) -> int:
        if num_partitions <= 0:
            raise ValueError(f"num_partitions must be positive, got {num_partitions}")
        pool: Sequence[int] = (
            [p for p in available if 0 <= p < num_partitions] if available else ()
        )
        if not pool:
            pool = range(num_partitions)
        if avoid is not None and len(pool) > 1:
            pool = [p for p in pool if p != avoid] or pool
        chosen = pool[self._rng.randrange(len(pool))]
        self._current[topic] = chosen
        return chosen
