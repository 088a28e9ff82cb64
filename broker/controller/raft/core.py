"""RaftCore: KRaft's quorum protocol as a pure state machine.

Inputs: ``tick()`` (one ``tick_ms`` of time), ``step(message)``,
``propose(datas)``, ``resign()``, ``take_snapshot(snapshot)``. Output:
``ready()`` -> a :class:`Ready` (durable state to persist, messages to send,
entries newly committed), which the driver persists *before* it sends
anything and acknowledges with ``persisted(ready)``. No other call may come
between a non-empty ``ready()`` and its ``persisted()``.

The roles and their transitions are documented in roles.py. The safety
argument, in the places it rests on:

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
from collections.abc import Sequence
from dataclasses import replace

from client.protocol import ErrorCode

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
from .roles import RaftConfig, Role

_NEVER = -(1 << 62)


class NotLeaderError(Exception):
    """propose() on a node that is not the leader; names the leader it knows (-1: none)."""

    def __init__(self, leader_id: int, epoch: int) -> None:
        super().__init__(f"not the leader (leader {leader_id} at epoch {epoch})")
        self.leader_id = leader_id
        self.epoch = epoch


def leader_change_data(leader_id: int, voters: frozenset[int]) -> bytes:
    """The LeaderChange control entry a new leader writes at its epoch start."""
    return b"leader=%d voters=%s" % (leader_id, ",".join(map(str, sorted(voters))).encode())


class RaftCore:
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
        handler = getattr(self, "_on_" + type(m).__name__, None)
        if handler is not None:
            handler(m)

    # Vote ----------------------------------------------------------------------

    def _on_VoteRequest(self, m: VoteRequest) -> None:
        def answer(granted: bool, error: int = 0) -> None:
            self._send(VoteResponse(self.node_id, m.src, m.correlation, self.epoch, self.leader_id, granted,
                                    m.pre_vote, error))  # fmt: skip

        if not self.config.is_voter or m.src not in self.config.voters:
            return answer(False, ErrorCode.INCONSISTENT_VOTER_SET)
        if m.pre_vote:
            # Changes nothing here: would we vote at m.epoch?
            return answer(m.epoch > self.epoch and self._log_up_to_date(m) and not self._leader_alive())
        if m.epoch < self.epoch:
            return answer(False)
        if m.epoch > self.epoch:
            self._new_epoch(m.epoch, -1)
        if self.leader_id >= 0:
            granted = False  # this epoch has a leader
        elif self.voted_for >= 0:
            granted = self.voted_for == m.src
        else:
            granted = self._log_up_to_date(m)
        if granted and self.voted_for < 0:
            self.voted_for = m.src
            self._hard_dirty = True
            self.role = Role.VOTED
            self._reset_election_timer()
        answer(granted)

    def _on_VoteResponse(self, m: VoteResponse) -> None:
        if m.epoch > self.epoch:
            self._new_epoch(m.epoch, m.leader_id)
            return
        if m.correlation != self._round:
            return
        if m.pre_vote and self.role is Role.PROSPECTIVE:
            if m.epoch == self.epoch and m.leader_id >= 0 and m.leader_id != self.node_id and self.leader_id < 0:
                self._follow(m.leader_id)  # the epoch has a leader after all
                return
            self._tally(m.src, m.granted, self._become_candidate, self._abandon_prospective)
        elif not m.pre_vote and self.role is Role.CANDIDATE and m.epoch == self.epoch:
            if m.leader_id >= 0 and m.leader_id != self.node_id:
                self._follow(m.leader_id)
                return
            self._tally(m.src, m.granted, self._become_leader, lambda: None)

    def _tally(self, voter: int, granted: bool, won, lost) -> None:
        (self._votes if granted else self._refusals).add(voter)
        if len(self._votes) >= self.config.majority:
            won()
        elif len(self.config.voters) - len(self._refusals) < self.config.majority:
            lost()

    def _log_up_to_date(self, m: VoteRequest) -> bool:
        """Raft's election restriction, in KRaft's terms: the candidate's
        (last epoch, end offset) is at least ours."""
        return (m.last_epoch, m.last_end_offset) >= (self.log.last_epoch, self.log.end_offset)

    def _leader_alive(self) -> bool:
        if self.role is Role.LEADER:
            return True
        return (self.role is Role.FOLLOWER and not self._leader_gone
                and self._now - self._leader_contact < self._fetch_timeout_ticks)  # fmt: skip

    # BeginQuorumEpoch / EndQuorumEpoch -----------------------------------------------

    def _on_BeginQuorumEpochRequest(self, m: BeginQuorumEpochRequest) -> None:
        error = 0
        if m.src not in self.config.voters:
            error = ErrorCode.INCONSISTENT_VOTER_SET  # only a voter can have won an election
        elif m.epoch < self.epoch:
            error = ErrorCode.FENCED_LEADER_EPOCH
        elif m.epoch > self.epoch:
            self._new_epoch(m.epoch, m.src)
        elif self.leader_id < 0:
            self._follow(m.src)
        self._send(BeginQuorumEpochResponse(self.node_id, m.src, m.correlation, self.epoch, self.leader_id, error))

    def _on_BeginQuorumEpochResponse(self, m: BeginQuorumEpochResponse) -> None:
        if m.epoch > self.epoch:
            self._new_epoch(m.epoch, m.leader_id)

    def _on_EndQuorumEpochRequest(self, m: EndQuorumEpochRequest) -> None:
        error = 0
        if m.src not in self.config.voters:
            error = ErrorCode.INCONSISTENT_VOTER_SET
        elif m.epoch < self.epoch:
            error = ErrorCode.FENCED_LEADER_EPOCH
        else:
            if m.epoch > self.epoch:
                self._new_epoch(m.epoch, m.src)
            if self.role is Role.FOLLOWER and self.leader_id == m.src:
                # Campaign soon, the best placed successor first.
                successors = m.preferred_successors
                rank = successors.index(self.node_id) if self.node_id in successors else len(successors)
                self._leader_gone = True
                step = max(1, self._backoff_ticks // 4)
                self._campaign_at = self._now + rank * step + self._rng.randrange(step)
        self._send(EndQuorumEpochResponse(self.node_id, m.src, m.correlation, self.epoch, self.leader_id, error))

    def _on_EndQuorumEpochResponse(self, m: EndQuorumEpochResponse) -> None:
        if m.epoch > self.epoch:
            self._new_epoch(m.epoch, m.leader_id)

    # Fetch, at the leader ------------------------------------------------------------

    def _on_FetchRequest(self, m: FetchRequest) -> None:
        def refuse(error: int) -> None:
            self._send(FetchResponse(self.node_id, m.src, m.correlation, self.epoch, self.leader_id, error,
                                     high_watermark=self.high_watermark, log_start_offset=self.log.start_offset))  # fmt: skip

        if self.role is not Role.LEADER:
            return refuse(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        if m.epoch < self.epoch:
            return refuse(ErrorCode.FENCED_LEADER_EPOCH)
        if m.epoch > self.epoch:
            return refuse(ErrorCode.UNKNOWN_LEADER_EPOCH)
        assert self._leader is not None
        self._leader.parked.pop(m.src, None)  # the fetcher gave up on an earlier one
        self._leader.last_fetch[m.src] = self._now
        if self._divergence(m) is None:
            self._leader.fetched(m.src, m.fetch_offset, self._now)
            self._advance_leader_hw()
            if (m.fetch_offset >= self.log.end_offset and m.max_wait_ticks > 0
                    and self._leader.hw_told.get(m.src) == self.high_watermark):  # fmt: skip
                self._leader.parked[m.src] = (m, self._now + min(m.max_wait_ticks, self._fetch_wait_ticks))
                return
        self._answer_fetch(m)

    def _divergence(self, m: FetchRequest) -> tuple[int, int] | SnapshotId | None:
        """None if (last fetched epoch, fetch offset) is a position on our log;
        else the (epoch, end offset) to truncate to, or the snapshot to load."""
        log = self.log
        if m.fetch_offset < log.start_offset or (m.fetch_offset == log.start_offset > 0
                                                and m.last_fetched_epoch != log.epoch_at(m.fetch_offset - 1)):  # fmt: skip
            assert self.snapshot is not None, "the log starts after 0 only with a snapshot"
            return self.snapshot.id
        if m.fetch_offset == 0:
            return None
        found = log.end_offset_for_epoch(m.last_fetched_epoch)
        if found is None:
            assert self.snapshot is not None
            return self.snapshot.id
        epoch, end = found
        if epoch != m.last_fetched_epoch or m.fetch_offset > end:
            return epoch, end
        return None

    def _answer_fetch(self, m: FetchRequest) -> None:
        assert self._leader is not None
        answer = FetchResponse(self.node_id, m.src, m.correlation, self.epoch, self.node_id,
                               high_watermark=self.high_watermark, log_start_offset=self.log.start_offset)  # fmt: skip
        found = self._divergence(m)
        if isinstance(found, SnapshotId):
            answer = replace(answer, snapshot_id=found)
        elif found is not None:
            answer = replace(answer, diverging=found)
        else:
            entries = self.log.slice(m.fetch_offset, self.config.fetch_max_bytes)
            # Entries past our own durable end are still in our Ready: they go
            # out after it is persisted, so sending them is safe.
            answer = replace(answer, entries=tuple(entries))
            self._leader.hw_told[m.src] = self.high_watermark
        self._send(answer)

    def _wake_parked(self) -> None:
        assert self._leader is not None
        parked, self._leader.parked = self._leader.parked, {}
        for request, _ in parked.values():
            self._answer_fetch(request)

    def _advance_leader_hw(self) -> None:
        assert self._leader is not None
        hw = self._leader.high_watermark(self._durable_end, self.high_watermark)
        if hw > self.high_watermark:
            self.high_watermark = hw
            self._emit_committed()
            self._wake_parked()

    # Fetch, at a follower or observer ----------------------------------------------

    def _maybe_fetch(self) -> None:
        if self._now < self._fetch_not_before:
            return
        if self._fetch_correlation is not None and self._now - self._fetch_sent_at < self._request_timeout_ticks:
            return
        self._download = None  # a snapshot chunk went unanswered: start over from a fetch
        target = self.leader_id
        if target < 0:
            if self.role is not Role.OBSERVER:
                return
            voters = sorted(self.config.voters)
            target = self._fetch_target = voters[self._rng.randrange(len(voters))]
        self._fetch_correlation = self._next_correlation()
        self._fetch_sent_at = self._now
        self._send(FetchRequest(self.node_id, target, self._fetch_correlation, self.epoch, self.log.end_offset,
                                self.log.last_epoch, self._fetch_wait_ticks))  # fmt: skip

    def _on_FetchResponse(self, m: FetchResponse) -> None:
        if m.correlation != self._fetch_correlation:
            return  # an answer to a fetch we gave up on
        self._fetch_correlation = None
        if m.epoch > self.epoch:
            self._new_epoch(m.epoch, m.leader_id)
            self._maybe_fetch()
            return
        if m.error or m.epoch < self.epoch or m.src != self.leader_id:
            if m.epoch == self.epoch and m.leader_id >= 0 and self.leader_id < 0 and m.leader_id != self.node_id:
                self._follow(m.leader_id)
                self._maybe_fetch()
                return
            if m.error == ErrorCode.NOT_LEADER_OR_FOLLOWER and m.epoch == self.epoch and m.src == self.leader_id:
                self.peer_unreachable(m.src)  # our leader resigned (or restarted): as good as gone
            self._fetch_not_before = self._now + 1
            return
        self._heard_from_leader()
        if m.diverging is not None:
            epoch, end = m.diverging
            own = self.log.end_offset_for_epoch(epoch)
            point = min(end, own[1] if own is not None else self.log.start_offset)
            self._truncate(point)
        elif m.snapshot_id is not None:
            self._download = (m.snapshot_id, bytearray())
            self._request_snapshot_chunk()
            return
        else:
            entries = [e for e in m.entries if e.offset >= self.log.end_offset]
            if entries and entries[0].offset == self.log.end_offset:
                self._append(entries)
            self._learn_hw(m.high_watermark)
        self._maybe_fetch()

    def _learn_hw(self, leader_hw: int) -> None:
        # Never backwards: a new leader may not yet know how far the old one
        # committed, but what was committed is in its log all the same.
        hw = min(leader_hw, self.log.end_offset)
        if hw > self.high_watermark:
            self.high_watermark = hw
            self._emit_committed()

    # FetchSnapshot ---------------------------------------------------------------------

    def _request_snapshot_chunk(self) -> None:
        assert self._download is not None
        sid, data = self._download
        self._fetch_correlation = self._next_correlation()
        self._fetch_sent_at = self._now
        self._send(FetchSnapshotRequest(self.node_id, self.leader_id, self._fetch_correlation, self.epoch, sid,
                                        len(data), self.config.snapshot_chunk_bytes))  # fmt: skip

    def _on_FetchSnapshotRequest(self, m: FetchSnapshotRequest) -> None:
        def answer(error: int, **kw) -> None:
            self._send(FetchSnapshotResponse(self.node_id, m.src, m.correlation, self.epoch, self.leader_id,
                                             m.snapshot_id, error, **kw))  # fmt: skip

        if self.role is not Role.LEADER:
            return answer(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        if m.epoch != self.epoch:
            return answer(ErrorCode.FENCED_LEADER_EPOCH if m.epoch < self.epoch else ErrorCode.UNKNOWN_LEADER_EPOCH)
        assert self._leader is not None
        self._leader.last_fetch[m.src] = self._now  # a download is a sign of life too
        if self.snapshot is None or self.snapshot.id != m.snapshot_id:
            return answer(ErrorCode.SNAPSHOT_NOT_FOUND)
        data = self.snapshot.data
        if not 0 <= m.position <= len(data):
            return answer(ErrorCode.POSITION_OUT_OF_RANGE)
        chunk = data[m.position:m.position + max(1, min(m.max_bytes, self.config.snapshot_chunk_bytes))]
        answer(0, size=len(data), position=m.position, chunk=chunk)

    def _on_FetchSnapshotResponse(self, m: FetchSnapshotResponse) -> None:
        if m.correlation != self._fetch_correlation or self._download is None:
            return
        self._fetch_correlation = None
        sid, data = self._download
        if m.epoch > self.epoch:
            self._download = None
            self._new_epoch(m.epoch, m.leader_id)
            self._maybe_fetch()
            return
        if m.error or m.epoch != self.epoch or m.snapshot_id != sid or m.position != len(data):
            self._download = None  # start over from a fresh fetch
            self._fetch_not_before = self._now + 1
            return
        self._heard_from_leader()
        data += m.chunk
        if len(data) < m.size:
            self._request_snapshot_chunk()
            return
        self._download = None
        self._install(Snapshot(sid, bytes(data)))
        self._maybe_fetch()

    def _install(self, snapshot: Snapshot) -> None:
        """The leader's snapshot replaces our whole log and state machine."""
        sid = snapshot.id
        assert sid.end_offset >= self.high_watermark, (sid, self.high_watermark)
        self.snapshot = snapshot
        self.log.reset(sid)
        self._ready.snapshot = snapshot
        self._ready.truncate_to = None
        self._ready.entries = []
        self._ready.committed = []  # the snapshot holds all of it
        self.high_watermark = self.applied_offset = sid.end_offset

    # -- transitions -----------------------------------------------------------------

    def _new_epoch(self, epoch: int, leader_id: int) -> None:
        """A higher epoch: whatever we were doing belongs to the past."""
        assert epoch > self.epoch
        self.epoch = epoch
        self.voted_for = -1
        self.leader_id = -1
        self._hard_dirty = True
        self._leader = None
        self._download = None
        self._fetch_correlation = None
        self._round = -1
        if self.config.is_voter:
            self.role = Role.UNATTACHED
            self._reset_election_timer()
        if leader_id >= 0 and leader_id != self.node_id:
            self._follow(leader_id)

    def _follow(self, leader_id: int) -> None:
        assert leader_id != self.node_id and self.role is not Role.LEADER
        self.leader_id = leader_id
        self._hard_dirty = True
        if self.config.is_voter:
            self.role = Role.FOLLOWER
        self._heard_from_leader()
        self._fetch_correlation = None
        self._fetch_not_before = 0

    def _heard_from_leader(self) -> None:
        self._leader_contact = self._now
        self._leader_gone = False
        self._campaign_at = self._now + self._fetch_timeout_ticks

    def _become_prospective(self) -> None:
        assert self.config.is_voter
        if self.role is not Role.PROSPECTIVE:
            self._prior_role = self.role
        self.role = Role.PROSPECTIVE
        self._fetch_correlation = None
        self._download = None
        self._votes, self._refusals = {self.node_id}, set()
        self._round = self._next_correlation()
        self._reset_election_timer()
        for voter in sorted(self.config.voters - {self.node_id}):
            self._send(VoteRequest(self.node_id, voter, self._round, self.epoch + 1, self.log.last_epoch,
                                   self.log.end_offset, pre_vote=True))  # fmt: skip
        if len(self._votes) >= self.config.majority:
            self._become_candidate()

    def _abandon_prospective(self) -> None:
        """A majority refused the pre-vote: back to what we were, and wait."""
        prior = self._prior_role or Role.UNATTACHED
        self._round = -1
        if self.leader_id >= 0 and prior is Role.FOLLOWER:
            # Follow on, and try again after an election timeout; the last
            # contact stays as it was, so we grant others' pre-votes meanwhile
            # (resetting it made voters refuse each other in turn, for ever).
            self.role = Role.FOLLOWER
            self._campaign_at = self._now + self._election_ticks + self._rng.randrange(self._election_ticks)
        elif self.leader_id == self.node_id:
            self.role = Role.RESIGNED
        elif self.voted_for >= 0:
            self.role = Role.VOTED
        else:
            self.role = Role.UNATTACHED
        self._reset_election_timer()

    def _become_candidate(self) -> None:
        self.epoch += 1
        self.voted_for = self.node_id
        self.leader_id = -1
        self._hard_dirty = True
        self.role = Role.CANDIDATE
        self._votes, self._refusals = {self.node_id}, set()
        self._round = self._next_correlation()
        self._reset_election_timer()
        for voter in sorted(self.config.voters - {self.node_id}):
            self._send(VoteRequest(self.node_id, voter, self._round, self.epoch, self.log.last_epoch,
                                   self.log.end_offset))  # fmt: skip
        if len(self._votes) >= self.config.majority:
            self._become_leader()

    def _become_leader(self) -> None:
        assert self.role is Role.CANDIDATE and self.voted_for == self.node_id
        self.role = Role.LEADER
        self.leader_id = self.node_id
        self._hard_dirty = True
        self._round = -1
        start = self.log.end_offset
        self._leader = LeaderState(self.node_id, self.config.voters, self.epoch, start, self._now)
        self._append([Entry(start, self.epoch, leader_change_data(self.node_id, self.config.voters), control=True)])
        self._send_begin(sorted(self.config.voters - {self.node_id}))

    def _send_begin(self, voters: list[int]) -> None:
        assert self._leader is not None
        self._leader.begin_sent_at = self._now
        for voter in voters:
            self._send(BeginQuorumEpochRequest(self.node_id, voter, self._next_correlation(), self.epoch))

    def _step_down_resigned(self) -> None:
        """Stop leading this epoch; the next leader comes with a new one."""
        self.role = Role.RESIGNED
        self._leader = None
        self._election_deadline = self._now + 1 + self._rng.randrange(self._backoff_ticks)

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
