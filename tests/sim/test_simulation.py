"""The seeded simulation as a test, and the checkers' own tests.

Seeds run in chunks so a failure names its seeds (replay one with
``python -m tests.sim --seed S``). The checker tests plant each kind of bug
and demand that it is reported: a checker that cannot fail proves nothing.
"""

from __future__ import annotations

import pytest

from riverlog.broker.controller.raft import core as raft_core
from riverlog.broker.controller.raft.messages import HardState

from tests.sim.bench import election_ms
from tests.sim.checkers import Checker, Violation
from tests.sim.cluster import Simulation

CHUNKS = 8
SEEDS_PER_CHUNK = 50


def chunk_id(chunk: int) -> str:
    return f"seeds{chunk * SEEDS_PER_CHUNK}-{(chunk + 1) * SEEDS_PER_CHUNK - 1}"


@pytest.mark.parametrize("chunk", range(CHUNKS), ids=chunk_id)
def test_no_seed_breaks_a_rule(chunk: int) -> None:
    failures = []
    for seed in range(chunk * SEEDS_PER_CHUNK, (chunk + 1) * SEEDS_PER_CHUNK):
        violation = Simulation(seed).run().violation
        if violation is not None:
            failures.append(str(violation))
    assert not failures, f"{len(failures)} seeds broke a rule:\n" + "\n".join(failures)


def test_a_seed_replays_the_same_trace() -> None:
    traces: list[list[str]] = [[], []]
    for trace in traces:
        Simulation(7, trace=trace.append).run()
    assert traces[0] == traces[1] and len(traces[0]) > 100


def test_a_new_leader_follows_a_leader_crash() -> None:
    for seed in range(20):
        assert election_ms(seed) < 30_000


# -- the checkers catch planted bugs ------------------------------------------------------


def caught(rule: str, plant) -> None:  # type: ignore[no-untyped-def]
    checker = Checker(seed=99)
    with pytest.raises(Violation) as raised:
        plant(checker)
    assert raised.value.rule == rule
    assert "seed 99" in str(raised.value)


def test_two_leaders_in_one_epoch_are_caught() -> None:
    def plant(c: Checker) -> None:
        c.leader_seen(0, 3)
        c.leader_seen(0, 3)  # the same leader again is fine
        c.leader_seen(1, 4)
        c.leader_seen(2, 3)
    caught("one leader per epoch", plant)


def test_a_changed_committed_entry_is_caught() -> None:
    def plant(c: Checker) -> None:
        c.committed(0, 5, 2, b"a", False, "applied")
        c.committed(1, 5, 2, b"a", False, "below high watermark")
        c.committed(1, 5, 3, b"a", False, "below high watermark")
    caught("a committed entry is never lost or changed", plant)


def test_a_lost_acknowledged_proposal_is_caught() -> None:
    def plant(c: Checker) -> None:
        c.committed(0, 0, 1, b"leader", True, "applied")
        c.ack(1, 1, b"c0-1")  # acknowledged, but no node ever committed offset 1
        c.acked_are_committed()
    caught("acknowledged proposals are committed", plant)

    def overwritten(c: Checker) -> None:
        c.ack(1, 1, b"c0-1")
        c.committed(0, 1, 2, b"c1-1", False, "applied")  # a later epoch took the offset
        c.acked_are_committed()
    caught("acknowledged proposals are committed", overwritten)


def test_epoch_and_high_watermark_going_back_are_caught() -> None:
    caught("epochs never go back", lambda c: (c.progress(0, 4, 0), c.progress(0, 3, 0)))
    caught("high watermarks never go back", lambda c: (c.progress(0, 4, 10), c.progress(0, 4, 9)))


def test_a_restart_may_lower_the_high_watermark_but_not_the_durable_epoch() -> None:
    c = Checker(seed=1)
    c.hard_state_written(0, HardState(5, 0, -1))
    c.progress(0, 5, 10)
    c.restarted(0, 5, 0)
    c.progress(0, 5, 3)
    caught("durable epoch never goes back", lambda c: (c.hard_state_written(0, HardState(5)), c.restarted(0, 4, 0)))
    caught("durable epoch never goes back",
           lambda c: (c.hard_state_written(0, HardState(5)), c.hard_state_written(0, HardState(4))))


def test_two_votes_in_one_epoch_and_an_early_vote_are_caught() -> None:
    caught("one vote per epoch",
           lambda c: (c.hard_state_written(0, HardState(2, 1, -1)), c.hard_state_written(0, HardState(2, 2, -1))))
    caught("a vote leaves only once durable", lambda c: c.vote_sent(0, 1, 2, HardState(1, -1, -1)))


def test_truncating_committed_entries_is_caught() -> None:
    c = Checker(seed=1)
    c.progress(0, 1, 6)
    c.truncated(0, 6)  # at the high watermark is fine
    caught("committed entries are never truncated", lambda c: (c.progress(0, 1, 6), c.truncated(0, 5)))


def test_a_commit_without_a_durable_majority_is_caught() -> None:
    checker = Checker(seed=5, durable_holders=lambda offset, epoch: 1, majority=2)
    with pytest.raises(Violation, match="commit needs a durable majority"):
        checker.committed(0, 0, 1, b"x", False, "applied")


def test_a_snapshot_holding_an_uncommitted_entry_is_caught() -> None:
    caught("snapshots hold only committed entries",
           lambda c: c.committed(1, 3, 1, b"x", False, "in an installed snapshot", known_only=True))


def test_an_applied_state_that_is_not_a_prefix_is_caught() -> None:
    def plant(c: Checker) -> None:
        for offset, data in enumerate((b"a", b"b", b"c")):
            c.committed(0, offset, 1, data, False, "applied")
        c.applied_is_prefix(0, [(0, 1, b"a"), (1, 1, b"b")], 2)  # fine
        c.applied_is_prefix(0, [(0, 1, b"a"), (2, 1, b"c")], 3)  # skipped offset 1
    caught("applied state is a prefix of the committed history", plant)


def test_the_simulation_catches_a_core_without_the_election_restriction(monkeypatch: pytest.MonkeyPatch) -> None:
    """Raft's election restriction removed: a stale voter can win and
    overwrite committed entries. Some seed must show it."""
    assert hasattr(raft_core.RaftCore, "_log_up_to_date"), "the rule moved: sabotage it where it is now"
    monkeypatch.setattr(raft_core.RaftCore, "_log_up_to_date", lambda self, m: True)
    rules = {v.rule for seed in range(60) if (v := Simulation(seed).run().violation) is not None}
    assert rules & {"a committed entry is never lost or changed", "no exception escapes the core",
                    "acknowledged proposals are committed", "committed entries are never truncated"}, rules
