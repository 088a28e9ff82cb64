"""Replica placement: round robin over the unfenced brokers, leaders spread, racks apart.

Partition p of a topic gets replicas ``order[(start + p + j) % n]`` for
j in 0..rf-1, so consecutive partitions lead on consecutive brokers and no
broker holds two replicas of one partition (rf <= n). Deterministic (Kafka
picks ``start`` at random); ``start`` comes from the image so that leaders
of successive topics spread too. Pure.

Rack-aware (when every broker has a rack, as Kafka requires): ``order``
alternates racks (``broker_order``: a1, b1, c1, a2, b2, ...), and each
partition's followers are the next brokers in that order whose rack holds
no replica of it yet, until every rack holds one (Kafka's rack-aware
assignment), so one rack's loss takes at most ceil(rf / racks) replicas.
Without racks ``order`` is the broker list as given, as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import zip_longest


def broker_order(broker_ids: Sequence[int], racks: Mapping[int, str | None] | None = None) -> list[int]:
    """The list placement walks: racks alternated if every broker has one, else ``broker_ids``."""
    if not _all_racked(broker_ids, racks):
        return list(broker_ids)
    by_rack: dict[str, list[int]] = {}
    for b in sorted(broker_ids):
        by_rack.setdefault(racks[b], []).append(b)  # type: ignore[index]
    rounds = zip_longest(*(by_rack[r] for r in sorted(by_rack)))
    return [b for round_ in rounds for b in round_ if b is not None]


def place_replicas(
    broker_ids: Sequence[int],
    first_partition: int,
    count: int,
    replication_factor: int,
    start: int = 0,
    racks: Mapping[int, str | None] | None = None,
) -> list[tuple[int, ...]]:
    """Replica lists for partitions first_partition..first_partition+count-1; the first replica leads.

    ``start`` indexes ``broker_order(broker_ids, racks)``; ``racks`` maps
    broker id to rack (None or a missing rack: placement ignores racks).
    """
    n = len(broker_ids)
    if not 1 <= replication_factor <= n:
        raise ValueError(f"replication factor {replication_factor} needs 1..{n} brokers")
    order = broker_order(broker_ids, racks)
    rack_of = racks if _all_racked(broker_ids, racks) else None
    out = []
    for p in range(first_partition, first_partition + count):
        i = start + p
        if rack_of is None:
            out.append(tuple(order[(i + j) % n] for j in range(replication_factor)))
        else:
            out.append(_rack_aware(order, i % n, replication_factor, rack_of))
    return out


def _all_racked(broker_ids: Sequence[int], racks: Mapping[int, str | None] | None) -> bool:
    return bool(racks) and all(racks.get(b) is not None for b in broker_ids)  # type: ignore[union-attr]


def _rack_aware(order: list[int], first: int, rf: int, racks: Mapping[int, str | None]) -> tuple[int, ...]:
    n, all_racks = len(order), {racks[b] for b in order}
    chosen, used = [order[first]], {racks[order[first]]}
    k = first
    while len(chosen) < rf:
        k = (k + 1) % n
        if k == first:  # a full turn: every rack holds a replica, so any broker not chosen will do
            used = set(all_racks)
        b = order[k]
        if b not in chosen and (racks[b] not in used or used == all_racks):
            chosen.append(b)
            used.add(racks[b])
    return tuple(chosen)
