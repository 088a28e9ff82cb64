"""Elections: Vote (with pre-vote), BeginQuorumEpoch, EndQuorumEpoch, and
the role transitions they cause (roles.py documents the roles).

A mixin of RaftCore (core.py), which owns the state these methods read and
write; kept apart so the election rules read on their own.
"""

from __future__ import annotations

from riverlog.client.protocol import ErrorCode

from .leader import LeaderState
from .messages import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    EndQuorumEpochRequest,
    EndQuorumEpochResponse,
    Entry,
    VoteRequest,
    VoteResponse,
)
from .roles import Role


def leader_change_data(leader_id: int, voters: frozenset[int]) -> bytes:
    """The LeaderChange control entry a new leader writes at its epoch start."""
    return b"leader=%d voters=%s" % (leader_id, ",".join(map(str, sorted(voters))).encode())


class Elections:
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
