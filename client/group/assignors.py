"""Partition assignors the group leader runs: range, roundrobin, cooperative-sticky.

Each takes the partition count of every topic and each member's decoded
Subscription and returns every member's Assignment (members with nothing get
an empty one). Names, member order and results follow the Java client's
RangeAssignor, RoundRobinAssignor and CooperativeStickyAssignor, which
librdkafka and kafka-python follow too, so a group that mixes clients gets
the same answer whoever leads. Members are ordered as Java orders them:
static members (with a group.instance.id) first by instance id, then the
rest by member id. Topics missing from `cluster_partitions` are skipped, as
Java skips topics without metadata.

cooperative-sticky (KIP-429 on top of KIP-54's sticky algorithm):

* Owned partitions come from Subscription v1+ `owned_partitions`. Only
  members of the highest generation seen (v2+ `generation_id`, else the
  int32 that older Java members put in `user_data`) keep theirs; a
  partition claimed by two of them is kept by neither; claims on partitions
  that do not exist or that the member no longer subscribes to are dropped.
* With equal subscriptions the target is Java's `constrainedAssign`: each
  member keeps up to its quota (minQuota = P // N, maxQuota for only
  P % N members) of what it owns, and the rest is dealt round robin (members
  and partitions sorted) until every member has its quota.
* With unequal subscriptions the target comes from a local search with the
  same goal as Java's `generalAssign`: keep owned partitions, give each
  free partition to its least loaded subscriber (partitions with fewest
  subscribers first), then move partitions (ones newly given this round
  before owned ones) from a member to a subscriber holding at least two
  fewer, until no such move remains, then give moved partitions back to
  their owner wherever that (with at most one compensating move) stays
  balanced. So members with equal subscriptions differ by at most one
  partition, and nobody 2+ partitions short can take one from a fuller
  member (KIP-54's definition of balanced). Stickiness here is best effort,
  as in Java: about 1 in 500 random two-round rebalances moves a partition
  that a cleverer search would have kept.
* Cooperative rule: a partition that changes owner is left out of the new
  owner's assignment this round (the old owner's target already lacks it),
  so it is revoked first and handed over in the follow-up rebalance.

Known differences from Java, none of which affects correctness:
  - Java visits members in HashMap order when deciding who keeps maxQuota
    partitions; we visit them sorted, so results are deterministic.
  - The unequal-subscriptions search is ours, not a port of generalAssign:
    it meets the same balance and stickiness goals but may pick other
    partitions to move.
  - A partition claimed only by a member of an older generation is held
    back one round like any moving partition (Java's equal-subscriptions
    path hands it over at once), so two members never own it together.
  - No rack-aware assignment (KIP-881): partition racks are not an input.
"""

from __future__ import annotations

import struct
from typing import Iterable, Mapping, Protocol

from riverlog.client.types import TopicPartition

from .consumer_protocol import Assignment, Subscription

EAGER = "eager"
COOPERATIVE = "cooperative"

ClusterPartitions = Mapping[str, int]  # topic -> partition count
Subscriptions = Mapping[str, Subscription]  # member id -> subscription
InstanceIds = Mapping[str, "str | None"]  # member id -> group.instance.id


class Assignor(Protocol):
    name: str
    supported_protocol: str

    def assign(self, cluster_partitions: ClusterPartitions, subscriptions: Subscriptions,
               group_instance_ids: InstanceIds | None = None) -> dict[str, Assignment]: ...


def _member_order(members: Iterable[str], group_instance_ids: InstanceIds | None) -> list[str]:
    # Java's MemberInfo.compareTo: static members first by instance id, then member id.
    ids = group_instance_ids or {}

    def key(member: str) -> tuple:
        instance = ids.get(member)
        return (0, instance, member) if instance is not None else (1, member, "")

    return sorted(members, key=key)


def _topics(sub: Subscription, cluster_partitions: ClusterPartitions) -> set[str]:
    return {t for t in sub.topics if t in cluster_partitions}


def _result(members: Iterable[str], owned: Mapping[str, Iterable[TopicPartition]]) -> dict[str, Assignment]:
    return {m: Assignment(sorted(owned.get(m, ()))) for m in members}


