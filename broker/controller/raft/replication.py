"""Replication: pull-based Fetch at the leader (divergence, long polls, the
high watermark) and at followers and observers (truncation, the high
watermark they learn), and FetchSnapshot for those behind the log start.

A mixin of RaftCore (core.py), which owns the state these methods read and
write; kept apart so the replication rules read on their own.
"""

from __future__ import annotations

from dataclasses import replace

from riverlog.client.protocol import ErrorCode

from .messages import (
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    Snapshot,
    SnapshotId,
)
from .roles import Role


class Replication:
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
