"""The consumer group's embedded protocol: Subscription/Assignment bytes and
the range, roundrobin and cooperative-sticky assignors.

Interop is checked against kafka-python (ConsumerProtocolSubscription and
ConsumerProtocolAssignment v0-3, RangePartitionAssignor, StickyPartitionAssignor)
and aiokafka (RoundRobinPartitionAssignor: kafka-python 3.0's raises
KeyError whenever a member must be skipped, so it is used only when none is).
kafka-python's sticky assignor is Kafka's pre-2.8 algorithm, not Java's
current constrainedAssign, so beyond fresh equal subscriptions (where both
give the round robin answer) the sticky assignor is checked by its rules.
"""

from __future__ import annotations

import random
import struct
from collections import Counter, namedtuple

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from riverlog.client.group.assignors import (
    ASSIGNORS,
    COOPERATIVE,
    EAGER,
    CooperativeStickyAssignor,
    RangeAssignor,
    RoundRobinAssignor,
    sticky_assign,
)
from riverlog.client.group.consumer_protocol import (
    Assignment,
    ConsumerProtocolError,
    Subscription,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)
from riverlog.client.types import TopicPartition as TP

from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from kafka.protocol.consumer.metadata import (
    ConsumerProtocolAssignment as KpAssignment,
    ConsumerProtocolSubscription as KpSubscription,
)
from aiokafka.coordinator.assignors.roundrobin import (
    RoundRobinPartitionAssignor as AioRoundRobin,
)
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata as AioMetadata

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies -------------------------------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
partition_ids = st.integers(-(2**31), 2**31 - 1)
user_data = st.none() | st.binary(max_size=20)
topic_partitions = st.lists(st.builds(TP, names, partition_ids), max_size=8)


def _grouped(partitions):
    """Lists whose topics come in contiguous runs: what a decode hands back."""
    out = []
    for topic in dict.fromkeys(tp.topic for tp in partitions):
        out += [tp for tp in partitions if tp.topic == topic]
    return out


subscriptions = st.builds(
    Subscription,
    topics=st.lists(names, max_size=6),
    user_data=user_data,
    owned_partitions=topic_partitions.map(_grouped),
    generation_id=st.integers(-(2**31), 2**31 - 1),
    rack_id=st.none() | names,
)
assignments = st.builds(Assignment, partitions=topic_partitions.map(_grouped), user_data=user_data)


def _as_of(sub: Subscription, version: int) -> Subscription:
    """What survives encoding at `version`: later fields fall to their defaults."""
    return Subscription(
        sub.topics,
        sub.user_data,
        sub.owned_partitions if version >= 1 else [],
        sub.generation_id if version >= 2 else -1,
        sub.rack_id if version >= 3 else None,
    )


def _kp_partitions(cls, partitions):
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    return [cls.TopicPartition(topic=t, partitions=ps) for t, ps in by_topic.items()]


# --- Subscription and Assignment bytes --------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2, 3])
@FAST
@given(sub=subscriptions)
def test_subscription_round_trips_at_every_version(version, sub):
    assert decode_subscription(encode_subscription(sub, version)) == _as_of(sub, version)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
@FAST
@given(a=assignments)
def test_assignment_round_trips_at_every_version(version, a):
    assert decode_assignment(encode_assignment(a, version)) == a


@pytest.mark.parametrize("version", [0, 1, 2, 3])
@FAST
@given(sub=subscriptions)
def test_subscription_bytes_equal_kafka_pythons(version, sub):
    theirs = KpSubscription(
        version=version, topics=sub.topics, user_data=sub.user_data,
        owned_partitions=_kp_partitions(KpSubscription, sub.owned_partitions),
        generation_id=sub.generation_id, rack_id=sub.rack_id,
    ).encode()
    assert encode_subscription(sub, version) == theirs
    back = KpSubscription.decode(theirs)
    assert back.topics == sub.topics and back.user_data == sub.user_data


@pytest.mark.parametrize("version", [0, 1, 2, 3])
@FAST
@given(a=assignments)
def test_assignment_bytes_equal_kafka_pythons(version, a):
    theirs = KpAssignment(
        version=version,
        assigned_partitions=_kp_partitions(KpAssignment, a.partitions),
        user_data=a.user_data,
    ).encode()
    assert encode_assignment(a, version) == theirs