class RangeAssignor:
    """Per topic: members subscribed to it in order, partitions split into
    contiguous ranges, the first (P % N) members one partition more."""

    name = "range"
    supported_protocol = EAGER

    def assign(self, cluster_partitions: ClusterPartitions, subscriptions: Subscriptions,
               group_instance_ids: InstanceIds | None = None) -> dict[str, Assignment]:
        members = _member_order(subscriptions, group_instance_ids)
        out: dict[str, list[TopicPartition]] = {m: [] for m in members}
        for topic in sorted({t for m in members for t in _topics(subscriptions[m], cluster_partitions)}):
            consumers = [m for m in members if topic in subscriptions[m].topics]
            per_member, extra = divmod(cluster_partitions[topic], len(consumers))
            start = 0
            for i, member in enumerate(consumers):
                length = per_member + (1 if i < extra else 0)
                out[member].extend(TopicPartition(topic, q) for q in range(start, start + length))
                start += length
            assert start == cluster_partitions[topic]
        return _result(members, out)


class RoundRobinAssignor:
    """All partitions of all subscribed topics sorted by (topic, partition),
    dealt to the members in order, skipping members not subscribed to the
    partition's topic (the cursor moves on from whoever took the last one)."""

    name = "roundrobin"
    supported_protocol = EAGER

    def assign(self, cluster_partitions: ClusterPartitions, subscriptions: Subscriptions,
               group_instance_ids: InstanceIds | None = None) -> dict[str, Assignment]:
        members = _member_order(subscriptions, group_instance_ids)
        topics_of = {m: _topics(subscriptions[m], cluster_partitions) for m in members}
        out: dict[str, list[TopicPartition]] = {m: [] for m in members}
        cursor = 0
        for topic in sorted(set().union(*topics_of.values()) if members else ()):
            for partition in range(cluster_partitions[topic]):
                # Some member subscribes to `topic`, so this ends within one lap.
                while topic not in topics_of[members[cursor]]:
                    cursor = (cursor + 1) % len(members)
                out[members[cursor]].append(TopicPartition(topic, partition))
                cursor = (cursor + 1) % len(members)
        return _result(members, out)


# --- cooperative-sticky -----------------------------------------------------


def _generation(sub: Subscription) -> int | None:
    """The member's generation, or None when it did not say (Java's memberData)."""
    if sub.generation_id >= 0:
        return sub.generation_id
    if sub.user_data is not None and len(sub.user_data) >= 4:
        # Java's CooperativeStickyAssignor before Subscription v2: user data
        # starts with the int32 generation.
        generation = struct.unpack_from(">i", sub.user_data)[0]
        return generation if generation >= 0 else None
    return None


def _valid_owned(cluster_partitions: ClusterPartitions, subscriptions: Subscriptions,
                 members: list[str]) -> dict[str, list[TopicPartition]]:
    """Each member's owned partitions that it may keep (see the module docstring)."""
    generations = {m: _generation(subscriptions[m]) for m in members}
    known = [g for g in generations.values() if g is not None]
    newest = max(known) if known else None
    claims: dict[TopicPartition, list[str]] = {}
    owned: dict[str, list[TopicPartition]] = {m: [] for m in members}
    for member in members:
        if newest is not None and generations[member] != newest:
            continue  # stale: what it owned may have moved in a generation it missed
        topics = subscriptions[member].topics
        for tp in dict.fromkeys(subscriptions[member].owned_partitions):  # dedupe, keep order
            if tp.topic in topics and 0 <= tp.partition < cluster_partitions.get(tp.topic, 0):
                claims.setdefault(tp, []).append(member)
                owned[member].append(tp)
    doubly_claimed = {tp for tp, owners in claims.items() if len(owners) > 1}
    if doubly_claimed:
        for member in members:
            owned[member] = [tp for tp in owned[member] if tp not in doubly_claimed]
    return owned


