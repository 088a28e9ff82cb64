"""Broker lifecycle rules on the controller (KIP-631): registration, heartbeats, fencing, clean election."""

import itertools
import random

import pytest

from riverlog.broker.metadata.broker_lifecycle import (
    BrokerHeartbeatTracker,
    decide_fence,
    decide_heartbeat,
    decide_register,
)
from riverlog.broker.metadata.decisions import TopicDefaults, decide_create_topics
from riverlog.broker.metadata.image import MetadataImage
from riverlog.broker.metadata.records import FenceBrokerRecord, PartitionRecord, RegisterBrokerRecord, UnfenceBrokerRecord
from riverlog.client.protocol.errors import ErrorCode as E

INC = [f"{i:032x}" for i in range(1, 100)]  # incarnation ids
ALL = frozenset(range(100))


class Cluster:
    """An image that decisions are committed to, one entry per decision, as the controller does."""

    def __init__(self) -> None:
        self.image = MetadataImage.empty("c", 1)
        self.ids = itertools.count(1)

    def commit(self, records):
        if records:
            self.image = self.image.apply_entry(records, self.image.offset + 1)
        return self.image

    def register(self, node, inc=None, rack=None, live=frozenset()):
        result, records = decide_register(self.image, node, inc or INC[node], "h", 9000 + node, rack, live=live)
        self.commit(records)
        return result

    def heartbeat(self, node, offset=None, want_fence=False, want_shut_down=False, epoch=None):
        b = self.image.brokers[node]
        result, records = decide_heartbeat(
            self.image, node, b.epoch if epoch is None else epoch,
            self.image.offset if offset is None else offset, want_fence, want_shut_down,
        )  # fmt: skip
        self.commit(records)
        return result

    def start(self, node, rack=None):
        assert self.register(node, rack=rack).error_code == E.NONE
        assert not self.heartbeat(node).is_fenced

    def fence(self, node):
        return self.commit(decide_fence(self.image, node))

    def create(self, name, partitions, rf):
        new_id = lambda: f"{next(self.ids):032x}"  # noqa: E731
        [r], records = decide_create_topics(self.image, [(name, partitions, rf, {})], TopicDefaults(), new_id)
        self.commit(records)
        return r

    def part(self, name, p=0):
        return self.image.topics[name].partitions[p]


def test_registration_is_fenced_and_its_epoch_is_the_entry_offset():
    c = Cluster()
    result, [rec] = decide_register(c.image, 1, INC[1], "h", 9092, "r1", live=frozenset())
    assert result.error_code == E.NONE and isinstance(rec, RegisterBrokerRecord) and rec.fenced
    c.commit([RegisterBrokerRecord(9, "x", 1)])  # something before, so the offset is not 0
    c.commit([rec])
    b = c.image.brokers[1]
    assert b.fenced and b.epoch == c.image.offset == 1 and b.incarnation_id == INC[1] and b.rack == "r1"


@pytest.mark.parametrize(
    "node, inc, host, port",
    [(-1, INC[1], "h", 1), (1, INC[1], "", 1), (1, INC[1], "h", 0), (1, INC[1], "h", 65536), (1, "nope", "h", 1)],
)
def test_bad_registration_is_invalid_request(node, inc, host, port):
    result, records = decide_register(MetadataImage.empty("c", 1), node, inc, host, port, None, live=frozenset())
    assert result.error_code == E.INVALID_REQUEST and result.error_message and records == []


def test_duplicate_registration_is_refused_only_while_the_other_incarnation_is_live_and_unfenced():
    c = Cluster()
    c.start(1)
    before = c.image
    assert c.register(1, inc=INC[50], live=frozenset({1})).error_code == E.DUPLICATE_BROKER_REGISTRATION
    assert c.image is before
    # the old incarnation missed its session: the new one replaces it, with a new epoch
    assert c.register(1, inc=INC[50], live=frozenset()).error_code == E.NONE
    b = c.image.brokers[1]
    assert b.incarnation_id == INC[50] and b.epoch > before.brokers[1].epoch and b.fenced


def test_a_fenced_live_incarnation_does_not_block_a_new_one():
    c = Cluster()
    c.register(1)  # never unfenced
    assert c.register(1, inc=INC[50], live=frozenset({1})).error_code == E.NONE


def test_a_new_incarnation_takes_over_from_a_dead_unfenced_one_whose_partitions_move_first():
    c = Cluster()
    for n in (1, 2):
        c.start(n)
    c.create("t", 2, 2)
    led_by_1 = [p for p in range(2) if c.part("t", p).leader == 1]
    c.register(1, inc=INC[50])  # restarted before its session expired
    for p in range(2):
        assert c.part("t", p).leader == 2
    assert all(c.part("t", p).isr == (2,) for p in led_by_1)