@FAST
@given(topics=st.lists(names, max_size=5), data=st.binary(max_size=10))
def test_subscription_v0_bytes_equal_aiokafkas(topics, data):
    assert encode_subscription(Subscription(topics, data), 0) == AioMetadata(0, topics, data).encode()


def test_javadoc_subscription_v0_bytes():
    assert encode_subscription(Subscription(["a"]), 0) == (
        b"\x00\x00" b"\x00\x00\x00\x01" b"\x00\x01a" b"\xff\xff\xff\xff"
    )


def test_fields_a_version_lacks_are_dropped_on_encode():
    sub = Subscription(["t"], None, [TP("t", 0)], 7, "rack")
    assert encode_subscription(sub, 0) == encode_subscription(Subscription(["t"]), 0)
    assert decode_subscription(encode_subscription(sub, 2)).rack_id is None


def test_newer_subscription_version_decodes_the_fields_we_know():
    sub = Subscription(["a", "b"], b"ud", [TP("a", 1), TP("a", 2)], 9, "r1")
    v3 = encode_subscription(sub, 3)
    # v4 as Kafka would extend it: appended fields we do not know.
    v4 = struct.pack(">h", 4) + v3[2:] + struct.pack(">i", 42) + b"\x00\x03xyz"
    assert decode_subscription(v4) == sub
    assert decode_subscription(struct.pack(">h", 0x7FFF) + v3[2:]) == sub


def test_newer_assignment_version_decodes_the_fields_we_know():
    a = Assignment([TP("t", 0), TP("t", 3)], b"x")
    v4 = struct.pack(">h", 4) + encode_assignment(a, 3)[2:] + b"\x00\x00\x00\x05more!"
    assert decode_assignment(v4) == a


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_every_truncation_is_a_consumer_protocol_error(version):
    sub = encode_subscription(Subscription(["a", "bb"], b"u", [TP("a", 0)], 3, "r"), version)
    asg = encode_assignment(Assignment([TP("a", 0), TP("bb", 1)], b"u"), version)
    for data, decode in ((sub, decode_subscription), (asg, decode_assignment)):
        for cut in range(len(data)):
            with pytest.raises(ConsumerProtocolError):
                decode(data[:cut])


def test_bad_input_errors_are_value_errors():
    with pytest.raises(ValueError):
        decode_assignment(b"")
    with pytest.raises(ValueError, match="negative version"):
        decode_subscription(b"\xff\xff" + encode_subscription(Subscription([]), 0)[2:])
    with pytest.raises(ValueError, match="UTF-8"):
        decode_subscription(b"\x00\x00\x00\x00\x00\x01\x00\x01\xff\xff\xff\xff\xff")
    with pytest.raises(ValueError, match="not nullable"):  # a null topic
        decode_subscription(b"\x00\x00\x00\x00\x00\x01\xff\xff\xff\xff\xff\xff")
    with pytest.raises(ValueError, match="exceeds"):  # a count of 2**31-1
        decode_assignment(b"\x00\x00\x7f\xff\xff\xff")


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=64))
def test_random_bytes_decode_or_raise_only_consumer_protocol_error(data):
    for decode in (decode_subscription, decode_assignment):
        try:
            decode(data)
        except ConsumerProtocolError:
            pass


@settings(max_examples=300, deadline=None)
@given(sub=subscriptions, cut=st.integers(0, 200), noise=st.binary(min_size=1, max_size=8))
def test_mangled_valid_bytes_decode_or_raise_only_consumer_protocol_error(sub, cut, noise):
    data = bytearray(encode_subscription(sub))
    pos = cut % (len(data) + 1)
    data[pos:pos + len(noise)] = noise
    try:
        decode_subscription(bytes(data))
    except ConsumerProtocolError:
        pass


# --- assignor inputs --------------------------------------------------------

Member = namedtuple("Member", "member_id group_instance_id metadata")


class Cluster:
    """The slice of kafka-python's / aiokafka's ClusterMetadata assignors use."""

    def __init__(self, counts):
        self.counts = counts

    def topics(self):
        return set(self.counts)

    def partitions_for_topic(self, topic):
        return set(range(self.counts[topic])) if topic in self.counts else None


member_ids = st.sampled_from(
    [f"consumer-{i}-{h}" for i, h in enumerate("3f9a 08bc c41e 7d20 e5f1 19ad 6b37 a0c2".split())]
)