def _constrained_assign(partitions: list[TopicPartition], members: list[str],
                        owned: Mapping[str, list[TopicPartition]]) -> dict[str, list[TopicPartition]]:
    """Java's AbstractStickyAssignor.constrainedAssign (all subscriptions equal)."""
    min_quota, extra = divmod(len(partitions), len(members))
    max_quota = min_quota + (1 if extra else 0)
    out: dict[str, list[TopicPartition]] = {}
    over_min = 0  # members holding max_quota; at most `extra`
    under_min: list[str] = []  # members below min_quota
    at_min: list[str] = []  # members at min_quota that may still take one more
    for member in members:
        mine = owned[member]
        if len(mine) < min_quota:
            out[member] = list(mine)
            under_min.append(member)
        elif len(mine) >= max_quota and over_min < extra:
            over_min += 1
            if over_min == extra:
                at_min.clear()
            out[member] = mine[:max_quota]
        else:
            out[member] = mine[:min_quota]
            if over_min < extra:
                at_min.append(member)
    taken = {tp for ps in out.values() for tp in ps}
    free = [tp for tp in partitions if tp not in taken]
    cursor = 0
    for tp in free:
        if under_min:
            cursor %= len(under_min)
            member = under_min[cursor]
            out[member].append(tp)
            if len(out[member]) == min_quota:
                del under_min[cursor]
                at_min.append(member)
            else:
                cursor += 1
        else:
            assert at_min and over_min < extra, "quota arithmetic broke"
            member = at_min.pop(0)
            out[member].append(tp)
            over_min += 1
    assert all(min_quota <= len(ps) <= max_quota for ps in out.values())
    return out


def _is_balanced(held: Mapping[str, set[TopicPartition]], topics_of: Mapping[str, set[str]]) -> bool:
    """KIP-54's balance: nobody 2+ partitions short could take one from a fuller member."""
    held_topics = {m: {tp.topic for tp in ps} for m, ps in held.items()}
    return not any(
        len(held[a]) >= len(held[b]) + 2 and held_topics[a] & topics_of[b]
        for a in held for b in held
    )


def _restore(tp: TopicPartition, back: str, held: dict[str, set[TopicPartition]],
             owner: dict[TopicPartition, str], move, subscribers: Mapping[str, list[str]],
             topics_of: Mapping[str, set[str]], previous: Mapping[TopicPartition, str]) -> bool:
    """Move `tp` back to `back` if that, alone or with one partition `back`
    did not own moving on to another subscriber, stays balanced; else undo."""
    was = owner[tp]
    move(tp, back)
    if _is_balanced(held, topics_of):
        return True
    spares = sorted(q for q in held[back] if previous.get(q) != back)
    for q in dict((q.topic, q) for q in spares).values():  # one per topic
        for other in subscribers[q.topic]:
            if other != back:
                move(q, other)
                if _is_balanced(held, topics_of):
                    return True
                move(q, back)
    move(tp, was)
    return False


def _general_assign(partitions: list[TopicPartition], members: list[str],
                    topics_of: Mapping[str, set[str]],
                    owned: Mapping[str, list[TopicPartition]]) -> dict[str, list[TopicPartition]]:
    """Sticky assignment for unequal subscriptions (see the module docstring)."""
    subscribers: dict[str, list[str]] = {}
    for member in members:
        for topic in sorted(topics_of[member]):
            subscribers.setdefault(topic, []).append(member)
    held: dict[str, set[TopicPartition]] = {m: set(owned[m]) for m in members}
    owner = {tp: m for m in members for tp in owned[m]}
    previous = dict(owner)  # partition -> member that owns it and may keep it

    def move(tp: TopicPartition, to: str) -> None:
        held[owner[tp]].discard(tp)
        held[to].add(tp)
        owner[tp] = to

    free = [tp for tp in partitions if tp not in owner]
    free.sort(key=lambda tp: (len(subscribers[tp.topic]), tp))
    for tp in free:
        member = min(subscribers[tp.topic], key=lambda m: (len(held[m]), m))
        held[member].add(tp)
        owner[tp] = member

    # Balance. Each move lowers sum(count**2) by at least 2, so this ends.
    while True:
        step = None
        for donor in sorted(members, key=lambda m: (-len(held[m]), m)):
            for topic in sorted({tp.topic for tp in held[donor]}):
                takers = [m for m in subscribers[topic] if len(held[m]) <= len(held[donor]) - 2]
                if takers:
                    mine = sorted(tp for tp in held[donor] if tp.topic == topic)
                    # Move one the donor did not own before this round if it can.
                    fresh = [tp for tp in mine if previous.get(tp) != donor]
                    step = (fresh or mine)[-1], min(takers, key=lambda m: (len(held[m]), m))
                    break
            if step:
                break
        if step is None:
            break
        move(*step)

    # Restore: give a moved partition back to its previous owner when that,
    # plus at most one move of something the owner did not have before to
    # another subscriber, stays balanced. Each success keeps one more owned
    # partition in place, so this ends.
    restored = True
    while restored:
        restored = False
        for tp in sorted(tp for tp, m in previous.items() if owner[tp] != m):
            if _restore(tp, previous[tp], held, owner, move, subscribers, topics_of, previous):
                restored = True
    assert _is_balanced(held, topics_of)
    return {m: sorted(held[m]) for m in members}


