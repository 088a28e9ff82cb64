"""Replica placement: round robin over the unfenced brokers, leaders spread.

Partition p of a topic gets replicas ``brokers[(start + p + j) % n]`` for
j in 0..rf-1, so consecutive partitions lead on consecutive brokers and no
broker holds two replicas of one partition (rf <= n). Deterministic (Kafka
picks ``start`` at random); ``start`` comes from the image so that leaders
of successive topics spread too. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence


def place_replicas(
    broker_ids: Sequence[int], first_partition: int, count: int, replication_factor: int, start: int = 0
) -> list[tuple[int, ...]]:
    """Replica lists for partitions first_partition..first_partition+count-1; the first replica leads."""
    n = len(broker_ids)
    if not 1 <= replication_factor <= n:
        raise ValueError(f"replication factor {replication_factor} needs 1..{n} brokers")
    out = []
    for p in range(first_partition, first_partition + count):
        i = start + p
        out.append(tuple(broker_ids[(i + j) % n] for j in range(replication_factor)))
    return out