@st.composite
def groups(draw, equal=None):
    """(topic -> partition count, member id -> Subscription): 1-6 members,
    1-4 topics of 1-10 partitions, random subscriptions."""
    topics = [f"topic-{c}" for c in "abcd"[: draw(st.integers(1, 4))]]
    cluster = {t: draw(st.integers(1, 10)) for t in topics}
    members = draw(st.lists(member_ids, min_size=1, max_size=6, unique=True))
    same = draw(st.booleans()) if equal is None else equal
    pick = st.lists(st.sampled_from(topics), min_size=1, unique=True)
    common = draw(pick)
    subs = {m: Subscription(list(common) if same else draw(pick)) for m in members}
    return cluster, subs


def _ours(assignor, cluster, subs, **kw):
    return {m: sorted(a.partitions) for m, a in assignor.assign(cluster, subs, **kw).items()}


def _kafka_python(assignor, cluster, subs):
    members = [Member(m, None, KpSubscription(version=0, topics=s.topics, user_data=b""))
               for m, s in subs.items()]
    out = assignor.assign(Cluster(cluster), members)
    return {m: sorted(TP(t, q) for t, qs in a.assigned_partitions for q in qs) for m, a in out.items()}


def _aiokafka_roundrobin(cluster, subs):
    members = {m: AioMetadata(0, s.topics, b"") for m, s in subs.items()}
    out = AioRoundRobin.assign(Cluster(cluster), members)
    return {m: sorted(a.partitions()) for m, a in out.items()}


def _shuffled(subs, seed):
    items = list(subs.items())
    random.Random(seed).shuffle(items)
    return dict(items)


def _check_complete(cluster, subs, result):
    """Every partition of every subscribed topic assigned exactly once, and
    only to a member subscribed to its topic."""
    assert set(result) == set(subs)
    owners = Counter(tp for ps in result.values() for tp in ps)
    wanted = {TP(t, q) for s in subs.values() for t in s.topics for q in range(cluster[t])}
    assert set(owners) == wanted and set(owners.values()) <= {1}
    for member, ps in result.items():
        assert all(tp.topic in subs[member].topics for tp in ps)


def _check_at_most_once(subs, result):
    """A first-round cooperative assignment: nothing twice, only to subscribers."""
    assert set(Counter(tp for ps in result.values() for tp in ps).values()) <= {1}
    for member, ps in result.items():
        assert all(tp.topic in subs[member].topics for tp in ps)


def _check_balanced(subs, result):
    """Members with the same subscriptions differ by at most one partition,
    and nobody 2+ short could take a partition from a fuller member (KIP-54)."""
    for a in subs:
        for b in subs:
            if set(subs[a].topics) == set(subs[b].topics):
                assert len(result[a]) - len(result[b]) <= 1
            if len(result[a]) >= len(result[b]) + 2:
                assert not any(tp.topic in subs[b].topics for tp in result[a])


# --- range ------------------------------------------------------------------


def test_range_javadoc_example():
    cluster = {"t0": 3, "t1": 3}
    subs = {"C0": Subscription(["t0", "t1"]), "C1": Subscription(["t0", "t1"])}
    assert _ours(RangeAssignor(), cluster, subs) == {
        "C0": [TP("t0", 0), TP("t0", 1), TP("t1", 0), TP("t1", 1)],
        "C1": [TP("t0", 2), TP("t1", 2)],
    }


@FAST
@given(group=groups(), seed=st.integers())
def test_range_equals_kafka_pythons_and_is_complete_and_deterministic(group, seed):
    cluster, subs = group
    ours = _ours(RangeAssignor(), cluster, subs)
    assert ours == _kafka_python(RangePartitionAssignor, cluster, subs)
    assert ours == _ours(RangeAssignor(), cluster, _shuffled(subs, seed))
    _check_complete(cluster, subs, ours)
    for topic in cluster:  # per topic, subscribers' shares differ by at most one
        shares = [sum(tp.topic == topic for tp in ours[m]) for m in subs if topic in subs[m].topics]
        assert not shares or max(shares) - min(shares) <= 1


def test_range_puts_static_members_first_by_instance_id():
    subs = {"a": Subscription(["t"]), "b": Subscription(["t"]), "c": Subscription(["t"])}
    out = _ours(RangeAssignor(), {"t": 3}, subs, group_instance_ids={"c": "i-1", "b": "i-2"})
    assert out == {"c": [TP("t", 0)], "b": [TP("t", 1)], "a": [TP("t", 2)]}


# --- roundrobin -------------------------------------------------------------


