"""LeaderState: what the leader of one epoch knows about its quorum.

Created when a node wins an election, dropped when it stops leading. Holds
each voter's replicated end offset (the fetch offset of its latest valid
fetch: a fetcher fetches only once what it has is durable), when each
replica last fetched (check-quorum), the fetches parked for lack of news,
and the high watermark last told to each replica.
"""

from __future__ import annotations

from .messages import FetchRequest


class LeaderState:
    def __init__(self, node_id: int, voters: frozenset[int], epoch: int, epoch_start_offset: int, now: int) -> None:
        self.node_id = node_id
        self.voters = voters
        self.epoch = epoch
        self.epoch_start_offset = epoch_start_offset  # where this epoch's LeaderChange entry is
        self.elected_at = now
        # voter -> end offset replicated there; only grows within an epoch,
        # because a validated fetch offset is a prefix of this leader's log.
        self.end_offsets: dict[int, int] = {v: 0 for v in voters if v != node_id}
        self.last_fetch: dict[int, int] = {}  # replica -> tick of its latest fetch in this epoch
        self.parked: dict[int, tuple[FetchRequest, int]] = {}  # replica -> (its fetch, tick to answer by)
        self.hw_told: dict[int, int] = {}  # replica -> the high watermark it was last sent
        self.begin_sent_at = now

    def fetched(self, replica: int, fetch_offset: int, now: int) -> None:
        self.last_fetch[replica] = now
        if replica in self.end_offsets and fetch_offset > self.end_offsets[replica]:
            self.end_offsets[replica] = fetch_offset

    def high_watermark(self, own_durable_end: int, current: int) -> int:
        """Kafka's rule: the end offset a majority of voters has (the value at
        index ⌊n/2⌋ of their end offsets sorted descending, ours included),
        adopted only past our epoch start offset (an entry of our own epoch
        must commit first: Raft's rule against committing an older term's
        entries by counting replicas) and only forwards."""
        offsets = sorted([own_durable_end, *self.end_offsets.values()], reverse=True)
        candidate = offsets[len(self.voters) // 2]
        if candidate > self.epoch_start_offset and candidate > current:
            return candidate
        return current

    def has_quorum_contact(self, now: int, fetch_timeout_ticks: int) -> bool:
        """Check-quorum: has a majority of voters (us included) fetched within
        the fetch timeout? Judged only once we have led that long."""
        if now - self.elected_at < fetch_timeout_ticks:
            return True
        alive = 1 + sum(
            1 for v in self.end_offsets if now - self.last_fetch.get(v, -fetch_timeout_ticks - 1) < fetch_timeout_ticks
        )
        return alive >= len(self.voters) // 2 + 1

    def silent_voters(self) -> list[int]:
        """Voters that have not fetched in this epoch (BeginQuorumEpoch may
        have been lost on the way to them)."""
        return sorted(v for v in self.end_offsets if v not in self.last_fetch)

    def forget_quiet_observers(self, now: int, fetch_timeout_ticks: int) -> None:
        """Drop what is kept about non-voters that have not fetched for a
        fetch timeout: any node id may fetch, so this must not only grow."""
        for replica in [r for r, t in self.last_fetch.items() if r not in self.voters and now - t > fetch_timeout_ticks]:
            self.last_fetch.pop(replica, None)
            self.hw_told.pop(replica, None)
