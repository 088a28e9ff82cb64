"""The rebalance mechanics of one classic group (Kafka's prepareRebalance,
onCompleteJoin, DelayedJoin, InitialDelayedJoin, DelayedSync and
removeMemberAndUpdateGroup).

The API modules (join.py, membership.py) decide what a request does to a
group; `Rebalancer` moves the group through its generations: it opens a
join round, completes it (bumps the generation, answers the waiting
JoinGroups), hands out the leader's assignment, removes members (answering
what they wait on) and runs a group's deadlines. Pure: no I/O, no clock.
"""

from __future__ import annotations

import logging

from riverlog.client.protocol import ErrorCode

from .config import GroupConfig
from .group import Group
from .member import Member
from .outcome import Outcome
from .records_model import GroupMetadataRecord
from .responses import join_ok, join_response, sync_response
from .state import GroupState

log = logging.getLogger(__name__)

E = ErrorCode


class Rebalancer:
    def __init__(self, config: GroupConfig) -> None:
        self.config = config

    def maybe_prepare(self, group: Group, now_ms: int, out: Outcome, reason: str) -> None:
        """Start a rebalance unless one is under way (or the group is dead)."""
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY):
            self.prepare(group, now_ms, out, reason)

    def prepare(self, group: Group, now_ms: int, out: Outcome, reason: str) -> None:
        """Open a join round: PREPARING_REBALANCE until every member rejoined or the deadline."""
        # Rebalances and removals are logged at INFO, as Kafka's coordinator
        # does: what a group went through is then in the broker's log.
        log.info("preparing to rebalance group %s in state %s with old generation %d (reason: %s)",
                 group.group_id, group.state, group.generation_id, reason)
        if group.state is GroupState.COMPLETING_REBALANCE:
            self._reset_and_propagate_assignment_error(group, E.REBALANCE_IN_PROGRESS, now_ms, out)
        group.pending_sync_members.clear()
        group.sync_deadline_ms = None
        rebalance_timeout_ms = group.rebalance_timeout_ms()
        delay_ms = self.config.group_initial_rebalance_delay_ms
        if group.state is GroupState.EMPTY and delay_ms > 0:
            group.initial_delay = (delay_ms, max(rebalance_timeout_ms - delay_ms, 0))
            group.join_deadline_ms = now_ms + delay_ms
        else:
            group.initial_delay = None
            group.join_deadline_ms = now_ms + rebalance_timeout_ms
        group.new_member_added = False
        group.transition_to(GroupState.PREPARING_REBALANCE, now_ms)
        self.try_complete_join(group, now_ms, out)

    def try_complete_join(self, group: Group, now_ms: int, out: Outcome) -> None:
        """Complete the join round now if nobody is left to wait for."""
        if (group.state is GroupState.PREPARING_REBALANCE and group.initial_delay is None
                and group.has_all_members_joined()):
            self._complete_join(group, now_ms, out)

    def _complete_join(self, group: Group, now_ms: int, out: Outcome) -> None:
        """Kafka's onCompleteJoin: drop dynamic members that did not rejoin, bump the generation."""
        for m in [m for m in group.members.values() if not m.is_awaiting_join and not m.is_static]:
            self.remove_member(group, m, now_ms, out, "did not rejoin within the rebalance timeout", update=False)
        if not group.maybe_elect_new_joined_leader() and group.members:
            # Nobody rejoined (only static members left): wait another round
            # for them to rejoin or time out.
            group.initial_delay = None
            group.join_deadline_ms = now_ms + group.rebalance_timeout_ms()
            return
        group.init_next_generation(now_ms)
        if group.state is GroupState.EMPTY:
            log.info("group %s with generation %d is now empty", group.group_id, group.generation_id)
            out.records.append(GroupMetadataRecord.of(group))
            return
        log.info("stabilized group %s generation %d with %d members",
                 group.group_id, group.generation_id, len(group.members))
        for member_id, m in group.members.items():
            if m.join_waiter is not None:
                out.respond(m.join_waiter.handle, join_ok(group, member_id, m.join_waiter.version))
                m.join_waiter = None
            m.last_heartbeat_ms = now_ms
            m.is_new = False
            group.pending_sync_members.add(member_id)
        group.sync_deadline_ms = now_ms + group.rebalance_timeout_ms()

    def assign(self, group: Group, assignments: dict[str, bytes], now_ms: int, out: Outcome) -> None:
        """The leader's SyncGroup: store the generation's assignment, answer
        every member waiting on SyncGroup, and become STABLE."""
        assert group.state is GroupState.COMPLETING_REBALANCE
        for mid, m in group.members.items():
            m.assignment = assignments.get(mid, b"")  # members the leader left out get nothing
            m.assignment_generation_id = group.generation_id
        out.records.append(GroupMetadataRecord.of(group))
        self._propagate_assignment(group, E.NONE, now_ms, out)
        group.transition_to(GroupState.STABLE, now_ms)

    def _propagate_assignment(self, group: Group, error: ErrorCode, now_ms: int, out: Outcome) -> None:
        ok = error is E.NONE
        for m in group.members.values():
            if m.sync_waiter is not None:
                out.respond(m.sync_waiter.handle, sync_response(
                    error, protocol_type=group.protocol_type if ok else None,
                    protocol_name=group.protocol_name if ok else None, assignment=m.assignment))
                m.sync_waiter = None
                m.last_heartbeat_ms = now_ms

    def _reset_and_propagate_assignment_error(self, group: Group, error: ErrorCode, now_ms: int,
                                              out: Outcome) -> None:
        assert group.state is GroupState.COMPLETING_REBALANCE
        for m in group.members.values():
            m.assignment = b""
            m.assignment_generation_id = -1
        self._propagate_assignment(group, error, now_ms, out)

    def remove_member(self, group: Group, member: Member, now_ms: int, out: Outcome, reason: str, *,
                      update: bool = True) -> None:
        """Remove a member, answering whatever it waits on; with `update`, rebalance as Kafka does."""
        log.info("removing member %s from group %s in state %s: %s",
                 member.member_id, group.group_id, group.state, reason)
        if member.join_waiter is not None:
            out.respond(member.join_waiter.handle,
                        join_response(member.join_waiter.version, E.UNKNOWN_MEMBER_ID, member.member_id))
            member.join_waiter = None
        if member.sync_waiter is not None:
            out.respond(member.sync_waiter.handle, sync_response(E.UNKNOWN_MEMBER_ID))
            member.sync_waiter = None
        group.remove(member.member_id)
        if not update:
            return
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self.maybe_prepare(group, now_ms, out, f"removing member {member.member_id}: {reason}")
        elif group.state is GroupState.PREPARING_REBALANCE:
            self.try_complete_join(group, now_ms, out)

    # --- deadlines

    def run_deadlines(self, group: Group, now_ms: int, out: Outcome) -> None:
        """Everything of `group` due by `now_ms`: expired handshakes and
        sessions, the end of the join round (after the initial delay), members
        that never synced."""
        for member_id, deadline in list(group.pending_members.items()):
            if deadline <= now_ms:
                del group.pending_members[member_id]
                self.try_complete_join(group, now_ms, out)
        for member in list(group.members.values()):
            deadline = member.session_deadline_ms()
            if deadline is not None and deadline <= now_ms and member.member_id in group.members:
                expired = ("a new member's JoinGroup was not completed in time" if member.is_new
                           else f"no heartbeat within its session timeout ({member.session_timeout_ms} ms)")
                self.remove_member(group, member, now_ms, out, expired)
        if (group.state is GroupState.PREPARING_REBALANCE and group.join_deadline_ms is not None
                and group.join_deadline_ms <= now_ms):
            if group.initial_delay is not None:
                delay_ms, remaining_ms = group.initial_delay
                if group.new_member_added and remaining_ms != 0:
                    # Someone joined during the delay: wait again, up to the rebalance timeout.
                    group.new_member_added = False
                    next_delay = min(self.config.group_initial_rebalance_delay_ms, remaining_ms)
                    group.initial_delay = (next_delay, max(remaining_ms - delay_ms, 0))
                    group.join_deadline_ms = now_ms + next_delay
                    return
            self._complete_join(group, now_ms, out)
        if (group.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE)
                and group.pending_sync_members and group.sync_deadline_ms is not None
                and group.sync_deadline_ms <= now_ms):
            # Members that never sent SyncGroup for this generation (Kafka 3.2+).
            for member_id in list(group.pending_sync_members):
                self.remove_member(group, group.members[member_id], now_ms, out,
                                   "no SyncGroup within the rebalance timeout", update=False)
            self.prepare(group, now_ms, out, "members did not sync in time")
        elif not group.pending_sync_members:
            group.sync_deadline_ms = None