def test_roundrobin_javadoc_example_skips_unsubscribed_members():
    cluster = {"t0": 1, "t1": 2, "t2": 3}
    subs = {"C0": Subscription(["t0"]), "C1": Subscription(["t0", "t1"]),
            "C2": Subscription(["t0", "t1", "t2"])}
    assert _ours(RoundRobinAssignor(), cluster, subs) == {
        "C0": [TP("t0", 0)],
        "C1": [TP("t1", 0)],
        "C2": [TP("t1", 1), TP("t2", 0), TP("t2", 1), TP("t2", 2)],
    }


@FAST
@given(group=groups(), seed=st.integers())
def test_roundrobin_equals_aiokafkas_and_is_complete_and_deterministic(group, seed):
    cluster, subs = group
    ours = _ours(RoundRobinAssignor(), cluster, subs)
    assert ours == _aiokafka_roundrobin(cluster, subs)
    assert ours == _ours(RoundRobinAssignor(), cluster, _shuffled(subs, seed))
    _check_complete(cluster, subs, ours)


@FAST
@given(group=groups(equal=True))
def test_roundrobin_equals_kafka_pythons_and_is_balanced_with_equal_subscriptions(group):
    cluster, subs = group
    ours = _ours(RoundRobinAssignor(), cluster, subs)
    assert ours == _kafka_python(RoundRobinPartitionAssignor, cluster, subs)
    sizes = [len(ps) for ps in ours.values()]
    assert max(sizes) - min(sizes) <= 1


# --- cooperative-sticky -----------------------------------------------------


def _owning(subs, owned, generation=1):
    return {m: Subscription(s.topics, None, list(owned.get(m, [])), generation) for m, s in subs.items()}


def _target(cluster, subs):
    return {m: sorted(ps) for m, ps in sticky_assign(cluster, subs).items()}


@FAST
@given(group=groups(equal=True))
def test_fresh_sticky_with_equal_subscriptions_equals_kafka_pythons(group):
    cluster, subs = group
    ours = _ours(CooperativeStickyAssignor(), cluster, subs)
    assert ours == _kafka_python(StickyPartitionAssignor(), cluster, subs)


@FAST
@given(group=groups(), seed=st.integers())
def test_fresh_sticky_is_complete_balanced_and_deterministic(group, seed):
    cluster, subs = group
    ours = _ours(CooperativeStickyAssignor(), cluster, subs)
    _check_complete(cluster, subs, ours)
    _check_balanced(subs, ours)
    assert ours == _ours(CooperativeStickyAssignor(), cluster, _shuffled(subs, seed))


@FAST
@given(group=groups())
def test_a_stable_group_keeps_every_partition_where_it_is(group):
    cluster, subs = group
    first = _target(cluster, subs)
    again = _ours(CooperativeStickyAssignor(), cluster, _owning(subs, first))
    assert again == first


@FAST
@given(group=groups(equal=True), data=st.data())
def test_after_a_member_leaves_the_others_keep_all_they_owned(group, data):
    cluster, subs = group
    assume(len(subs) >= 2)
    first = _target(cluster, subs)
    leaver = data.draw(st.sampled_from(sorted(subs)))
    rest = {m: s for m, s in subs.items() if m != leaver}
    second = _ours(CooperativeStickyAssignor(), cluster, _owning(rest, first))
    for member in rest:
        assert set(first[member]) <= set(second[member])
    _check_complete(cluster, rest, second)  # nobody else owned the leaver's share
    _check_balanced(rest, second)


@FAST
@given(group=groups(), newcomer=st.lists(st.sampled_from(["topic-a", "topic-b"]), min_size=1, unique=True),
       data=st.data())
