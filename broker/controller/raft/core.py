"""RaftCore: KRaft's quorum protocol as a pure state machine.

Inputs: ``tick()`` (one ``tick_ms`` of time), ``step(message)``,
``propose(datas)``, ``resign()``, ``take_snapshot(snapshot)``. Output:
``ready()`` -> a :class:`Ready` (durable state to persist, messages to send,
entries newly committed), which the driver persists *before* it sends
anything and acknowledges with ``persisted(ready)``. No other call may come
between a non-empty ``ready()`` and its ``persisted()``.

The roles and their transitions are documented in roles.py; the election
rules live in election.py, replication in replication.py (mixins of this
class: one state, three readings). The safety argument, in the places it
rests on:

- A vote is granted at most once per epoch (``voted_for`` is durable before
  the VoteResponse leaves) and only to a candidate whose log is at least as
  up to date as ours (``_log_up_to_date``: Raft's election restriction).
- A leader commits (advances the high watermark) only through a majority of
  durable end offsets and only past its own epoch start (leader.py).
- A follower accepts entries only in answer to its latest fetch, truncates
  only where the leader's log diverges from its own, never below its high
  watermark, and acknowledges by fetching again once the entries are
  durable.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from .election import Elections
from .leader import LeaderState
from .log import RaftLog
from .messages import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    EndQuorumEpochRequest,
    EndQuorumEpochResponse,
    Entry,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    HardState,
    Message,
    Ready,
    Snapshot,
    SnapshotId,
    VoteRequest,
    VoteResponse,
)
from .replication import Replication
from .roles import RaftConfig, Role

_NEVER = -(1 << 62)


class NotLeaderError(Exception):
    """propose() on a node that is not the leader; names the leader it knows (-1: none)."""

    def __init__(self, leader_id: int, epoch: int) -> None:
        super().__init__(f"not the leader (leader {leader_id} at epoch {epoch})")
        self.leader_id = leader_id
        self.epoch = epoch


class RaftCore(Elections, Replication):
    def __init__(
        self,
        config: RaftConfig,
        rng: random.Random,
        hard_state: HardState = HardState(),
        snapshot: Snapshot | None = None,
        entries: Sequence[Entry] = (),
    ) -> None:
        c = self.config = config
        self.node_id = c.node_id
        self._rng = rng
        self._election_ticks = c.ticks(c.election_timeout_ms)
        self._backoff_ticks = c.ticks(c.election_backoff_max_ms)
        self._fetch_timeout_ticks = c.ticks(c.fetch_timeout_ms)
        self._request_timeout_ticks = c.ticks(c.request_timeout_ms)
        self._fetch_wait_ticks = c.ticks(c.fetch_max_wait_ms)

        self.log = RaftLog(snapshot.id if snapshot else None, entries)
        self.snapshot = snapshot
        self.epoch = hard_state.epoch
        self.voted_for = hard_state.voted_for
        self.leader_id = hard_state.leader_id
        if self.log.last_epoch > self.epoch:  # a log written before its quorum-state was: never below the log
            self.epoch, self.voted_for, self.leader_id = self.log.last_epoch, -1, -1
        # Everything below these is committed / handed to the state machine;
        # after a restart that is known only for the snapshot.
        self.high_watermark = self.log.start_offset
        self.applied_offset = self.log.start_offset
        self._durable_end = self.log.end_offset
        self._now = 0
        self._ready = Ready()
        self._hard_dirty = False
        self._awaiting_persist = False
        self._correlation = 0

        self._leader: LeaderState | None = None
        self._votes: set[int] = set()
        self._refusals: set[int] = set()
        self._round = -1  # correlation of the current (pre-)vote round
        self._prior_role: Role | None = None
        self._election_deadline = 0
        self._leader_contact = 0  # tick of the leader's latest valid answer (pre-votes are judged by it)
        self._campaign_at = self._fetch_timeout_ticks  # a follower campaigns from this tick on
        self._leader_gone = False  # EndQuorumEpoch heard or the leader unreachable: grant pre-votes, campaign soon
        self._fetch_correlation: int | None = None
        self._fetch_sent_at = _NEVER
        self._fetch_not_before = 0
        self._fetch_target = -1  # an observer's guess while the leader is unknown
        self._download: tuple[SnapshotId, bytearray] | None = None

        if not c.is_voter:
            self.role = Role.OBSERVER
        elif self.leader_id == self.node_id:
            self.role = Role.RESIGNED  # a restarted leader cannot lead its old epoch again
        elif self.leader_id >= 0:
            self.role = Role.FOLLOWER
        elif self.voted_for >= 0:
            self.role = Role.VOTED
        else:
            self.role = Role.UNATTACHED
        if c.voters == frozenset({self.node_id}):
            self._election_deadline = 0  # a quorum of one elects itself at once
        else:
            self._reset_election_timer()

    # -- reading -----------------------------------------------------------------

    @property
    def hard_state(self) -> HardState:
        return HardState(self.epoch, self.voted_for, self.leader_id)

    @property
    def log_start_offset(self) -> int:
        return self.log.start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.end_offset

    @property
    def last_epoch(self) -> int:
        return self.log.last_epoch

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    @property
    def leader_epoch_start(self) -> int:
        """The leader's epoch start offset (where its LeaderChange entry is); -1 unless leading."""
        return self._leader.epoch_start_offset if self._leader is not None else -1

    def entries_from(self, offset: int) -> list[Entry]:
        return self.log.entries[max(offset - self.log.start_offset, 0):]

    def entry_epoch(self, offset: int) -> int | None:
        return self.log.epoch_at(offset)

    def replica_states(self) -> dict[int, tuple[int, int]]:
        """Leader only: replica -> (end offset, ticks since its last fetch)."""
        if self._leader is None:
            return {}
        states = {self.node_id: (self._durable_end, 0)}
        for replica in set(self._leader.end_offsets) | set(self._leader.last_fetch):
            last = self._leader.last_fetch.get(replica)
            states[replica] = (self._leader.end_offsets.get(replica, -1), -1 if last is None else self._now - last)
        return states

    # -- the driver's side -------------------------------------------------------

    def ready(self) -> Ready:
        assert not self._awaiting_persist, "persisted() the previous ready first"
        if self._hard_dirty:
            self._ready.hard_state = self.hard_state
            self._hard_dirty = False
        ready, self._ready = self._ready, Ready()
        self._awaiting_persist = bool(ready)
        return ready

    def persisted(self, ready: Ready) -> None:
        if not ready:
            return
        assert self._awaiting_persist, "persisted() without a ready()"
        self._awaiting_persist = False
        if ready.snapshot is not None:
            self._durable_end = ready.snapshot.id.end_offset
        if ready.truncate_to is not None:
            self._durable_end = min(self._durable_end, ready.truncate_to)
        if ready.entries:
            assert ready.entries[0].offset <= self._durable_end, (ready.entries[0].offset, self._durable_end)
            self._durable_end = ready.entries[-1].offset + 1
        if self._leader is not None:
            self._advance_leader_hw()

    def _check_turn(self) -> None:
        assert not self._awaiting_persist, "persisted() the previous ready before anything else"

    # -- time ----------------------------------------------------------------------

    def tick(self) -> None:
        self._check_turn()
        self._now += 1
        now = self._now
        if self.role is Role.LEADER:
            assert self._leader is not None
            for replica, (request, deadline) in list(self._leader.parked.items()):
                if now >= deadline:
                    del self._leader.parked[replica]
                    self._answer_fetch(request)
            if now % self._fetch_timeout_ticks == 0:
                self._leader.forget_quiet_observers(now, self._fetch_timeout_ticks)
            if not self._leader.has_quorum_contact(now, self._fetch_timeout_ticks):
                self._step_down_resigned()
            elif now - self._leader.begin_sent_at >= self._request_timeout_ticks:
                self._send_begin(self._leader.silent_voters())
            return
        if self.role is Role.OBSERVER:
            if self.leader_id >= 0 and now - self._leader_contact >= self._fetch_timeout_ticks:
                self.leader_id = -1  # ask the voters again
                self._fetch_correlation = self._download = None
            self._maybe_fetch()
            return
        if self.role is Role.FOLLOWER:
            if now >= self._campaign_at:
                self._become_prospective()
            else:
                self._maybe_fetch()
            return
        if now >= self._election_deadline:
            self._become_prospective()

    # -- proposals -------------------------------------------------------------------

    def propose(self, datas: Sequence[bytes]) -> int:
        """Append ``datas`` as entries of this leader's epoch; the offset of
        the last. They are committed once the high watermark passes it."""
        self._check_turn()
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.leader_id, self.epoch)
        if not datas:
            raise ValueError("propose needs at least one entry")
        start = self.log.end_offset
        entries = [Entry(start + i, self.epoch, bytes(d)) for i, d in enumerate(datas)]
        self._append(entries)
        self._wake_parked()
        return entries[-1].offset

    def resign(self) -> None:
        """Graceful resignation: EndQuorumEpoch to the other voters, the most
        caught up first in the successor ranking, then stand down."""
        self._check_turn()
        if self.role is not Role.LEADER:
            return
        assert self._leader is not None
        ranked = sorted(self._leader.end_offsets, key=lambda v: (-self._leader.end_offsets[v], v))  # type: ignore[union-attr]
        for voter in ranked:
            self._send(EndQuorumEpochRequest(self.node_id, voter, self._next_correlation(), self.epoch, tuple(ranked)))
        self._step_down_resigned()

    def peer_unreachable(self, node: int) -> None:
        """The driver could not reach ``node`` (connection refused or reset).
        If it is our leader, campaign after a short random backoff instead of
        the whole fetch timeout, and grant pre-votes meanwhile: a crashed
        leader is replaced in well under a second. Safe whatever the cause:
        a pre-vote still needs a majority that has lost the leader too, and
        an answer from the leader cancels all of it."""
        self._check_turn()
        if self.role is Role.FOLLOWER and node == self.leader_id and not self._leader_gone:
            self._leader_gone = True
            self._campaign_at = min(self._campaign_at, self._now + self._rng.randrange(max(1, self._backoff_ticks // 4)))

    def take_snapshot(self, snapshot: Snapshot) -> None:
        """The driver stored ``snapshot`` of the state machine, made at an
        applied offset: drop the log before it and serve it to laggards."""
        self._check_turn()
        sid = snapshot.id
        assert self.log.start_offset <= sid.end_offset <= self.applied_offset, (sid, self.applied_offset)
        assert self.log.epoch_at(sid.end_offset - 1) == sid.epoch, (sid, self.log.epoch_at(sid.end_offset - 1))
        self.snapshot = snapshot
        self.log.compact(sid)

    # -- messages ------------------------------------------------------------------

    def step(self, m: Message) -> None:
        self._check_turn()
        assert m.dst == self.node_id, m
        _HANDLERS[type(m)](self, m)

    # -- helpers -----------------------------------------------------------------------

    def _append(self, entries: list[Entry]) -> None:
        self.log.append(entries)
        self._ready.entries.extend(entries)

    def _truncate(self, offset: int) -> None:
        assert offset >= self.high_watermark, f"would truncate committed entries: {offset} < {self.high_watermark}"
        if offset >= self.log.end_offset:
            return
        self.log.truncate_to(offset)
        pending = self._ready.entries
        if pending and offset >= pending[0].offset:
            del pending[offset - pending[0].offset:]
        else:
            pending.clear()
            prior = self._ready.truncate_to
            self._ready.truncate_to = offset if prior is None else min(prior, offset)

    def _emit_committed(self) -> None:
        end = min(self.high_watermark, self.log.end_offset)
        if end > self.applied_offset:
            start = self.applied_offset - self.log.start_offset
            self._ready.committed.extend(self.log.entries[start:end - self.log.start_offset])
            self.applied_offset = end

    def _send(self, message: Message) -> None:
        self._ready.messages.append(message)

    def _next_correlation(self) -> int:
        self._correlation += 1
        return self._correlation

    def _reset_election_timer(self) -> None:
        self._election_deadline = self._now + self._election_ticks + self._rng.randrange(self._election_ticks)


# Each message's handler, named here rather than found by name: a message
# without one fails at its first step, not silently.
_HANDLERS: dict[type[Message], Callable[[RaftCore, Message], None]] = {
    VoteRequest: RaftCore._on_VoteRequest,
    VoteResponse: RaftCore._on_VoteResponse,
    BeginQuorumEpochRequest: RaftCore._on_BeginQuorumEpochRequest,
    BeginQuorumEpochResponse: RaftCore._on_BeginQuorumEpochResponse,
    EndQuorumEpochRequest: RaftCore._on_EndQuorumEpochRequest,
    EndQuorumEpochResponse: RaftCore._on_EndQuorumEpochResponse,
    FetchRequest: RaftCore._on_FetchRequest,
    FetchResponse: RaftCore._on_FetchResponse,
    FetchSnapshotRequest: RaftCore._on_FetchSnapshotRequest,
    FetchSnapshotResponse: RaftCore._on_FetchSnapshotResponse,
}
