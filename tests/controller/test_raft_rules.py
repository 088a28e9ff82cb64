"""The rules of the Raft paper's figures (and KRaft's versions of them),
one test each, against the pure core. Paper sections in the names' docs:
§5.2 leader election, §5.3 log replication, §5.4 safety."""

from __future__ import annotations

import random

import pytest

from riverlog.broker.controller.raft.core import NotLeaderError, RaftCore
from riverlog.broker.controller.raft.messages import (
    BeginQuorumEpochRequest,
    EndQuorumEpochRequest,
    Entry,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    HardState,
    Snapshot,
    SnapshotId,
    VoteRequest,
    VoteResponse,
)
from riverlog.broker.controller.raft.roles import RaftConfig, Role
from riverlog.client.protocol import ErrorCode

from .raft_harness import Quorum


def voter(node: int, voters=(1, 2, 3), hard: HardState = HardState(), entries=()) -> RaftCore:
    return RaftCore(RaftConfig(node, frozenset(voters)), random.Random(node), hard, None, list(entries))


def answers(core: RaftCore) -> list:
    ready = core.ready()
    core.persisted(ready)
    return ready.messages


def log_of(*epochs: int) -> list[Entry]:
    return [Entry(i, e, b"%d" % i) for i, e in enumerate(epochs)]


# -- §5.2 leader election ------------------------------------------------------------


def test_a_voter_grants_at_most_one_vote_per_epoch():
    core = voter(1, hard=HardState(epoch=4))
    core.step(VoteRequest(2, 1, 7, epoch=5, last_epoch=0, last_end_offset=0))
    (first,) = answers(core)
    core.step(VoteRequest(3, 1, 8, epoch=5, last_epoch=0, last_end_offset=0))
    (second,) = answers(core)
    core.step(VoteRequest(2, 1, 9, epoch=5, last_epoch=0, last_end_offset=0))
    (again,) = answers(core)
    assert (first.granted, second.granted, again.granted) == (True, False, True)
    assert core.voted_for == 2 and core.role is Role.VOTED


def test_a_vote_is_durable_in_the_same_ready_that_carries_the_answer():
    core = voter(1)
    core.step(VoteRequest(2, 1, 1, epoch=1, last_epoch=0, last_end_offset=0))
    ready = core.ready()
    assert ready.hard_state == HardState(epoch=1, voted_for=2, leader_id=-1)
    assert [type(m) for m in ready.messages] == [VoteResponse]  # sent only after the hard state is written


def test_election_restriction_a_voter_refuses_a_candidate_with_an_older_last_epoch():
    core = voter(1, hard=HardState(epoch=3), entries=log_of(1, 1, 3))
    core.step(VoteRequest(2, 1, 1, epoch=4, last_epoch=2, last_end_offset=10))  # longer, but older
    (answer,) = answers(core)
    assert not answer.granted and core.voted_for == -1


def test_election_restriction_a_voter_refuses_a_candidate_with_a_shorter_log_of_the_same_epoch():
    core = voter(1, hard=HardState(epoch=3), entries=log_of(1, 3, 3))
    core.step(VoteRequest(2, 1, 1, epoch=4, last_epoch=3, last_end_offset=2))
    (answer,) = answers(core)
    assert not answer.granted
    core.step(VoteRequest(3, 1, 2, epoch=4, last_epoch=3, last_end_offset=3))  # as up to date: granted
    (answer,) = answers(core)
    assert answer.granted


def test_a_request_of_an_older_epoch_is_refused_and_its_sender_learns_the_newer_epoch():
    core = voter(1, hard=HardState(epoch=6, leader_id=3))
    core.step(VoteRequest(2, 1, 1, epoch=5, last_epoch=9, last_end_offset=99))
    (answer,) = answers(core)
    assert not answer.granted and (answer.epoch, answer.leader_id) == (6, 3)
    candidate = voter(2, hard=HardState(epoch=5, voted_for=2))
    candidate.step(answer)
    assert (candidate.epoch, candidate.leader_id, candidate.role) == (6, 3, Role.FOLLOWER)


def test_a_candidate_with_votes_from_a_majority_becomes_leader_and_writes_leader_change_at_its_epoch_start():
    q = Quorum()
    q.elect(1)
    leader = q[1]
    assert leader.epoch == 1 and q.leaders() == [1]
    (change,) = leader.log.entries
    assert change.control and change.epoch == 1 and change.offset == 0
    assert all(q[n].leader_id == 1 and q[n].role is Role.FOLLOWER for n in (2, 3))  # BeginQuorumEpoch told them


