"""The rules of one partition replica (Kafka's Partition and Replica; KIP-497,
KIP-841, KIP-966, KIP-320), one test each, against the pure core in
broker/replication/partition.py. Broker 1 leads unless a test says
otherwise; times are ms."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from riverlog.broker.replication.partition import (
    ACKS_ALL,
    AlterOutcome,
    AlterPartitionRequest,
    BrokerState,
    Partition,
    PartitionState,
    Role,
)
from riverlog.client.protocol import ErrorCode

LAG_MS = 30_000
EPOCHS = {1: 10, 2: 20, 3: 30}  # each broker's registration epoch


def brokers(fenced=(), shutting_down=(), epochs=EPOCHS):
    table = {b: BrokerState(e, b in fenced, b in shutting_down) for b, e in epochs.items()}
    return table.get


def leader(isr=(1, 2, 3), replicas=(1, 2, 3), min_insync=1, leo=0, hw=0, now=0, view=None, epoch=1) -> Partition:
    p = Partition(1, view or brokers(), min_insync_replicas=min_insync, log_end_offset=leo, high_watermark=hw)
    assert p.become_leader(PartitionState(1, epoch, epoch, replicas, isr), now)
    return p


def fetch(p: Partition, replica: int, offset: int, now: int = 0):
    return p.update_follower_fetch(replica, offset, now, broker_epoch=EPOCHS[replica])


def committed(p: Partition, request: AlterPartitionRequest) -> PartitionState:
    return PartitionState(1, request.leader_epoch, request.partition_epoch + 1, p.replicas, request.isr)


# -- the high watermark -------------------------------------------------------------------


def test_the_high_watermark_is_the_smallest_log_end_offset_over_the_isr():
    p = leader()
    p.appended_as_leader(10, 0)
    fetch(p, 2, 7)
    update = fetch(p, 3, 5)
    assert update.high_watermark_advanced and p.high_watermark == 5


def test_the_high_watermark_never_passes_the_leaders_log_end_offset():
    p = leader(isr=(1,), replicas=(1,))
    p.appended_as_leader(4, 0)
    assert p.high_watermark == 4
    q = leader()
    q.appended_as_leader(4, 0)
    assert fetch(q, 2, 9).error == ErrorCode.OFFSET_OUT_OF_RANGE  # a follower cannot be ahead of its leader
    assert q.followers[2].log_end_offset == -1 and q.high_watermark == 0


def test_the_high_watermark_never_goes_back():
    p = leader(isr=(1, 2))
    p.appended_as_leader(10, 0)
    fetch(p, 2, 10)
    assert p.high_watermark == 10
    # The controller adds broker 3 (far behind) through metadata: the HW waits for it but stays.
    p.become_leader(PartitionState(1, 1, 2, (1, 2, 3), (1, 2, 3)), 0)
    fetch(p, 3, 2)
    assert p.high_watermark == 10


def test_a_new_leader_waits_for_its_followers_to_fetch_before_moving_the_high_watermark():
    p = Partition(1, brokers(), log_end_offset=10, high_watermark=4)
    assert p.become_leader(PartitionState(1, 3, 5, (1, 2, 3), (1, 2, 3)), 0)
    assert p.leader_epoch_start_offset == 10 and p.high_watermark == 4  # followers' ends unknown
    fetch(p, 2, 10)
    assert p.high_watermark == 4
    fetch(p, 3, 8)
    assert p.high_watermark == 8


def test_a_caught_up_follower_about_to_join_holds_the_high_watermark_back():
    # Otherwise a follower catching up never reaches a HW that runs with the leader's end.
    p = leader(isr=(1,), replicas=(1, 2))
    p.appended_as_leader(10, 0)
    assert p.high_watermark == 10
    fetch(p, 2, 10, now=1)  # joins (proposed)
    p.appended_as_leader(20, 2)
    assert p.high_watermark == 10


def test_kip_497_a_proposed_addition_counts_in_the_high_watermark_at_once():
    p = leader(isr=(1, 2), replicas=(1, 2, 3))
    p.appended_as_leader(10, 0)
    fetch(p, 2, 10)
    assert fetch(p, 3, 10).alter_partition is not None
    assert p.maximal_isr == {1, 2, 3} and p.isr == {1, 2}
    p.appended_as_leader(20, 1)
    fetch(p, 3, 12, now=LAG_MS * 3)  # long past its last catch-up: counted as a proposed member only
    fetch(p, 2, 20, now=LAG_MS * 3)
    assert p.high_watermark == 12


def test_kip_497_a_proposed_removal_still_counts_until_committed():
    p = leader()
    p.appended_as_leader(10, 0)
    fetch(p, 2, 10)
    fetch(p, 3, 4)
    request = p.maybe_shrink_isr(LAG_MS + 1)
    assert request.isr == (1, 2) and p.maximal_isr == {1, 2, 3}
    p.appended_as_leader(20, LAG_MS + 1)
    fetch(p, 2, 20, now=LAG_MS + 2)
    assert p.high_watermark == 4
    outcome = p.on_alter_partition_response(request, ErrorCode.NONE, committed(p, request), LAG_MS + 3)
    assert outcome.high_watermark_advanced and p.high_watermark == 20


def test_kip_966_the_high_watermark_stays_while_the_isr_is_below_min_insync_replicas():
    p = leader(isr=(1,), min_insync=2)
    p.appended_as_leader(10, 0)  # acks=1 is still appended
    assert p.high_watermark == 0 and p.under_min_isr


def test_min_insync_replicas_is_capped_at_the_number_of_replicas():
    p = leader(isr=(1,), replicas=(1,), min_insync=2)
    assert p.append_error(ACKS_ALL) == ErrorCode.NONE
    p.appended_as_leader(3, 0)
    assert p.high_watermark == 3


def test_a_follower_takes_the_smaller_of_the_leaders_high_watermark_and_its_own_log_end():
    p = Partition(2, brokers())
    p.become_follower(PartitionState(1, 1, 1, (1, 2), (1, 2)))
    p.appended_as_follower(5, leader_high_watermark=9)
    assert p.high_watermark == 5
    p.appended_as_follower(12, leader_high_watermark=9)
    assert p.high_watermark == 9
    p.truncated(7)
    assert (p.log_end_offset, p.high_watermark) == (7, 7)


# -- caught up, shrink, expand ------------------------------------------------------------


def test_a_follower_out_of_reach_for_longer_than_replica_lag_time_max_ms_is_proposed_out():
    p = leader()
    p.appended_as_leader(10, 0)
    fetch(p, 2, 10, now=100)
    fetch(p, 3, 6, now=100)  # never reached the end since the election at 0
    assert p.maybe_shrink_isr(LAG_MS) is None
    request = p.maybe_shrink_isr(LAG_MS + 1)
    assert request.isr == (1, 2) and request.new_isr == ((1, 10), (2, 20))
    assert (request.leader_epoch, request.partition_epoch) == (1, 1)


def test_a_follower_at_the_leaders_end_is_caught_up_however_long_ago_it_fetched():
    p = leader(isr=(1, 2), replicas=(1, 2))
    p.appended_as_leader(10, 0)
    fetch(p, 2, 10, now=5)
    assert p.maybe_shrink_isr(LAG_MS * 10) is None


def test_a_follower_of_a_busy_leader_is_caught_up_as_of_its_previous_fetch():
    # Each fetch reaches the end the leader had at the previous one, never the moving end.
    p = leader(isr=(1, 2), replicas=(1, 2))
    end = 0
    for now in range(0, 5 * LAG_MS, 1000):
        p.appended_as_leader(end + 10, now)
        fetch(p, 2, end, now=now + 1)
        end += 10
        assert p.maybe_shrink_isr(now + 500) is None


def test_kafka_shrinks_the_isr_below_min_insync_replicas_and_acks_all_is_then_refused():
    p = leader(isr=(1, 2), replicas=(1, 2), min_insync=2)
    request = p.maybe_shrink_isr(LAG_MS + 1)
    assert request.isr == (1,)
    p.on_alter_partition_response(request, ErrorCode.NONE, committed(p, request), LAG_MS + 1)
    assert p.append_error(ACKS_ALL) == ErrorCode.NOT_ENOUGH_REPLICAS and p.append_error(1) == ErrorCode.NONE


def test_a_follower_joins_once_it_reached_the_high_watermark_and_its_leader_epochs_start():
    p = Partition(1, brokers(), log_end_offset=10, high_watermark=6)
    p.become_leader(PartitionState(1, 2, 2, (1, 2, 3), (1, 3)), 0)  # epoch 2 starts at 10
    assert p.high_watermark == 6  # until broker 3 fetches
    assert fetch(p, 2, 5).alter_partition is None  # short of the HW
    assert fetch(p, 2, 8).alter_partition is None  # past the HW, short of the epoch start
    request = fetch(p, 2, 10).alter_partition
    assert request.isr == (1, 2, 3) and request.new_isr == ((1, 10), (2, 20), (3, -1))


def test_kip_841_fenced_shutting_down_or_stale_incarnations_do_not_join():
    for view in (brokers(fenced=(2,)), brokers(shutting_down=(2,))):
        p = leader(isr=(1,), replicas=(1, 2), view=view)
        assert fetch(p, 2, 0).alter_partition is None
    p = leader(isr=(1,), replicas=(1, 2), view=brokers(epochs={1: 10, 2: 25}))
    assert p.update_follower_fetch(2, 0, 0, broker_epoch=20).error == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert p.update_follower_fetch(2, 0, 0, broker_epoch=25).alter_partition.new_isr == ((1, 10), (2, 25))


def test_a_fetch_from_a_broker_that_is_not_a_replica_is_told_to_retry():
    p = leader(isr=(1, 2), replicas=(1, 2))
    assert fetch(p, 3, 0).error == ErrorCode.UNKNOWN_LEADER_EPOCH


# -- AlterPartition -----------------------------------------------------------------------


def test_one_alter_partition_in_flight_no_other_change_is_proposed_meanwhile():
    p = leader(isr=(1, 2), replicas=(1, 2, 3))
    p.appended_as_leader(10, 0)
    fetch(p, 2, 3)
    assert p.maybe_shrink_isr(LAG_MS + 1) is not None
    assert fetch(p, 3, 10, now=LAG_MS + 2).alter_partition is None
    assert p.maybe_shrink_isr(LAG_MS * 5) is None


def test_a_stale_alter_partition_answer_is_ignored():
    p = leader()
    first = p.maybe_shrink_isr(LAG_MS + 1)
    p.become_leader(PartitionState(1, 1, 2, (1, 2, 3), (1, 2)), LAG_MS + 2)  # the controller did something else
    assert p.pending is None
    outcome = p.on_alter_partition_response(first, ErrorCode.NONE, committed(p, first), LAG_MS + 3)
    assert outcome.resend is None and p.partition_epoch == 2 and p.isr == {1, 2}
    # An answer to an earlier proposal while a later one is in flight.
    second = p.maybe_shrink_isr(LAG_MS * 3)
    assert second.isr == (1,)
    late = PartitionState(1, 1, 2, (1, 2, 3), (1, 2, 3))
    assert p.on_alter_partition_response(first, ErrorCode.NONE, late, LAG_MS * 3) == AlterOutcome()
    assert p.pending.request == second and p.isr == {1, 2}


def test_a_committed_answer_replaces_the_isr_and_the_partition_epoch_not_the_leader_epoch():
    p = leader()
    request = p.maybe_shrink_isr(LAG_MS + 1)
    p.on_alter_partition_response(request, ErrorCode.NONE, committed(p, request), LAG_MS + 1)
    assert (p.isr, p.partition_epoch, p.leader_epoch, p.pending) == ({1}, 2, 1, None)


def test_an_answer_of_another_leader_epoch_or_an_older_partition_epoch_is_not_adopted():
    p = leader()
    request = p.maybe_shrink_isr(LAG_MS + 1)
    other_epoch = PartitionState(1, 2, 2, (1, 2, 3), (1,))
    p.on_alter_partition_response(request, ErrorCode.NONE, other_epoch, LAG_MS + 1)
    older = PartitionState(1, 1, 0, (1, 2, 3), (1,))
    p.on_alter_partition_response(request, ErrorCode.NONE, older, LAG_MS + 1)
    assert p.isr == {1, 2, 3} and p.pending is not None  # until metadata settles it


def test_ineligible_replica_or_operation_not_attempted_go_back_to_the_committed_isr():
    for error in (ErrorCode.INELIGIBLE_REPLICA, ErrorCode.OPERATION_NOT_ATTEMPTED):
        p = leader(isr=(1,), replicas=(1, 2))
        request = fetch(p, 2, 0).alter_partition
        assert p.maximal_isr == {1, 2}
        p.on_alter_partition_response(request, error, None, 1)
        assert p.pending is None and p.maximal_isr == {1}
        assert fetch(p, 2, 0, now=2).alter_partition == request  # may propose again


def test_fenced_leader_epoch_invalid_update_version_and_new_leader_elected_wait_for_metadata():
    for error in (ErrorCode.FENCED_LEADER_EPOCH, ErrorCode.INVALID_UPDATE_VERSION, ErrorCode.NEW_LEADER_ELECTED):
        p = leader()
        request = p.maybe_shrink_isr(LAG_MS + 1)
        assert p.on_alter_partition_response(request, error, None, LAG_MS + 1).resend is None
        assert p.pending is not None and p.maybe_shrink_isr(LAG_MS * 9) is None
        p.become_leader(PartitionState(1, 1, 3, (1, 2, 3), (1, 3)), LAG_MS + 2)
        assert p.pending is None and p.isr == {1, 3}


def test_other_alter_partition_errors_send_the_same_proposal_again():
    p = leader()
    request = p.maybe_shrink_isr(LAG_MS + 1)
    for error in (ErrorCode.REQUEST_TIMED_OUT, ErrorCode.NOT_CONTROLLER, ErrorCode.UNKNOWN_SERVER_ERROR):
        assert p.on_alter_partition_response(request, error, None, LAG_MS + 1).resend == request
    assert p.pending.request == request


# -- metadata ----------------------------------------------------------------------------


def test_a_state_with_an_older_partition_epoch_is_ignored():
    p = leader(epoch=4)
    assert not p.become_follower(PartitionState(2, 3, 3, (1, 2, 3), (2, 3)))
    assert p.role is Role.LEADER and p.leader_epoch == 4


def test_a_state_already_held_does_not_drop_the_proposal_in_flight():
    p = leader()
    request = p.maybe_shrink_isr(LAG_MS + 1)
    assert not p.become_leader(PartitionState(1, 1, 1, (1, 2, 3), (1, 2, 3)), LAG_MS + 2)
    assert p.pending.request == request


def test_a_new_leader_epoch_starts_at_the_log_end_and_resets_the_followers():
    p = leader()
    p.appended_as_leader(10, 0)
    fetch(p, 2, 10)
    assert not p.become_follower(PartitionState(2, 1, 1, (1, 2, 3), (1, 2, 3)))  # held epoch: nothing new
    assert p.become_follower(PartitionState(2, 2, 2, (1, 2, 3), (1, 2, 3)))
    assert (p.role, p.leader, p.isr, p.followers) == (Role.FOLLOWER, 2, frozenset(), {})
    assert p.become_leader(PartitionState(1, 3, 3, (1, 2, 3), (1, 2, 3)), 50)
    assert p.leader_epoch_start_offset == 10 and p.followers[2].log_end_offset == -1


# -- produce -----------------------------------------------------------------------------


def test_acks_all_is_refused_before_the_append_while_the_committed_isr_is_below_min_insync():
    p = leader(isr=(1,), replicas=(1, 2, 3), min_insync=2)
    fetch(p, 2, 0)  # proposed in: the maximal ISR is 2, the committed one still 1
    assert p.maximal_isr == {1, 2}
    assert p.append_error(ACKS_ALL) == ErrorCode.NOT_ENOUGH_REPLICAS


def test_acks_all_completes_when_the_high_watermark_passes_the_batchs_last_offset():
    p = leader(isr=(1, 2), replicas=(1, 2))
    p.appended_as_leader(10, 0)  # a batch of offsets 5..9
    fetch(p, 2, 9)
    assert p.acks_all_result(9) is None
    fetch(p, 2, 10)
    assert p.acks_all_result(9) == ErrorCode.NONE


def test_acks_all_answers_not_enough_replicas_after_append_when_the_isr_shrank_meanwhile():
    p = leader(isr=(1, 2), replicas=(1, 2), min_insync=2)
    p.appended_as_leader(10, 0)
    fetch(p, 2, 10)
    p.appended_as_leader(20, 1)  # a second batch, parked; broker 2 stops fetching
    request = p.maybe_shrink_isr(LAG_MS * 2)
    p.on_alter_partition_response(request, ErrorCode.NONE, committed(p, request), LAG_MS * 2)
    assert p.acks_all_result(9) == ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
    assert p.acks_all_result(19) is None  # still waiting (and times out: the caller's REQUEST_TIMED_OUT)


def test_a_follower_refuses_produce_fetch_updates_and_acks_all():
    p = Partition(2, brokers())
    p.become_follower(PartitionState(1, 1, 1, (1, 2), (1, 2)))
    assert p.append_error(1) == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert p.acks_all_result(0) == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert p.update_follower_fetch(3, 0, 0).error == ErrorCode.NOT_LEADER_OR_FOLLOWER


def test_kip_320_an_older_leader_epoch_is_fenced_a_newer_one_unknown():
    p = leader(epoch=5)
    assert [p.check_leader_epoch(e) for e in (-1, 5, 4, 6)] == [
        ErrorCode.NONE,
        ErrorCode.NONE,
        ErrorCode.FENCED_LEADER_EPOCH,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
    ]


# -- property: the high watermark over random fetches and ISR changes -------------------

op = st.one_of(
    st.tuples(st.just("append"), st.integers(1, 5)),
    st.tuples(st.just("fetch"), st.sampled_from((2, 3, 4)), st.integers(0, 6)),
    st.tuples(st.just("tick"), st.sampled_from((1, 1000, LAG_MS // 2, LAG_MS + 1))),
    st.tuples(st.just("shrink")),
    st.tuples(
        st.just("answer"),
        st.sampled_from((ErrorCode.NONE, ErrorCode.NONE, ErrorCode.INELIGIBLE_REPLICA,
                         ErrorCode.INVALID_UPDATE_VERSION, ErrorCode.REQUEST_TIMED_OUT)),
    ),  # fmt: skip
    st.tuples(st.just("controller_removes"), st.sampled_from((2, 3, 4))),
    st.tuples(st.just("reelected")),
)


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 3), st.lists(op, max_size=60))
def test_the_high_watermark_never_goes_back_nor_passes_an_isr_members_log_end(min_insync, ops):
    """Random follower fetches (each follower's end only grows, as within one
    leadership), appends, time, shrinks, controller answers, ISR removals by
    the controller and re-elections of this leader: the HW never goes back,
    never passes the leader's end, and whenever it moves it is at or below
    every maximal-ISR member's end; one AlterPartition in flight at most; the
    committed ISR changes only by a committed answer or metadata."""
    p = leader(isr=(1, 2, 3, 4), replicas=(1, 2, 3, 4), min_insync=min_insync, view=brokers(epochs={**EPOCHS, 4: 40}))
    now, ends, sent = 0, {2: 0, 3: 0, 4: 0}, None
    for o in ops:
        hw, isr = p.high_watermark, p.isr
        changes_isr = False
        if o[0] == "append":
            p.appended_as_leader(p.log_end_offset + o[1], now)
        elif o[0] == "fetch":
            ends[o[1]] = min(ends[o[1]] + o[2], p.log_end_offset)
            update = p.update_follower_fetch(o[1], ends[o[1]], now, broker_epoch=o[1] * 10)
            if update.alter_partition:
                assert sent is None
                sent = update.alter_partition
        elif o[0] == "tick":
            now += o[1]
        elif o[0] == "shrink":
            request = p.maybe_shrink_isr(now)
            if request:
                assert sent is None
                sent = request
        elif o[0] == "answer" and sent:
            ok = o[1] == ErrorCode.NONE
            outcome = p.on_alter_partition_response(sent, o[1], committed(p, sent) if ok else None, now)
            changes_isr = ok
            if outcome.resend is None:
                sent = None if p.pending is None or ok else sent
        elif o[0] == "controller_removes" and o[1] in p.isr:
            p.become_leader(PartitionState(1, p.leader_epoch, p.partition_epoch + 1, p.replicas,
                                           tuple(sorted(p.isr - {o[1]}))), now)  # fmt: skip
            changes_isr, sent = True, None
        elif o[0] == "reelected":
            p.become_leader(PartitionState(1, p.leader_epoch + 1, p.partition_epoch + 1, p.replicas,
                                           tuple(sorted(p.isr))), now)  # fmt: skip
            changes_isr, sent = True, None
        assert (sent is None) == (p.pending is None)
        assert p.high_watermark >= hw
        assert p.high_watermark <= p.log_end_offset
        if p.high_watermark > hw:
            for member in p.maximal_isr - {1}:
                assert p.high_watermark <= p.followers[member].log_end_offset
        if not changes_isr:
            assert p.isr == isr
