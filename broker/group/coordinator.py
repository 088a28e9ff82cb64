"""GroupCoordinator: Kafka's classic group protocol as a pure state machine.

The coordinator holds the groups and answers the group APIs through its
collaborators: JoinGroup in `join.py`; SyncGroup, Heartbeat and LeaveGroup in
`membership.py`; the rebalance mechanics and a group's deadlines in
`rebalance.py` (`Rebalancer`); offsets in `offsets.py`; group administration
in `admin.py`. Here: the groups themselves, time (`tick`) and loading
(`replay`, `adopt`, `unload`). Every API method takes
``(handle, request, version, now_ms)`` -- `request` is the decoded body with
the protocol table's field names, `handle` is opaque and comes back with the
response -- and returns an `Outcome`. Delayed JoinGroup and SyncGroup
responses come back from a later call (another member's request or `tick`).

Coordinator-level errors (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS) are
the driver's: it knows which ``__consumer_offsets`` partitions it leads.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from riverlog.client.protocol import ErrorCode

from . import admin, join, membership, offsets
from .config import GroupConfig
from .group import Group
from .member import Member
from .outcome import Outcome
from .rebalance import Rebalancer
from .records_model import (
    GroupMetadataRecord,
    GroupTombstone,
    OffsetCommitRecord,
    OffsetTombstone,
    Record,
)
from .responses import join_response, sync_response
from .state import GroupState

E = ErrorCode
_TICK_ROUNDS_MAX = 10_000


_MEMBER_ID_PREFIX_MAX = 255  # of the client id (or instance id) a member id starts with


def _random_member_id(prefix: str) -> str:
    # Kafka uses the whole client id; a client id can be 32 KB, and the member
    # id must still fit the int16-length strings of the group's record.
    return f"{prefix[:_MEMBER_ID_PREFIX_MAX]}-{uuid.uuid4()}"


class GroupCoordinator:
    def __init__(self, config: GroupConfig | None = None, *,
                 new_member_id: Callable[[str], str] = _random_member_id) -> None:
        """`new_member_id(client_id or group_instance_id)` makes member ids (Kafka: prefix-UUID)."""
        self.config = config or GroupConfig()
        self.rebalancer = Rebalancer(self.config)
        self._groups: dict[str, Group] = {}
        self._new_member_id = new_member_id
        self._next_offsets_check_ms: int | None = None

    # --- the groups (for the API modules)

    def group(self, group_id: str) -> Group | None:
        return self._groups.get(group_id)

    def groups(self) -> Iterable[Group]:
        return self._groups.values()

    def get_or_create_group(self, group_id: str, now_ms: int) -> Group:
        group = self._groups.get(group_id)
        if group is None:
            group = self._groups[group_id] = Group(group_id, now_ms)
        return group

    def forget_group(self, group_id: str) -> None:
        """Drop a group that left nothing to tombstone (a refused first JoinGroup)."""
        del self._groups[group_id]

    def remove_group(self, group: Group, now_ms: int, out: Outcome) -> None:
        """Kafka's cleanupGroupMetadata end: tombstone every offset and the group."""
        for topic, partition in list(group.offsets):
            out.records.append(OffsetTombstone(group.group_id, topic, partition))
        group.offsets.clear()
        if group.state is not GroupState.DEAD:
            group.transition_to(GroupState.DEAD, now_ms)
        out.records.append(GroupTombstone(group.group_id))
        del self._groups[group.group_id]

    def new_member_id(self, prefix: str) -> str:
        return self._new_member_id(prefix)

    # --- the membership APIs (see join.py and membership.py)

    def join_group(self, handle: Any, request: dict, version: int, now_ms: int, *,
                   client_id: str = "", client_host: str = "") -> Outcome:
        """JoinGroup v0-9. `client_id`/`client_host` come from the request header and socket."""
        self._observe(now_ms)
        return join.join_group(self, handle, request, version, now_ms, client_id=client_id,
                               client_host=client_host)

    def sync_group(self, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
        self._observe(now_ms)
        return membership.sync_group(self, handle, request, version, now_ms)

    def heartbeat(self, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
        self._observe(now_ms)
        return membership.heartbeat(self, handle, request, version, now_ms)

    def leave_group(self, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
        self._observe(now_ms)
        return membership.leave_group(self, handle, request, version, now_ms)

    # --- offsets and administration (see offsets.py and admin.py)

    def offset_commit(self, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
        self._observe(now_ms)
        return offsets.commit(self, handle, request, version, now_ms)

    def offset_fetch(self, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
        self._observe(now_ms)
        return offsets.fetch(self, handle, request, version)

    def offset_delete(self, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
        self._observe(now_ms)
        return offsets.delete(self, handle, request, version, now_ms)

    def describe_groups(self, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
        self._observe(now_ms)
        return admin.describe(self, handle, request, version)

    def list_groups(self, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
        self._observe(now_ms)
        return admin.list_groups(self, handle, request, version)

    def delete_groups(self, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
        self._observe(now_ms)
        return admin.delete(self, handle, request, version, now_ms)

    # --- time

    def _observe(self, now_ms: int) -> None:
        if self._next_offsets_check_ms is None:
            self._next_offsets_check_ms = now_ms + self.config.offsets_retention_check_interval_ms

    def next_deadline_ms(self) -> int | None:
        """When `tick` has work next; None when nothing is scheduled."""
        deadlines = [d for g in self._groups.values() if (d := g.next_deadline_ms()) is not None]
        if self._groups and self._next_offsets_check_ms is not None:
            deadlines.append(self._next_offsets_check_ms)
        return min(deadlines, default=None)

    def tick(self, now_ms: int) -> Outcome:
        """Run everything due by `now_ms`: expired sessions and handshakes, join
        and sync deadlines, the initial rebalance delay, offset expiry."""
        self._observe(now_ms)
        out = Outcome()
        for _ in range(_TICK_ROUNDS_MAX):
            deadline = self.next_deadline_ms()
            if deadline is None or deadline > now_ms:
                return out
            for group in list(self._groups.values()):
                self.rebalancer.run_deadlines(group, now_ms, out)
            if self._next_offsets_check_ms is not None and self._next_offsets_check_ms <= now_ms:
                self._next_offsets_check_ms = now_ms + self.config.offsets_retention_check_interval_ms
                offsets.expire(self, now_ms, out)
        raise AssertionError(f"tick({now_ms}) made no progress: deadline {self.next_deadline_ms()}")

    # --- loading and unloading (leadership of __consumer_offsets partitions moves)

    def adopt(self, loaded: GroupCoordinator) -> None:
        """Take over the groups `loaded` replayed (one partition, loaded aside
        so requests and ticks never see a half-replayed group)."""
        twice = [g.group_id for g in loaded.groups() if g.group_id in self._groups]
        assert not twice, f"groups loaded twice: {twice}"
        self._groups.update((g.group_id, g) for g in loaded.groups())
        if self._next_offsets_check_ms is None:
            self._next_offsets_check_ms = loaded._next_offsets_check_ms

    def unload(self, belongs: Callable[[str], bool]) -> Outcome:
        """Drop every group for which `belongs(group_id)` (their partition is
        led elsewhere now). Members waiting on a JoinGroup or SyncGroup get
        NOT_COORDINATOR, so no handle hangs and they find the new
        coordinator (Kafka's onGroupUnloaded). No records: the new leader
        owns the log now."""
        out = Outcome()
        for group_id in [g for g in self._groups if belongs(g)]:
            group = self._groups.pop(group_id)
            for member in group.members.values():
                if member.join_waiter is not None:
                    w = member.join_waiter
                    out.respond(w.handle, join_response(w.version, E.NOT_COORDINATOR, member.member_id))
                if member.sync_waiter is not None:
                    out.respond(member.sync_waiter.handle, sync_response(E.NOT_COORDINATOR))
                member.join_waiter = member.sync_waiter = None
        return out

    def replay(self, record: Record, now_ms: int) -> None:
        """Apply one ``__consumer_offsets`` record, in log order, when loading.

        Groups come back STABLE (or EMPTY) with their generation, protocol,
        leader and assignments; members get fresh sessions from `now_ms`.
        """
        self._observe(now_ms)
        if isinstance(record, OffsetCommitRecord):
            group = self.get_or_create_group(record.group_id, None)
            group.offsets[(record.topic, record.partition)] = record.offset
        elif isinstance(record, OffsetTombstone):
            group = self._groups.get(record.group_id)
            if group is not None:
                group.offsets.pop((record.topic, record.partition), None)
        elif isinstance(record, GroupTombstone):
            old = self._groups.pop(record.group_id, None)
            if old is not None and old.offsets:
                # Offsets outlive the group record (compaction may reorder them).
                self._groups[record.group_id] = fresh = Group(record.group_id, None)
                fresh.offsets = old.offsets
        elif isinstance(record, GroupMetadataRecord):
            old = self._groups.get(record.group_id)
            group = Group(record.group_id, record.current_state_timestamp_ms)
            if old is not None:
                group.offsets = old.offsets
            group.generation_id = record.generation_id
            group.protocol_type = record.protocol_type
            group.protocol_name = record.protocol_name if record.members else None
            for r in record.members:
                group.add(Member(r.member_id, r.group_instance_id, r.client_id, r.client_host,
                                 r.session_timeout_ms, r.rebalance_timeout_ms,
                                 record.protocol_type or "",
                                 [(record.protocol_name or "", r.subscription)],
                                 assignment=r.assignment,
                                 assignment_generation_id=record.generation_id,
                                 last_heartbeat_ms=now_ms))
            if record.members:
                group.leader_id = record.leader_id if record.leader_id in group.members else group.leader_id
                group.state = GroupState.STABLE
            group.subscribed_topics = group.compute_subscribed_topics()
            self._groups[record.group_id] = group
        else:
            raise TypeError(f"not a group record: {record!r}")