def test_pre_vote_changes_no_state_on_the_voters():
    q = Quorum()
    q.tick(1, 100)  # election timeout: PROSPECTIVE, pre-votes queued
    assert q[1].role is Role.PROSPECTIVE and q[1].epoch == 0
    pre = [m for m in q.outbox if isinstance(m, VoteRequest)]
    assert pre and all(m.pre_vote and m.epoch == 1 for m in pre)
    for m in pre:
        q[m.dst].step(m)
        ready = q[m.dst].ready()
        q[m.dst].persisted(ready)
        assert ready.hard_state is None and q[m.dst].epoch == 0


def test_a_voter_with_a_live_leader_refuses_pre_votes_so_a_rejoining_node_cannot_depose_it():
    q = Quorum()
    q.elect(1)
    q.tick(3, 400)  # node 3 was cut off: its fetches went nowhere, it keeps asking for pre-votes
    q.outbox = [m for m in q.outbox if m.src != 3 or isinstance(m, VoteRequest) and m.dst == 2]
    q.deliver(lambda m: m.src == 3 or m.dst == 3 and isinstance(m, VoteResponse))
    assert q[3].epoch == 1 and q[1].role is Role.LEADER and q[2].leader_id == 1


def test_a_higher_epoch_turns_a_leader_into_a_follower():
    q = Quorum()
    q.elect(1)
    q[1].step(BeginQuorumEpochRequest(2, 1, 1, epoch=2))
    q.drain(1)
    assert (q[1].role, q[1].epoch, q[1].leader_id) == (Role.FOLLOWER, 2, 2)
    with pytest.raises(NotLeaderError):
        q[1].propose([b"late"])


def test_a_restarted_leader_does_not_lead_its_old_epoch_again():
    core = voter(1, hard=HardState(epoch=3, voted_for=1, leader_id=1))
    assert core.role is Role.RESIGNED
    core.step(VoteRequest(2, 1, 1, epoch=3, last_epoch=3, last_end_offset=50))
    (answer,) = answers(core)
    assert not answer.granted  # the epoch had a leader: no second one


# -- §5.3 log replication --------------------------------------------------------------


def test_log_matching_a_follower_truncates_where_its_log_diverges_from_the_leaders():
    # Epoch 1's leader reached only node 3 before it died; node 1 leads epoch 2.
    q = Quorum()
    q.nodes[1] = RaftCore(q.configs[1], random.Random(1), HardState(epoch=1), None, log_of(1))
    q.nodes[3] = RaftCore(q.configs[3], random.Random(3), HardState(epoch=1), None, log_of(1, 1, 1))
    q.tick(1, 100)
    q.deliver(lambda m: m.src != 3 and not (m.dst == 3 and isinstance(m, VoteRequest)))  # 3 hears only the news
    assert q[1].role is Role.LEADER and q[1].epoch == 2 and q[3].leader_id == 1
    q[1].propose([b"a", b"b"])
    q.drain(1)
    for _ in range(5):
        q.tick(3)
        q.deliver()
    assert q[3].entries_from(0) == q[1].entries_from(0)
    assert [e.epoch for e in q[3].entries_from(0)] == [1, 2, 2, 2]  # offset 0 matched; 1 and 2 were cut


def test_repeated_divergence_finds_the_latest_common_epoch():
    # node 1: epochs 1 1 2 2 4, node 3: 1 1 3 3 3 3 (epoch 3's leader reached only it). Node 1
    # leads epoch 5: node 3 must cut back to offset 2 (the end of epoch 1, the last one they share).
    q = Quorum()
    q.nodes[1] = RaftCore(q.configs[1], random.Random(1), HardState(epoch=4), None, log_of(1, 1, 2, 2, 4))
    q.nodes[3] = RaftCore(q.configs[3], random.Random(3), HardState(epoch=4), None, log_of(1, 1, 3, 3, 3, 3))
    q.deliver()
    q.elect(1)  # node 2 (empty log) votes for it; node 3's log is newer by epoch, but 1 needs only 2
    for _ in range(6):
        q.tick(3)
        q.deliver()
    assert [(e.offset, e.epoch) for e in q[3].entries_from(0)][:5] == [(0, 1), (1, 1), (2, 2), (3, 2), (4, 4)]


def test_leader_append_only_a_leader_never_truncates_or_overwrites_its_log():
    q = Quorum()
    q.elect(1)
    before = list(q[1].entries_from(0))
    q[1].step(FetchRequest(2, 1, 99, epoch=1, fetch_offset=7, last_fetched_epoch=9))  # a confused follower
    q.drain(1)
    q[1].propose([b"x"])
    q.drain(1)
    assert q[1].entries_from(0)[: len(before)] == before
    assert all(r.truncate_to is None for r in q.readies[1])


# -- §5.4 safety -----------------------------------------------------------------------