def test_partitions_changing_owner_are_revoked_before_they_are_reassigned(group, newcomer, data):
    cluster, subs = group
    subs["zz-new"] = Subscription([t for t in newcomer if t in cluster] or [next(iter(cluster))])
    # Everyone but the newcomer owns its share of an earlier assignment, and
    # some members changed subscription since.
    earlier = _target(cluster, {m: s for m, s in subs.items() if m != "zz-new"})
    for m in data.draw(st.lists(st.sampled_from(sorted(subs)), unique=True, max_size=2)):
        subs[m] = Subscription(sorted(cluster)[: data.draw(st.integers(1, len(cluster)))])
    joined = _owning(subs, earlier)
    target = _target(cluster, joined)
    round1 = _ours(CooperativeStickyAssignor(), cluster, joined)
    owner = {tp: m for m, ps in earlier.items() for tp in ps}
    for member, ps in target.items():
        for tp in ps:
            moving = tp in owner and owner[tp] != member
            assert (tp in round1[member]) is not moving
            if moving:
                assert tp not in round1[owner[tp]]
    # The members revoke what they lost and rejoin: the second round hands
    # out what is free. With equal subscriptions it keeps all they have; with
    # unequal ones stickiness is best effort (as in Java's generalAssign).
    round2 = _ours(CooperativeStickyAssignor(), cluster, _owning(joined, round1, generation=2))
    if len({frozenset(s.topics) for s in subs.values()}) == 1:
        assert all(set(round1[m]) <= set(round2[m]) for m in subs)
        _check_complete(cluster, subs, round2)
        _check_balanced(subs, round2)
    else:
        _check_at_most_once(subs, round2)


def test_a_partition_claimed_twice_in_one_generation_goes_to_neither_at_first():
    cluster = {"t": 2}
    subs = {"a": Subscription(["t"], None, [TP("t", 0), TP("t", 1)], 5),
            "b": Subscription(["t"], None, [TP("t", 1)], 5)}
    assert _ours(CooperativeStickyAssignor(), cluster, subs) == {"a": [TP("t", 0)], "b": []}
    assert _target(cluster, subs) == {"a": [TP("t", 0)], "b": [TP("t", 1)]}


def test_claims_from_an_older_generation_do_not_count():
    cluster = {"t": 4}
    subs = {"a": Subscription(["t"], None, [TP("t", 0), TP("t", 1)], 7),
            "b": Subscription(["t"], None, [TP("t", 2), TP("t", 3)], 7),
            "stale": Subscription(["t"], None, [TP("t", 0), TP("t", 1), TP("t", 2)], 6)}
    target = _target(cluster, subs)
    assert set(target["a"]) >= {TP("t", 0)} and set(target["b"]) >= {TP("t", 2)}
    assert _ours(CooperativeStickyAssignor(), cluster, subs)["stale"] == []


def test_generation_in_user_data_counts_for_pre_v2_members():
    user_data = CooperativeStickyAssignor.subscription_user_data
    cluster = {"t": 2}
    subs = {"old": Subscription(["t"], user_data(3), [TP("t", 0), TP("t", 1)]),
            "new": Subscription(["t"], user_data(4), [TP("t", 1)])}
    assert _target(cluster, subs) == {"new": [TP("t", 1)], "old": [TP("t", 0)]}


@FAST
@given(group=groups(), claims=st.lists(st.tuples(member_ids, st.sampled_from(["topic-a", "topic-d", "gone"]),
                                                 st.integers(-1, 12), st.integers(-1, 3)), max_size=30))
def test_nonsense_claims_still_give_a_valid_assignment(group, claims):
    cluster, subs = group
    owned: dict = {}
    for member, topic, partition, generation in claims:
        if member in subs:
            owned.setdefault(member, (generation, []))[1].append(TP(topic, partition))
    subs = {m: Subscription(s.topics, None, owned.get(m, (0, []))[1], owned.get(m, (0, []))[0])
            for m, s in subs.items()}
    target = _target(cluster, subs)
    _check_complete(cluster, subs, target)
    _check_balanced(subs, target)
    round1 = _ours(CooperativeStickyAssignor(), cluster, subs)
    assert all(set(round1[m]) <= set(target[m]) for m in subs)
    _check_at_most_once(subs, round1)


# --- the registry -----------------------------------------------------------


def test_assignor_names_and_protocols_are_javas():
    assert {n: a.supported_protocol for n, a in ASSIGNORS.items()} == {
        "range": EAGER, "roundrobin": EAGER, "cooperative-sticky": COOPERATIVE,
    }
    assert RangePartitionAssignor.name == "range" and RoundRobinPartitionAssignor.name == "roundrobin"


def test_no_members_no_assignment():
    for assignor in ASSIGNORS.values():
        assert assignor.assign({"t": 3}, {}) == {}


def test_topics_without_metadata_are_skipped():
    subs = {"a": Subscription(["t", "missing"]), "b": Subscription(["missing"])}
    for assignor in ASSIGNORS.values():
        assert _ours(assignor, {"t": 2}, subs) == {"a": [TP("t", 0), TP("t", 1)], "b": []}
