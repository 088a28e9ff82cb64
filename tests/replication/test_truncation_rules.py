"""The follower's truncation rule (KIP-101, KIP-279), one test each, against
the pure functions of broker/replication/truncation.py. A log is written as
the epoch of each offset: ``[0, 0, 1]`` holds offsets 0 and 1 of epoch 0 and
offset 2 of epoch 1."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from riverlog.broker.replication.truncation import (
    UNDEFINED,
    EpochEndOffset,
    EpochEntry,
    Truncation,
    diverging_epoch,
    end_offset_for_epoch,
    find_truncation_offset,
    truncate_cache,
    truncation_step,
)
from riverlog.client.protocol import ErrorCode


def cache_of(log: list[int], leader_epoch: int | None = None) -> list[EpochEntry]:
    """The epoch cache a log's batches give (plus a leader's own epoch, entered when it was elected)."""
    cache = [EpochEntry(e, i) for i, e in enumerate(log) if i == 0 or log[i - 1] != e]
    if leader_epoch is not None and (not cache or cache[-1].epoch != leader_epoch):
        cache.append(EpochEntry(leader_epoch, len(log)))
    return cache


def asking(leader_log: list[int], leader_epoch: int):
    cache = cache_of(leader_log, leader_epoch)
    return lambda epoch: end_offset_for_epoch(cache, epoch, len(leader_log))


def truncate_against(follower: list[int], leader: list[int], leader_epoch: int) -> int | None:
    return find_truncation_offset(cache_of(follower), len(follower), asking(leader, leader_epoch))


# -- the leader's answer ---------------------------------------------------------------


def test_the_leader_answers_its_latest_epoch_with_its_log_end_offset():
    assert end_offset_for_epoch(cache_of([0, 0, 1, 1]), 1, 4) == (1, 4)


def test_the_leader_answers_an_older_epoch_with_the_start_of_its_next_epoch():
    assert end_offset_for_epoch(cache_of([0, 0, 1, 3, 3]), 1, 5) == (1, 3)


def test_the_leader_answers_an_epoch_it_never_had_with_its_largest_older_epoch():
    assert end_offset_for_epoch(cache_of([0, 0, 2, 2]), 1, 4) == (0, 2)


def test_an_epoch_older_than_the_leaders_cache_ends_where_its_first_epoch_starts():
    cache = [EpochEntry(3, 10), EpochEntry(5, 14)]  # the log before offset 10 was deleted
    assert end_offset_for_epoch(cache, 1, 20) == (1, 10)


def test_the_leader_cannot_answer_epoch_minus_one_or_from_an_empty_cache():
    assert end_offset_for_epoch(cache_of([0, 0]), -1, 2) == UNDEFINED
    assert end_offset_for_epoch([], 3, 0) == UNDEFINED


def test_truncating_the_log_drops_the_epochs_that_started_at_or_past_the_offset():
    assert truncate_cache(cache_of([0, 0, 1, 1, 2]), 2) == [(0, 0)]
    assert truncate_cache(cache_of([0, 0, 1, 1, 2]), 3) == [(0, 0), (1, 2)]


# -- the follower's step -----------------------------------------------------------------


def test_a_follower_with_the_leaders_epoch_truncates_to_the_lower_end_of_it():
    follower = cache_of([0, 0, 1, 1, 1])
    assert truncation_step(follower, 5, EpochEndOffset(1, 4)) == Truncation(4, done=True)
    assert truncation_step(follower, 5, EpochEndOffset(1, 9)) == Truncation(5, done=True)  # nothing to drop


def test_kip_279_a_follower_without_the_leaders_epoch_truncates_to_its_own_end_of_an_older_one_and_asks_again():
    # The leader answered epoch 2 for the follower's 3; the follower never had
    # 2: its epoch 1 ends at 4, and 3 may differ from the leader's from there.
    step = truncation_step(cache_of([0, 0, 1, 1, 3, 3]), 6, EpochEndOffset(2, 5))
    assert step == Truncation(4, done=False)


def test_a_leader_that_cannot_answer_leaves_the_log_as_it_is():
    assert truncation_step(cache_of([0, 0, 1]), 3, UNDEFINED) is None
    assert find_truncation_offset(cache_of([0, 0, 1]), 3, lambda epoch: UNDEFINED) is None


def test_never_to_the_high_watermark_alone_kip_101():
    # KIP-101's first case: the follower's HW (1) lags; both hold offset 1 of
    # epoch 0, acknowledged by the leader. Truncating to the HW would lose it.
    assert truncate_against([0, 0], [0, 0], leader_epoch=1) == 2


def test_a_follower_with_no_batches_has_nothing_to_truncate():
    assert find_truncation_offset([], 0, lambda epoch: EpochEndOffset(0, 10)) == 0


# -- KIP-279's cases and repeated leader changes -------------------------------------


def test_kip_279_an_older_epoch_on_the_follower_where_the_leader_moved_on_without_it():
    # A led epoch 0 (offsets 0-1), B wrote offset 1 at epoch 1 while A was cut
    # off, then A led again at epoch 2 and wrote offsets 2-3. KIP-101's answer
    # (A's end of 1 = start of 2 = 2) would keep B's offset 1 of epoch 1.
    follower_b, leader_a = [0, 1, 1], [0, 0, 2, 2]
    assert truncate_against(follower_b, leader_a, leader_epoch=2) == 1


def test_repeated_leader_changes_take_more_than_one_round():
    # B: e0 at 0-1, e1 at 2-3, e3 at 4-5; A: e0 at 0-2, e2 at 3-4, e4 at 5-6.
    # Round 1: B asks 3, A says (2, 5); B never had 2: to its end of 1 (4).
    # Round 2: B asks 1, A says (0, 3); B has 0, ending at 2: done at 2.
    follower_b, leader_a = [0, 0, 1, 1, 3, 3], [0, 0, 0, 2, 2, 4, 4]
    asked = []

    def ask(epoch):
        asked.append(epoch)
        return asking(leader_a, 4)(epoch)

    assert find_truncation_offset(cache_of(follower_b), 6, ask) == 2
    assert asked == [3, 1]


def test_a_follower_ahead_of_the_new_leader_truncates_its_divergent_tail():
    # Both followed epoch 1's leader; this one got offsets 5-9, the new leader
    # (epoch 2) only 5-7 before it was elected.
    follower, leader = [0] * 5 + [1] * 5, [0] * 5 + [1] * 3 + [2] * 2
    assert truncate_against(follower, leader, leader_epoch=2) == 8


def test_a_follower_ahead_of_a_new_leader_that_wrote_nothing_yet_truncates_to_its_log_end():
    follower, leader = [0, 0, 0, 1], [0, 0]
    assert truncate_against(follower, leader, leader_epoch=2) == 2


def test_a_follower_whose_epochs_are_all_newer_than_the_leaders_keeps_none_of_its_batches():
    # The follower's log starts at 4 (earlier segments deleted), all of epoch
    # 3; the leader never had epoch 3 and its epoch 1 runs to 6.
    follower = [EpochEntry(3, 4)]
    leader = [EpochEntry(1, 0), EpochEntry(5, 6)]
    answer = end_offset_for_epoch(leader, 3, 8)
    assert answer == (1, 6)
    assert truncation_step(follower, 8, answer) == Truncation(4, done=True)


# -- the leader's check of a Fetch with last_fetched_epoch (v12+) ----------------------


def test_a_fetch_that_agrees_with_the_leaders_log_is_served():
    leader = cache_of([0, 0, 1, 1], leader_epoch=2)
    assert diverging_epoch(leader, 4, 0, last_fetched_epoch=1, fetch_offset=4) == (ErrorCode.NONE, None)


def test_a_fetch_past_the_end_of_its_epoch_on_the_leader_gets_the_diverging_epoch():
    leader = cache_of([0, 0, 1, 1, 2], leader_epoch=2)
    assert diverging_epoch(leader, 5, 0, last_fetched_epoch=1, fetch_offset=6) == (ErrorCode.NONE, (1, 4))


def test_a_fetch_naming_an_epoch_the_leader_never_had_gets_its_largest_older_epoch():
    leader = cache_of([0, 0, 2, 2], leader_epoch=2)
    assert diverging_epoch(leader, 4, 0, last_fetched_epoch=1, fetch_offset=3) == (ErrorCode.NONE, (0, 2))


def test_a_fetch_the_leader_cannot_place_is_out_of_range():
    leader = cache_of([0, 0], leader_epoch=1)
    assert diverging_epoch(leader, 2, 0, last_fetched_epoch=-1, fetch_offset=2)[0] == ErrorCode.OFFSET_OUT_OF_RANGE
    assert diverging_epoch(leader, 2, 1, last_fetched_epoch=0, fetch_offset=0)[0] == ErrorCode.OFFSET_OUT_OF_RANGE


# -- property: the loop finds exactly where two logs stop agreeing ----------------------


class Replica:
    """A log (the epoch of each offset) and its epoch cache, kept as Kafka keeps it."""

    def __init__(self) -> None:
        self.log: list[int] = []
        self.cache: list[EpochEntry] = []

    def assign(self, epoch: int, start: int) -> None:
        if self.cache and self.cache[-1].epoch == epoch:
            return
        self.cache = [e for e in self.cache if e.epoch < epoch and e.start_offset < start] + [EpochEntry(epoch, start)]

    def truncate(self, offset: int) -> None:
        del self.log[offset:]
        self.cache = truncate_cache(self.cache, offset)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


step = st.one_of(
    st.tuples(st.just("elect"), st.integers(0, 2)),
    st.tuples(st.just("append"), st.integers(1, 3)),
    st.tuples(st.just("follow"), st.integers(0, 2), st.integers(0, 4)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=40))
def test_any_history_of_leaders_truncates_a_follower_to_exactly_where_it_diverges(steps):
    """Elections of any replica (unclean ones included, one leader per epoch),
    appends, and followers catching up part way: every truncation keeps the
    whole common prefix with the leader and nothing past it. Records are
    told apart by (offset, epoch): one leader writes each epoch."""
    replicas = [Replica() for _ in range(3)]
    leader, epoch = 0, 0
    replicas[0].assign(0, 0)
    for op in steps:
        if op[0] == "elect":
            leader, epoch = op[1], epoch + 1
            replicas[leader].assign(epoch, len(replicas[leader].log))
        elif op[0] == "append":
            lead = replicas[leader]
            lead.log += [epoch] * op[1]
        elif op[1] != leader:
            lead, follower = replicas[leader], replicas[op[1]]

            def ask(e, lead=lead):
                return end_offset_for_epoch(lead.cache, e, len(lead.log))

            offset = find_truncation_offset(follower.cache, len(follower.log), ask)
            assert offset == common_prefix(follower.log, lead.log)
            follower.truncate(offset)
            for e in lead.log[offset : offset + op[2]]:
                follower.assign(e, len(follower.log))
                follower.log.append(e)
