"""One classic group's data and bookkeeping (Kafka's GroupMetadata).

No responses are built here: the coordinator decides what to answer; this
class keeps the membership maps consistent and answers questions about them.
"""

from __future__ import annotations

from riverlog.client.protocol import ErrorCode

from .member import Member
from .records_model import OffsetAndMetadata
from .state import VALID_PREVIOUS, GroupState
from .subscription import CONSUMER_PROTOCOL_TYPE, subscription_topics


class Group:
    def __init__(self, group_id: str, now_ms: int | None) -> None:
        self.group_id = group_id
        self.state = GroupState.EMPTY
        # When the group entered `state`; None for groups loaded from offsets only.
        self.state_timestamp_ms: int | None = now_ms
        self.generation_id = 0                          # never decreases
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None           # set exactly when a generation has members
        self.leader_id: str | None = None               # in members, or None when members is empty
        self.members: dict[str, Member] = {}            # insertion order = join order
        self.pending_members: dict[str, int] = {}       # member id -> expiry (MEMBER_ID_REQUIRED handshake)
        self.static_members: dict[str, str] = {}        # group_instance_id -> member id, both in members
        self.offsets: dict[tuple[str, int], OffsetAndMetadata] = {}
        # Union of members' subscriptions at the generation start (consumer
        # protocol only); None when unknown.
        self.subscribed_topics: set[str] | None = None
        # PreparingRebalance: when the join phase ends (Kafka's DelayedJoin).
        self.join_deadline_ms: int | None = None
        # Initial delay (Kafka's InitialDelayedJoin) while set: (delay, remaining).
        self.initial_delay: tuple[int, int] | None = None
        self.new_member_added = False
        # CompletingRebalance/Stable: members that have not sent SyncGroup for
        # this generation, removed at sync_deadline_ms (Kafka's DelayedSync).
        self.pending_sync_members: set[str] = set()
        self.sync_deadline_ms: int | None = None

    def __repr__(self) -> str:
        return (f"Group({self.group_id!r}, {self.state}, gen={self.generation_id}, "
                f"leader={self.leader_id!r}, members={list(self.members)})")

    def transition_to(self, state: GroupState, now_ms: int) -> None:
        assert self.state in VALID_PREVIOUS[state], f"{self.group_id}: {self.state} -> {state}"
        self.state = state
        self.state_timestamp_ms = now_ms

    # --- membership

    def add(self, member: Member) -> None:
        assert member.member_id not in self.members
        if member.group_instance_id is not None:
            assert member.group_instance_id not in self.static_members
            self.static_members[member.group_instance_id] = member.member_id
        if not self.members:
            self.protocol_type = member.protocol_type
        assert self.protocol_type == member.protocol_type
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.members[member.member_id] = member
        self.pending_members.pop(member.member_id, None)

    def remove(self, member_id: str) -> Member | None:
        member = self.members.pop(member_id, None)
        if member is not None and member.group_instance_id is not None:
            self.static_members.pop(member.group_instance_id, None)
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        self.pending_members.pop(member_id, None)
        self.pending_sync_members.discard(member_id)
        return member

    def replace_static_member(self, instance_id: str, old_id: str, new_id: str) -> Member:
        member = self.members.pop(old_id)
        member.member_id = new_id
        self.members[new_id] = member
        if self.leader_id == old_id:
            self.leader_id = new_id
        if old_id in self.pending_sync_members:
            self.pending_sync_members.discard(old_id)
            self.pending_sync_members.add(new_id)
        self.static_members[instance_id] = new_id
        return member

    def is_static_member_fenced(self, instance_id: str | None, member_id: str) -> bool:
        if instance_id is None:
            return False
        current = self.static_members.get(instance_id)
        return current is not None and current != member_id

    def validate_current_member(self, member_id: str, instance_id: str | None) -> ErrorCode:
        """Kafka's validateCurrentMember: NONE, FENCED_INSTANCE_ID or UNKNOWN_MEMBER_ID."""
        if instance_id is not None:
            current = self.static_members.get(instance_id)
            if current == member_id:
                return ErrorCode.NONE
            return ErrorCode.FENCED_INSTANCE_ID if current is not None else ErrorCode.UNKNOWN_MEMBER_ID
        return ErrorCode.NONE if member_id in self.members else ErrorCode.UNKNOWN_MEMBER_ID

    @property
    def num_awaiting_join(self) -> int:
        return sum(1 for m in self.members.values() if m.is_awaiting_join)

    def has_all_members_joined(self) -> bool:
        return self.num_awaiting_join == len(self.members) and not self.pending_members

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def maybe_elect_new_joined_leader(self) -> bool:
        """Keep a leader that rejoined, else pick any member that did (Kafka's rule)."""
        if self.leader_id is None:
            return False
        if self.members[self.leader_id].is_awaiting_join:
            return True
        for member_id, m in self.members.items():
            if m.is_awaiting_join:
                self.leader_id = member_id
                return True
        return False

    # --- protocols

    def supports_protocols(self, protocol_type: str, names: set[str]) -> bool:
        if self.state is GroupState.EMPTY or not self.members:
            return bool(protocol_type) and bool(names)
        return self.protocol_type == protocol_type and bool(names & self.candidate_protocols())

    def candidate_protocols(self) -> set[str]:
        """Protocols every member supports."""
        members = iter(self.members.values())
        first = next(members, None)
        if first is None:
            return set()
        common = set(first.protocol_names)
        for m in members:
            common &= m.protocol_names
        return common

    def select_protocol(self) -> str:
        """Each member votes for its preferred common protocol; most votes wins.

        Ties go to the protocol that got its first vote earliest in join order
        (Kafka leaves ties to hash order).
        """
        assert self.members, "cannot select a protocol for an empty group"
        candidates = self.candidate_protocols()
        assert candidates, "members share no protocol"
        votes: dict[str, int] = {}
        for m in self.members.values():
            choice = m.vote(candidates)
            votes[choice] = votes.get(choice, 0) + 1
        return max(votes, key=votes.__getitem__)

    def compute_subscribed_topics(self) -> set[str] | None:
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return None
        if not self.members:
            return set()
        if self.protocol_name is None:
            return None
        topics: set[str] = set()
        for m in self.members.values():
            t = subscription_topics(m.metadata(self.protocol_name))
            if t is None:
                return None
            topics |= t
        return topics

    def is_subscribed_to_topic(self, topic: str) -> bool:
        return self.subscribed_topics is None or topic in self.subscribed_topics

    def init_next_generation(self, now_ms: int) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.transition_to(GroupState.COMPLETING_REBALANCE, now_ms)
        else:
            self.protocol_name = None
            self.transition_to(GroupState.EMPTY, now_ms)
        self.subscribed_topics = self.compute_subscribed_topics()
        self.join_deadline_ms = None
        self.initial_delay = None
        self.new_member_added = False
        self.pending_sync_members.clear()
        self.sync_deadline_ms = None

    def current_member_metadata(self) -> list[dict]:
        """The leader's JoinGroup members list for the selected protocol."""
        assert self.protocol_name is not None
        return [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                 "metadata": m.metadata(self.protocol_name)} for m in self.members.values()]

    # --- offsets

    def expired_offsets(self, now_ms: int, retention_ms: int) -> list[tuple[str, int]]:
        """Kafka 2.1+ (KIP-211) expiry: which offsets have outlived retention.

        Empty group with a protocol type: retention runs from when the group
        became empty. Stable consumer group: from each commit, skipping
        subscribed topics. Group without a protocol type (simple commits):
        from each commit. An explicit expire timestamp (OffsetCommit v2-4
        retention_time_ms) wins.
        """
        if self.protocol_type is not None and self.state is GroupState.EMPTY:
            def base(o): return o.commit_timestamp_ms if self.state_timestamp_ms is None else self.state_timestamp_ms
            skip: set[str] = set()
        elif (self.protocol_type == CONSUMER_PROTOCOL_TYPE and self.subscribed_topics is not None
              and self.state is GroupState.STABLE):
            def base(o): return o.commit_timestamp_ms
            skip = self.subscribed_topics
        elif self.protocol_type is None:
            def base(o): return o.commit_timestamp_ms
            skip = set()
        else:
            return []
        expired = []
        for tp, o in self.offsets.items():
            if tp[0] in skip:
                continue
            if o.expire_timestamp_ms is not None:
                if now_ms >= o.expire_timestamp_ms:
                    expired.append(tp)
            elif now_ms - base(o) >= retention_ms:
                expired.append(tp)
        return expired

    # --- deadlines

    def next_deadline_ms(self) -> int | None:
        deadlines = list(self.pending_members.values())
        for m in self.members.values():
            d = m.session_deadline_ms()
            if d is not None:
                deadlines.append(d)
        if self.state is GroupState.PREPARING_REBALANCE and self.join_deadline_ms is not None:
            deadlines.append(self.join_deadline_ms)
        if self.pending_sync_members and self.sync_deadline_ms is not None:
            deadlines.append(self.sync_deadline_ms)
        return min(deadlines, default=None)

    def check_invariants(self) -> None:
        """Assert what must hold between calls (used by tests)."""
        assert (self.leader_id is None) == (not self.members)
        if self.leader_id is not None:
            assert self.leader_id in self.members
        for instance_id, member_id in self.static_members.items():
            assert self.members[member_id].group_instance_id == instance_id
        assert len(self.static_members) == sum(1 for m in self.members.values() if m.is_static)
        if self.state is GroupState.EMPTY:
            assert not self.members
        if self.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            assert self.members and self.protocol_name is not None
            assert all(not m.is_awaiting_join for m in self.members.values())
        if self.state is GroupState.STABLE:
            assert all(m.assignment_generation_id == self.generation_id for m in self.members.values())
            assert all(not m.is_awaiting_sync for m in self.members.values())
        if self.state is not GroupState.COMPLETING_REBALANCE:
            assert all(not m.is_awaiting_sync for m in self.members.values())