def sticky_assign(cluster_partitions: ClusterPartitions,
                  subscriptions: Subscriptions) -> dict[str, list[TopicPartition]]:
    """The target assignment: balanced, keeping owned partitions where it can."""
    members = sorted(subscriptions)
    if not members:
        return {}
    topics_of = {m: _topics(subscriptions[m], cluster_partitions) for m in members}
    partitions = [TopicPartition(t, q) for t in sorted(set().union(*topics_of.values()))
                  for q in range(cluster_partitions[t])]
    owned = _valid_owned(cluster_partitions, subscriptions, members)
    # Java compares the raw topic sets, topics without metadata included.
    first = set(subscriptions[members[0]].topics)
    if all(set(subscriptions[m].topics) == first for m in members):
        return _constrained_assign(partitions, members, owned)
    return _general_assign(partitions, members, topics_of, owned)


def cooperative_adjust(cluster_partitions: ClusterPartitions,
                       target: Mapping[str, list[TopicPartition]],
                       subscriptions: Subscriptions) -> dict[str, list[TopicPartition]]:
    """Leave out of each member's target every partition it may not keep as
    its own (see `_valid_owned`) while another member claims it, so that
    member revokes it first (Java's computePartitionsTransferringOwnership
    and adjustAssignment). Claims are read raw, stale generations included:
    a partition is handed over only once nobody else says it has it."""
    members = sorted(subscriptions)
    kept = _valid_owned(cluster_partitions, subscriptions, members)
    claimed_by: dict[TopicPartition, set[str]] = {}
    for member in members:
        for tp in subscriptions[member].owned_partitions:
            claimed_by.setdefault(tp, set()).add(member)
    out = {}
    for member, partitions in target.items():
        mine = set(kept.get(member, ()))
        out[member] = [tp for tp in partitions
                       if tp in mine or not claimed_by.get(tp, set()) - {member}]
    return out


class CooperativeStickyAssignor:
    """KIP-429's cooperative-sticky: the sticky target, minus the partitions
    that must first be revoked by their current owner."""

    name = "cooperative-sticky"
    supported_protocol = COOPERATIVE

    def assign(self, cluster_partitions: ClusterPartitions, subscriptions: Subscriptions,
               group_instance_ids: InstanceIds | None = None) -> dict[str, Assignment]:
        # Java's sticky assignors order members by member id only.
        target = sticky_assign(cluster_partitions, subscriptions)
        return _result(target, cooperative_adjust(cluster_partitions, target, subscriptions))

    @staticmethod
    def subscription_user_data(generation_id: int) -> bytes:
        """User data Java's CooperativeStickyAssignor sends: the int32
        generation, for leaders that read Subscription v1 only."""
        return struct.pack(">i", generation_id)


ASSIGNORS: dict[str, Assignor] = {
    a.name: a for a in (RangeAssignor(), RoundRobinAssignor(), CooperativeStickyAssignor())
}
