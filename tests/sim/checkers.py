"""The safety rules, checked as the simulation runs.

The cluster reports what each node does (a leader seen, a high watermark
reached, a truncation, a hard state written, a vote sent, an entry handed
to the state machine, a proposal acknowledged); each report is checked at
once and the first broken rule raises ``Violation`` naming the seed, the
simulated time and the rule. The rules are Raft's (Kafka's
RaftEventSimulationTest checks the first three):

- one leader per epoch, over all time;
- epochs and high watermarks never go back on a live node, the durable
  epoch never goes back, a vote is given at most once per epoch;
- a vote leaves only once it is durable;
- an entry is committed only when a majority of voters hold it durably;
- a committed entry is never lost or changed: ``history`` keeps offset ->
  (epoch, data) of everything any node has seen below its high watermark,
  applied or received in a snapshot, and every later sighting must agree
  (so any two logs agree below the smaller of their high watermarks);
- snapshots hold only committed entries;
- committed entries are never truncated (below the node's high watermark);
- what a state machine applied is a prefix of the committed history;
- every acknowledged proposal is in the committed history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from riverlog.broker.controller.raft.messages import Entry, HardState

Committed = tuple[int, bytes, bool]  # (epoch, data, control)


class Violation(Exception):
    def __init__(self, seed: int, time_ms: int, rule: str, detail: str) -> None:
        super().__init__(f"seed {seed} at {time_ms}ms: {rule}: {detail}")
        self.seed, self.time_ms, self.rule, self.detail = seed, time_ms, rule, detail


class Checker:
    def __init__(self, seed: int, now_ms: Callable[[], int] = lambda: 0,
                 durable_holders: Callable[[int, int], int] | None = None, majority: int = 0) -> None:
        self.seed = seed
        self._now_ms = now_ms
        # durable_holders(offset, epoch): how many voters hold that entry on disk (or a snapshot past it)
        self._durable_holders = durable_holders
        self._majority = majority
        self.leaders: dict[int, int] = {}  # epoch -> the first leader seen in it
        self.history: dict[int, Committed] = {}
        self.acked: dict[bytes, tuple[int, int]] = {}  # payload -> (offset, epoch)
        self._epoch: dict[int, int] = {}  # node -> epoch of its live incarnation
        self._hw: dict[int, int] = {}  # node -> high watermark of its live incarnation
        self._durable: dict[int, HardState] = {}  # node -> last hard state on its disk

    def fail(self, rule: str, detail: str) -> None:
        raise Violation(self.seed, self._now_ms(), rule, detail)

    # -- leadership, epochs, high watermarks --------------------------------------

    def leader_seen(self, node: int, epoch: int) -> None:
        first = self.leaders.setdefault(epoch, node)
        if first != node:
            self.fail("one leader per epoch", f"node {node} is leader in epoch {epoch}, node {first} was before")

    def progress(self, node: int, epoch: int, high_watermark: int) -> int:
        """A live node's epoch and high watermark; returns the previous high
        watermark (the caller checks the entries it newly covers)."""
        last_epoch = self._epoch.get(node, epoch)
        if epoch < last_epoch:
            self.fail("epochs never go back", f"node {node} went from epoch {last_epoch} to {epoch}")
        last_hw = self._hw.get(node, high_watermark)
        if high_watermark < last_hw:
            self.fail("high watermarks never go back",
                      f"node {node} went from high watermark {last_hw} to {high_watermark}")
        self._epoch[node], self._hw[node] = epoch, high_watermark
        return last_hw

    def restarted(self, node: int, epoch: int, high_watermark: int) -> None:
        durable = self._durable.get(node)
        if durable is not None and epoch < durable.epoch:
            self.fail("durable epoch never goes back",
                      f"node {node} restarted in epoch {epoch}, its disk said {durable.epoch}")
        self._epoch[node], self._hw[node] = epoch, high_watermark  # a restart may lower the in-memory HW

    def hard_state_written(self, node: int, new: HardState) -> None:
        old = self._durable.get(node, HardState())
        if new.epoch < old.epoch:
            self.fail("durable epoch never goes back", f"node {node} wrote epoch {new.epoch} over {old.epoch}")
        if new.epoch == old.epoch:
            if old.voted_for != -1 and new.voted_for != old.voted_for:
                self.fail("one vote per epoch",
                          f"node {node} voted for {old.voted_for} then {new.voted_for} in epoch {new.epoch}")
            if old.leader_id != -1 and new.leader_id != old.leader_id:
                self.fail("one leader per epoch",
                          f"node {node} recorded leader {old.leader_id} then {new.leader_id} in epoch {new.epoch}")
        self._durable[node] = new

    def vote_sent(self, node: int, candidate: int, epoch: int, durable: HardState) -> None:
        if durable.epoch != epoch or durable.voted_for != candidate:
            self.fail("a vote leaves only once durable",
                      f"node {node} granted epoch {epoch} to {candidate}; its disk holds {durable}")

    # -- the committed history ----------------------------------------------------

    def committed(self, node: int, offset: int, epoch: int, data: bytes, control: bool, how: str,
                  known_only: bool = False) -> None:
        """``node`` holds (epoch, data) at ``offset`` as committed (``how``:
        below its high watermark, applied, or in a snapshot). ``known_only``:
        it must already be in the history (a snapshot is taken only of what
        some node applied, so it holds nothing new)."""
        known = self.history.get(offset)
        if known is None and known_only:
            self.fail("snapshots hold only committed entries",
                      f"node {node} has offset {offset} (epoch {epoch}) {how}, never committed anywhere")
        if known is None:
            if self._durable_holders is not None:
                holders = self._durable_holders(offset, epoch)
                if holders < self._majority:
                    self.fail("commit needs a durable majority",
                              f"offset {offset} (epoch {epoch}) is committed on node {node} ({how}) "
                              f"but only {holders} voters hold it durably, {self._majority} needed")
            self.history[offset] = (epoch, data, control)
        elif known[0] != epoch or known[1] != data:
            self.fail("a committed entry is never lost or changed",
                      f"node {node} has offset {offset} as (epoch {epoch}, {data[:40]!r}) ({how}); "
                      f"committed was (epoch {known[0]}, {known[1][:40]!r})")

    def committed_entries(self, node: int, entries: Iterable[Entry], how: str, known_only: bool = False) -> None:
        for e in entries:
            self.committed(node, e.offset, e.epoch, e.data, e.control, how, known_only)

    def truncated(self, node: int, truncate_to: int) -> None:
        hw = self._hw.get(node, 0)
        if truncate_to < hw:
            self.fail("committed entries are never truncated",
                      f"node {node} truncated to {truncate_to} below its high watermark {hw}")

    def applied_is_prefix(self, node: int, applied: list[tuple[int, int, bytes]], applied_end_offset: int) -> None:
        """The state machine holds exactly the committed non-control payloads
        below ``applied_end_offset``, in order."""
        expected = [(o, c[0], c[1]) for o in range(applied_end_offset) if (c := self.history.get(o)) and not c[2]]
        mine = [a for a in applied if a[0] in self.history]
        if mine != expected:
            diff = next((i for i, (a, b) in enumerate(zip(mine, expected)) if a != b), min(len(mine), len(expected)))
            self.fail("applied state is a prefix of the committed history",
                      f"node {node} applied {mine[diff:diff + 1]} at position {diff}, "
                      f"history has {expected[diff:diff + 1]}")

    # -- clients ------------------------------------------------------------------

    def ack(self, offset: int, epoch: int, data: bytes) -> None:
        self.acked.setdefault(data, (offset, epoch))
        if offset in self.history:
            self.committed(-1, offset, epoch, data, False, "acknowledged")

    def acked_are_committed(self) -> None:
        for data, (offset, epoch) in self.acked.items():
            known = self.history.get(offset)
            if known is None or known[0] != epoch or known[1] != data:
                self.fail("acknowledged proposals are committed",
                          f"{data!r} was acknowledged at offset {offset} in epoch {epoch}; "
                          f"the committed log has {known and known[:2]}")