def test_heartbeat_from_an_unknown_broker_is_broker_id_not_registered():
    result, records = decide_heartbeat(MetadataImage.empty("c", 1), 5, 0, 0, False, False)
    assert result.error_code == E.BROKER_ID_NOT_REGISTERED and result.is_fenced and records == []


def test_heartbeat_with_a_stale_broker_epoch_is_refused():
    c = Cluster()
    c.register(1)
    old_epoch = c.image.brokers[1].epoch
    c.register(1, inc=INC[50])
    result, records = decide_heartbeat(c.image, 1, old_epoch, c.image.offset, False, False)
    assert result.error_code == E.STALE_BROKER_EPOCH and records == []


def test_unfence_only_when_caught_up_to_the_registration():
    c = Cluster()
    c.register(1)
    epoch = c.image.brokers[1].epoch
    behind = c.heartbeat(1, offset=epoch - 1)
    assert behind.error_code == E.NONE and not behind.is_caught_up and behind.is_fenced
    assert c.image.brokers[1].fenced
    result, records = decide_heartbeat(c.image, 1, epoch, epoch, False, False)
    assert result.is_caught_up and not result.is_fenced and records == [UnfenceBrokerRecord(1, epoch)]
    c.commit(records)
    assert not c.image.brokers[1].fenced
    assert c.heartbeat(1).is_fenced is False and c.image.offset == epoch + 1  # steady state: no records


def test_a_broker_that_wants_to_stay_fenced_is_not_unfenced():
    c = Cluster()
    c.register(1)
    result = c.heartbeat(1, want_fence=True)
    assert result.is_caught_up and result.is_fenced and c.image.brokers[1].fenced


def test_fencing_an_rf1_leader_makes_the_partition_offline_and_unfencing_brings_it_back_at_a_higher_epoch():
    c = Cluster()
    c.start(1)
    c.create("t", 1, 1)
    before = c.part("t")
    c.fence(1)
    offline = c.part("t")
    assert c.image.brokers[1].fenced
    assert offline.leader == -1 and offline.isr == (1,)  # unclean election off: it keeps its place
    assert offline.leader_epoch == before.leader_epoch + 1 and offline.partition_epoch == before.partition_epoch + 1
    assert not c.heartbeat(1).is_fenced
    back = c.part("t")
    assert back.leader == 1 and back.leader_epoch == offline.leader_epoch + 1
    assert back.partition_epoch == offline.partition_epoch + 1


def test_fencing_an_rf3_leader_elects_the_next_isr_member_and_shrinks_the_isr():
    c = Cluster()
    for n in (1, 2, 3):
        c.start(n)
    c.create("t", 1, 3)
    before = c.part("t")
    leader, nxt = before.replicas[0], before.replicas[1]
    c.fence(leader)
    after = c.part("t")
    assert after.leader == nxt and leader not in after.isr and set(after.isr) == set(before.replicas) - {leader}
    assert after.leader_epoch == before.leader_epoch + 1 and after.partition_epoch == before.partition_epoch + 1


def test_election_skips_fenced_isr_members():
    c = Cluster()
    for n in (1, 2, 3):
        c.start(n)
    c.create("t", 1, 3)
    r = c.part("t").replicas
    c.fence(r[1])
    c.fence(r[0])
    assert c.part("t").leader == r[2]


def test_fencing_a_follower_shrinks_the_isr_and_keeps_the_leader_epoch():
    c = Cluster()
    for n in (1, 2):
        c.start(n)
    c.create("t", 1, 2)
    before = c.part("t")
    c.fence(before.replicas[1])
    after = c.part("t")
    assert after.leader == before.leader and after.isr == (before.leader,)
    assert after.leader_epoch == before.leader_epoch and after.partition_epoch == before.partition_epoch + 1


def test_fence_records_name_the_current_epoch_and_stale_ones_do_not_apply():
    c = Cluster()
    c.start(1)
    epoch = c.image.brokers[1].epoch
    assert decide_fence(c.image, 1) == [FenceBrokerRecord(1, epoch)]
    with pytest.raises(ValueError):
        c.image.apply_entry([FenceBrokerRecord(1, epoch + 7)], c.image.offset + 1)
    assert decide_fence(c.image, 42) == []


def test_controlled_shutdown_moves_leadership_fences_and_then_allows_shutdown():
    c = Cluster()
    for n in (1, 2):
        c.start(n)
    c.create("t", 4, 2)
    c.create("solo", 1, 1)
    result = c.heartbeat(1, want_shut_down=True)
    assert result.error_code == E.NONE and result.is_fenced and result.should_shut_down
    assert c.image.brokers[1].fenced
    assert all(c.part("t", p).leader == 2 for p in range(4))
    assert c.part("solo").leader in (-1, 2)  # placed on 1 it goes offline: no other replica
    again = c.heartbeat(1, want_shut_down=True)
    assert again.should_shut_down and again.is_fenced