def test_the_high_watermark_needs_a_majority_of_durable_end_offsets():
    q = Quorum(voters=(1, 2, 3, 4, 5))
    q.elect(1)
    q.deliver()
    hw = q[1].high_watermark
    q[1].propose([b"a"])
    q.drain(1)
    # only node 2 fetches past it: the leader and one follower are 2 of 5
    q.tick(2, 1)
    q.deliver(lambda m: 2 in (m.src, m.dst))
    assert q[1].high_watermark == hw
    q.tick(3, 1)
    q.deliver(lambda m: 3 in (m.src, m.dst) or m.dst == 2)  # and node 3: 3 of 5
    assert q[1].high_watermark == q[1].log_end_offset


def test_the_leader_counts_its_own_entries_only_once_they_are_persisted():
    core = RaftCore(RaftConfig(1, frozenset({1})), random.Random(1))
    core.tick()
    core.persisted(core.ready())
    core.persisted(core.ready())  # (the committed LeaderChange)
    core.propose([b"a"])
    assert core.high_watermark == 1  # the new entry is not on disk yet
    ready = core.ready()
    core.persisted(ready)
    assert core.high_watermark == 2


def test_commitment_entries_of_an_earlier_epoch_commit_only_through_an_entry_of_the_current_epoch():
    # Figure 8: a new leader holding an uncommitted entry of an older epoch on
    # a majority must not count it committed until its own epoch's entry is.
    q = Quorum()
    older = log_of(1, 1, 2)  # entry 2 of epoch 2 was never committed
    q.nodes[1] = RaftCore(q.configs[1], random.Random(1), HardState(epoch=3), None, older)
    q.nodes[2] = RaftCore(q.configs[2], random.Random(2), HardState(epoch=3), None, older)
    q.nodes[3] = RaftCore(q.configs[3], random.Random(3), HardState(epoch=3), None, older[:2])
    q.tick(1, 100)
    q.deliver(lambda m: not isinstance(m, (FetchRequest, FetchResponse)))
    assert q[1].role is Role.LEADER and q[1].epoch == 4
    # node 2 already has every entry up to the leader's epoch start: yet nothing commits
    q[1].step(FetchRequest(2, 1, 1, epoch=4, fetch_offset=3, last_fetched_epoch=2))
    q.drain(1)
    assert q[1].high_watermark == 0
    q[1].step(FetchRequest(2, 1, 2, epoch=4, fetch_offset=4, last_fetched_epoch=4))  # past the LeaderChange
    q.drain(1)
    assert q[1].high_watermark == 4


def test_leader_completeness_every_elected_leader_holds_every_committed_entry():
    for seed in range(30):
        rng = random.Random(seed)
        q = Quorum(seed=seed)
        committed: dict[int, Entry] = {}
        for _ in range(200):
            node = rng.choice((1, 2, 3))
            q.tick(node, rng.randrange(1, 30))
            if q[node].role is Role.LEADER and rng.random() < 0.5:
                q[node].propose([b"%d" % rng.randrange(1000)])
                q.drain(node)
            q.deliver(lambda m: rng.random() < 0.7, rounds=rng.randrange(1, 6))
            for n, entries in q.applied.items():
                for e in entries:
                    committed.setdefault(e.offset, e)
            for n in q.leaders():
                for offset, e in committed.items():
                    assert q[n].log.entry(offset) == e, (seed, n, offset)


def test_a_follower_never_truncates_below_its_high_watermark():
    core = voter(2, hard=HardState(epoch=2, leader_id=1), entries=log_of(1, 1, 2, 2))
    core.tick()
    (fetch,) = answers(core)
    core.step(FetchResponse(1, 2, fetch.correlation, 2, 1, high_watermark=3))
    answers(core)
    assert core.high_watermark == 3
    core._fetch_correlation = 77
    with pytest.raises(AssertionError, match="committed"):
        core.step(FetchResponse(1, 2, 77, 2, 1, diverging=(1, 2)))


# -- KRaft's additions -----------------------------------------------------------------


def test_check_quorum_a_leader_cut_off_from_a_majority_resigns():
    q = Quorum()
    q.elect(1)
    q.outbox.clear()
    q.tick(1, 45)  # no fetches arrive for longer than the fetch timeout (2 s = 40 ticks)
    assert q[1].role is Role.RESIGNED
    with pytest.raises(NotLeaderError):
        q[1].propose([b"x"])


def test_graceful_resignation_makes_the_best_placed_successor_campaign_first():
    q = Quorum(voters=(1, 2, 3, 4, 5))
    q.elect(1)
    q[1].propose([b"a", b"b"])
    q.drain(1)
    q.tick(4)
    q.deliver(lambda m: 4 in (m.src, m.dst))  # node 4 is the most caught up
    q.deliver(lambda m: False)
    q[1].resign()
    q.drain(1)
    ends = [m for m in q.outbox if isinstance(m, EndQuorumEpochRequest)]
    assert ends and ends[0].preferred_successors[0] == 4
    q.deliver()
    for _ in range(60):
        for n in (2, 3, 4, 5):
            q.tick(n)
        if any(q[n].role is Role.PROSPECTIVE for n in (2, 3, 5)) or q[4].role is not Role.FOLLOWER:
            break
    assert q[4].role in (Role.PROSPECTIVE, Role.CANDIDATE)