def test_heartbeat_tracker_expires_brokers_after_the_session_timeout():
    t = BrokerHeartbeatTracker()
    t.touch(1, 1_000)
    t.touch(2, 5_000)
    assert t.expired(10_000, 9_000) == [] and t.live(10_000, 9_000) == {1, 2}
    assert t.expired(10_001, 9_000) == [1] and t.live(10_001, 9_000) == {2}
    t.touch(1, 10_002)
    t.touch(1, 3)  # an older time never moves it back
    assert t.expired(19_002, 9_000) == [2] and t.live(19_002, 9_000) == {1}
    t.forget(2)
    assert t.expired(30_000, 9_000) == [1] and t.live(30_000, 9_000) == frozenset()


def test_rack_aware_placement_spreads_replicas_over_racks():
    c = Cluster()
    for n, rack in [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]:
        c.start(n, rack=rack)
    assert c.create("t", 12, 3).error_code == E.NONE
    racks = {n: b.rack for n, b in c.image.brokers.items()}
    for part in c.image.topics["t"].partitions.values():
        assert len({racks[r] for r in part.replicas}) == 3
    leaders = [part.leader for part in c.image.topics["t"].partitions.values()]
    assert sorted(leaders) == sorted(list(range(1, 7)) * 2)


def test_placement_ignores_racks_unless_every_broker_has_one():
    c = Cluster()
    for n, rack in [(1, "a"), (2, "a"), (3, None)]:
        c.start(n, rack=rack)
    c.create("t", 3, 2)
    assert [c.part("t", p).replicas for p in range(3)] == [(1, 2), (2, 3), (3, 1)]  # plain round robin


# -- any sequence ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(60))
def test_a_fenced_broker_never_leads_after_any_sequence(seed):
    """Random register / heartbeat / fence / shutdown / create sequences over four brokers."""
    rng = random.Random(seed)
    c = Cluster()
    incarnations = itertools.count(1)
    prev = c.image
    for i in range(120):
        op = rng.choices(["register", "heartbeat", "fence", "create", "shutdown", "stale"], [3, 8, 2, 3, 1, 1])[0]
        node = rng.randint(1, 4)
        known = node in c.image.brokers
        if op == "register":
            live = frozenset({node}) if rng.random() < 0.3 else frozenset()
            c.register(node, inc=INC[next(incarnations)], live=live)
        elif op == "heartbeat" and known:
            c.heartbeat(node, offset=c.image.offset - rng.choice([0, 0, 0, 5]), want_fence=rng.random() < 0.05)
        elif op == "shutdown" and known:
            assert c.heartbeat(node, want_shut_down=True).should_shut_down
        elif op == "stale" and known:
            assert c.heartbeat(node, epoch=c.image.brokers[node].epoch - 1).error_code == E.STALE_BROKER_EPOCH
        elif op == "fence":
            c.fence(node)
        elif op == "create":
            rf = rng.randint(1, 3)
            c.create(f"t{i}", rng.randint(1, 4), rf)
        check_invariants(prev, c.image)
        prev = c.image


def check_invariants(old, new):
    for name, topic in new.topics.items():
        for p, part in topic.partitions.items():
            if part.leader != -1:
                assert not new.brokers[part.leader].fenced, f"{name}-{p} led by fenced broker {part.leader}"
                assert part.leader in part.isr
            if part.leader != -1 or len(part.isr) > 1:
                assert all(not new.brokers[r].fenced for r in part.isr), f"{name}-{p}: fenced in isr {part.isr}"
            before = old.topics.get(name, topic).partitions.get(p)
            if before is not None:
                assert part.leader_epoch >= before.leader_epoch and part.partition_epoch >= before.partition_epoch
                if part.leader != before.leader:
                    assert part.leader_epoch > before.leader_epoch


def test_partitions_whose_directory_name_would_not_fit_are_refused():
    # <topic>-<partition> names a directory: 255 bytes at most. A 249-character
    # name leaves room for partitions up to 99999 (what Kafka's limit is for).
    from riverlog.broker.metadata.decisions import decide_create_partitions

    c = Cluster()
    c.start(1)
    name = "n" * 249
    new_id = lambda: f"{next(c.ids):032x}"  # noqa: E731
    many = TopicDefaults(max_partitions=1_000_000)
    [over], records = decide_create_topics(c.image, [(name, 100_001, 1, {})], many, new_id)
    assert over.error_code == E.INVALID_PARTITIONS and "255" in over.error_message and records == []
    [short], records = decide_create_topics(c.image, [(name[:-1], 3, 1, {})], many, new_id)
    c.commit(records)
    [grow], records = decide_create_partitions(c.image, [(name[:-1], 1_000_001)], 2_000_000)
    assert short.error_code == E.NONE and grow.error_code == E.INVALID_PARTITIONS and records == []