def test_a_follower_behind_the_leaders_log_start_receives_the_snapshot():
    q = Quorum(snapshot_chunk_bytes=4)
    q.elect(1)
    q[1].propose([b"a", b"b", b"c"])
    q.drain(1)
    q.deliver(lambda m: 3 not in (m.src, m.dst))
    q.tick(2)
    q.deliver(lambda m: 3 not in (m.src, m.dst))
    leader = q[1]
    end = leader.applied_offset
    assert end == 4
    leader.take_snapshot(Snapshot(SnapshotId(end, 1), b"state-at-4"))
    assert leader.log_start_offset == 4
    for _ in range(5):
        q.tick(3)
        q.deliver()
    assert any(isinstance(m, FetchSnapshotRequest) for r in q.readies[3] for m in r.messages)
    (installed,) = [r.snapshot for r in q.readies[3] if r.snapshot is not None]
    assert installed.data == b"state-at-4" and q[3].log_start_offset == 4


def test_an_observer_finds_the_leader_replicates_and_never_votes():
    q = Quorum(observers=(9,))
    q.elect(1)
    q[1].propose([b"a"])
    q.drain(1)
    for _ in range(10):
        q.tick(9)
        q.deliver()
    assert q[9].role is Role.OBSERVER and q[9].leader_id == 1
    assert [e.data for e in q[9].entries_from(0)] == [e.data for e in q[1].entries_from(0)]
    q[9].step(VoteRequest(2, 9, 1, epoch=5, last_epoch=9, last_end_offset=99))
    (answer,) = answers(q[9])
    assert not answer.granted and answer.error == ErrorCode.INCONSISTENT_VOTER_SET
    q.tick(9, 500)
    assert q[9].role is Role.OBSERVER and not any(
        isinstance(m, VoteRequest) for r in q.readies[9] for m in r.messages)  # fmt: skip


def test_a_fetch_of_an_older_epoch_is_fenced():
    q = Quorum()
    q.elect(1)
    q[1].step(FetchRequest(2, 1, 5, epoch=0, fetch_offset=0, last_fetched_epoch=-1))
    (answer,) = answers(q[1])
    assert answer.error == ErrorCode.FENCED_LEADER_EPOCH and (answer.epoch, answer.leader_id) == (1, 1)


def test_a_follower_that_cannot_reach_its_leader_campaigns_soon_and_an_answer_from_the_leader_calls_it_off():
    q = Quorum()
    q.elect(1)
    q.deliver()
    q[2].peer_unreachable(1)
    q.drain(2)
    assert not q[2]._leader_alive()  # grants pre-votes now
    q.tick(2, 15)  # well inside the 40-tick fetch timeout
    assert q[2].role is Role.PROSPECTIVE
    # node 3 still hears from the leader: it refuses, and node 2 goes back to following
    q.deliver(lambda m: isinstance(m, (VoteRequest, VoteResponse)))
    assert q[2].role is Role.FOLLOWER and q[1].role is Role.LEADER and q[2].epoch == 1


def test_only_a_voter_can_begin_or_end_an_epoch():
    core = voter(1, hard=HardState(epoch=3, leader_id=2))
    core.step(BeginQuorumEpochRequest(9, 1, 1, epoch=7))  # node 9 is not in the voter set
    (answer,) = answers(core)
    assert answer.error == ErrorCode.INCONSISTENT_VOTER_SET and (core.epoch, core.leader_id) == (3, 2)
    core.step(EndQuorumEpochRequest(9, 1, 2, epoch=3, preferred_successors=(1,)))
    (answer,) = answers(core)
    assert answer.error == ErrorCode.INCONSISTENT_VOTER_SET
    assert core.role is Role.FOLLOWER and not core._leader_gone


def test_a_leader_forgets_observers_that_stopped_fetching():
    q = Quorum(observers=(9,))
    q.elect(1)
    for replica in range(100, 200):  # any node id may fetch: what is kept about them must not only grow
        q[1].step(FetchRequest(replica, 1, 1, epoch=1, fetch_offset=0, last_fetched_epoch=-1))
        q.drain(1)
    assert len(q[1]._leader.last_fetch) >= 100
    q.outbox.clear()
    for _ in range(90):
        for node in (1, 2, 3):
            q.tick(node)
        q.deliver(lambda m: m.src in (2, 3) or m.dst in (2, 3))
    assert q[1].role is Role.LEADER
    assert not set(range(100, 200)) & set(q[1]._leader.last_fetch)
