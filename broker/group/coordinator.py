"""GroupCoordinator: Kafka's classic group protocol as a pure state machine.

Membership (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), rebalance timing
(`tick`) and loading (`replay`) live here; offsets in `offsets.py`, group
administration in `admin.py`. Every API method takes
``(handle, request, version, now_ms)`` -- `request` is the decoded body with
the protocol table's field names, `handle` is opaque and comes back with the
response -- and returns an `Outcome`. Delayed JoinGroup and SyncGroup
responses come back from a later call (another member's request or `tick`).

Coordinator-level errors (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS) are
the driver's: it knows which ``__consumer_offsets`` partitions it leads.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from riverlog.client.protocol import ErrorCode

from . import admin, offsets
from .config import GroupConfig
from .group import Group
from .member import Member, Waiter
from .outcome import Outcome
from .records_model import (
    GroupMetadataRecord,
    GroupTombstone,
    OffsetCommitRecord,
    OffsetTombstone,
    Record,
)
from .responses import error_only, join_response, sync_response
from .state import GroupState

log = logging.getLogger(__name__)

E = ErrorCode
_TICK_ROUNDS_MAX = 10_000


_MEMBER_ID_PREFIX_MAX = 255  # of the client id (or instance id) a member id starts with


def _random_member_id(prefix: str) -> str:
    # Kafka uses the whole client id; a client id can be 32 KB, and the member
    # id must still fit the int16-length strings of the group's record.
    return f"{prefix[:_MEMBER_ID_PREFIX_MAX]}-{uuid.uuid4()}"


_MIN_REBALANCE_TIMEOUT_MS = 1000

class GroupCoordinator:
    def __init__(self, config: GroupConfig | None = None, *,
                 new_member_id: Callable[[str], str] = _random_member_id) -> None:
        """`new_member_id(client_id or group_instance_id)` makes member ids (Kafka: prefix-UUID)."""
        self.config = config or GroupConfig()
        self._groups: dict[str, Group] = {}
        self._new_member_id = new_member_id
        self._next_offsets_check_ms: int | None = None

    # --- read access

    def group(self, group_id: str) -> Group | None:
        return self._groups.get(group_id)

    def groups(self) -> Iterable[Group]:
        return self._groups.values()

    # --- JoinGroup

    def join_group(self, handle: Any, request: dict, version: int, now_ms: int, *,
                   client_id: str = "", client_host: str = "") -> Outcome:
        """JoinGroup v0-9. `client_id`/`client_host` come from the request header and socket."""
        self._observe(now_ms)
        out = Outcome()
        group_id = request["group_id"]
        member_id = request["member_id"] or ""
        instance_id = request.get("group_instance_id") if version >= 5 else None
        session_timeout_ms = request["session_timeout_ms"]
        rebalance_timeout_ms = request.get("rebalance_timeout_ms", -1) if version >= 1 else -1
        if rebalance_timeout_ms < 0:
            rebalance_timeout_ms = session_timeout_ms  # v0: the session timeout doubles as it
        # At least a second: a join round of 0 ms would complete and start
        # again in the same tick, over and over (Java's consumer sends
        # max.poll.interval.ms, never that small).
        rebalance_timeout_ms = max(rebalance_timeout_ms, _MIN_REBALANCE_TIMEOUT_MS)
        protocol_type = request["protocol_type"]
        protocols = [(p["name"], bytes(p["metadata"])) for p in request["protocols"]]
        waiter = Waiter(handle, version)

        def fail(error: ErrorCode, mid: str = member_id) -> Outcome:
            out.respond(handle, join_response(version, error, mid))
            return out

        if not group_id:
            return fail(E.INVALID_GROUP_ID)
        cfg = self.config
        if not cfg.group_min_session_timeout_ms <= session_timeout_ms <= cfg.group_max_session_timeout_ms:
            return fail(E.INVALID_SESSION_TIMEOUT)
        group = self._groups.get(group_id)
        created = group is None
        if group is None:
            if member_id:
                return fail(E.UNKNOWN_MEMBER_ID)
            group = self._groups[group_id] = Group(group_id, now_ms)
        if not self._accept_joining_member(group, member_id):
            self._drop_member_quietly(group, member_id, now_ms, out)
            fail(E.GROUP_MAX_SIZE_REACHED, "")
        elif group.state is GroupState.DEAD:
            fail(E.COORDINATOR_NOT_AVAILABLE)
        elif not group.supports_protocols(protocol_type, {name for name, _ in protocols}):
            fail(E.INCONSISTENT_GROUP_PROTOCOL)
        elif not member_id:
            self._join_new_member(group, instance_id, client_id, client_host, session_timeout_ms,
                                  rebalance_timeout_ms, protocol_type, protocols, waiter, now_ms, out)
        else:
            self._join_known_member(group, member_id, instance_id, client_id, client_host,
                                    session_timeout_ms, rebalance_timeout_ms, protocol_type,
                                    protocols, waiter, now_ms, out)
        if group.state is GroupState.PREPARING_REBALANCE:
            self._try_complete_join(group, now_ms, out)
        if created and not group.members and not group.pending_members and not group.offsets:
            del self._groups[group_id]  # a refused first join leaves nothing behind
        return out

    def _accept_joining_member(self, group: Group, member_id: str) -> bool:
        """Kafka's acceptJoiningMember: enforce group.max.size."""
        max_size = self.config.group_max_size
        member = group.members.get(member_id)
        if group.state in (GroupState.EMPTY, GroupState.DEAD):
            return True
        if group.state is GroupState.PREPARING_REBALANCE:
            return (member is not None and member.is_awaiting_join) or group.num_awaiting_join < max_size
        return member is not None or len(group.members) < max_size

    def _drop_member_quietly(self, group: Group, member_id: str, now_ms: int, out: Outcome) -> None:
        member = group.members.get(member_id)
        if member is not None:
            self._remove_member(group, member, now_ms, out, "group.max.size reached", update=False)
        else:
            group.pending_members.pop(member_id, None)

    def _join_new_member(self, group: Group, instance_id: str | None, client_id: str,
                         client_host: str, session_timeout_ms: int, rebalance_timeout_ms: int,
                         protocol_type: str, protocols: list[tuple[str, bytes]], waiter: Waiter,
                         now_ms: int, out: Outcome) -> None:
        new_id = self._new_member_id(instance_id if instance_id is not None else client_id)
        assert new_id and new_id not in group.members and new_id not in group.pending_members
        if instance_id is not None and instance_id in group.static_members:
            self._replace_static_member(group, new_id, instance_id, session_timeout_ms,
                                        rebalance_timeout_ms, protocols, waiter, now_ms, out)
        elif waiter.version >= 4 and instance_id is None:
            # KIP-394: hand out an id first, so a client that gives up on a
            # long JoinGroup does not leave an anonymous member behind.
            group.pending_members[new_id] = now_ms + session_timeout_ms
            out.respond(waiter.handle, join_response(waiter.version, E.MEMBER_ID_REQUIRED, new_id))
        else:
            self._add_member_and_rebalance(
                group, Member(new_id, instance_id, client_id, client_host, session_timeout_ms,
                              rebalance_timeout_ms, protocol_type, protocols),
                waiter, now_ms, out)

    def _join_known_member(self, group: Group, member_id: str, instance_id: str | None,
                           client_id: str, client_host: str, session_timeout_ms: int,
                           rebalance_timeout_ms: int, protocol_type: str,
                           protocols: list[tuple[str, bytes]], waiter: Waiter, now_ms: int,
                           out: Outcome) -> None:
        if group.is_static_member_fenced(instance_id, member_id):
            out.respond(waiter.handle, join_response(waiter.version, E.FENCED_INSTANCE_ID, member_id))
            return
        if member_id in group.pending_members:
            # (A pending id arriving with an unmapped instance id becomes that static member.)
            self._add_member_and_rebalance(
                group, Member(member_id, instance_id, client_id, client_host, session_timeout_ms,
                              rebalance_timeout_ms, protocol_type, protocols),
                waiter, now_ms, out)
            return
        respond = out.respond
        if member_id not in group.members or (instance_id is not None and instance_id not in group.static_members):
            respond(waiter.handle, join_response(waiter.version, E.UNKNOWN_MEMBER_ID, member_id))
            return
        member = group.members[member_id]
        member.last_heartbeat_ms = now_ms
        state = group.state
        if state is GroupState.PREPARING_REBALANCE:
            self._update_member_and_rebalance(group, member, protocols, rebalance_timeout_ms,
                                              session_timeout_ms, waiter, now_ms, out)
        elif state is GroupState.COMPLETING_REBALANCE:
            if member.matches(protocols):
                # A retry of a JoinGroup whose answer was lost: answer it again.
                respond(waiter.handle, self._join_ok(group, member_id, waiter.version))
            else:
                self._update_member_and_rebalance(group, member, protocols, rebalance_timeout_ms,
                                                  session_timeout_ms, waiter, now_ms, out)
        elif state is GroupState.STABLE:
            if group.leader_id == member_id or not member.matches(protocols):
                # The leader rejoins to rebalance for changes outside member
                # metadata (e.g. new partitions); anyone rejoins on new metadata.
                self._update_member_and_rebalance(group, member, protocols, rebalance_timeout_ms,
                                                  session_timeout_ms, waiter, now_ms, out)
            else:
                respond(waiter.handle, self._join_ok(group, member_id, waiter.version, as_leader=False))
        else:
            respond(waiter.handle, join_response(waiter.version, E.UNKNOWN_MEMBER_ID, member_id))

    def _join_ok(self, group: Group, member_id: str, version: int, *, as_leader: bool = True) -> dict:
        is_leader = as_leader and group.leader_id == member_id
        return join_response(version, E.NONE, member_id, generation_id=group.generation_id,
                             protocol_type=group.protocol_type, protocol_name=group.protocol_name,
                             leader=group.leader_id,
                             members=group.current_member_metadata() if is_leader else [])

    def _add_member_and_rebalance(self, group: Group, member: Member, waiter: Waiter,
                                  now_ms: int, out: Outcome) -> None:
        member.is_new = True
        member.last_heartbeat_ms = now_ms
        member.join_waiter = waiter
        if group.state is GroupState.PREPARING_REBALANCE and group.generation_id == 0:
            group.new_member_added = True
        group.add(member)
        self._maybe_prepare_rebalance(group, now_ms, out, f"adding new member {member.member_id}")

    def _set_join_waiter(self, member: Member, waiter: Waiter, out: Outcome) -> None:
        old = member.join_waiter
        if old is not None and old.handle is not waiter.handle:
            # Superseded (the client gave up on it): answer so no handle hangs.
            out.respond(old.handle, join_response(old.version, E.REBALANCE_IN_PROGRESS, member.member_id))
        member.join_waiter = waiter

    def _update_member_and_rebalance(self, group: Group, member: Member,
                                     protocols: list[tuple[str, bytes]], rebalance_timeout_ms: int,
                                     session_timeout_ms: int, waiter: Waiter, now_ms: int,
                                     out: Outcome) -> None:
        member.set_protocols(protocols)
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms
        self._set_join_waiter(member, waiter, out)
        self._maybe_prepare_rebalance(group, now_ms, out, f"member {member.member_id} rejoined")

    def _replace_static_member(self, group: Group, new_id: str, instance_id: str,
                               session_timeout_ms: int, rebalance_timeout_ms: int,
                               protocols: list[tuple[str, bytes]], waiter: Waiter, now_ms: int,
                               out: Outcome) -> None:
        """A known group_instance_id joined with an unknown member id (KIP-345).

        The new id takes over the old member (and its assignment); whoever
        still waits under the old id is fenced. A STABLE group only stores
        the new id, without a rebalance, as long as the selected protocol
        stays the same.
        """
        old_id = group.static_members[instance_id]
        old_leader = group.leader_id
        member = group.members[old_id]
        if member.join_waiter is not None:
            w = member.join_waiter
            out.respond(w.handle, join_response(w.version, E.FENCED_INSTANCE_ID, old_id))
        if member.sync_waiter is not None:
            out.respond(member.sync_waiter.handle, sync_response(E.FENCED_INSTANCE_ID))
        member.join_waiter = member.sync_waiter = None
        group.replace_static_member(instance_id, old_id, new_id)
        member.last_heartbeat_ms = now_ms
        member.set_protocols(protocols)
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms
        member.join_waiter = waiter
        if group.state is GroupState.STABLE:
            if group.select_protocol() == group.protocol_name:
                member.join_waiter = None
                group.subscribed_topics = group.compute_subscribed_topics()
                out.records.append(GroupMetadataRecord.of(group))
                # v9+ (KIP-814): a static leader learns it leads but skips the
                # assignment. Older versions get the old leader id, so the new
                # id does not think it leads and does not reassign.
                skip = waiter.version >= 9 and group.leader_id == new_id
                out.respond(waiter.handle, join_response(
                    waiter.version, E.NONE, new_id, generation_id=group.generation_id,
                    protocol_type=group.protocol_type, protocol_name=group.protocol_name,
                    leader=group.leader_id if skip else old_leader,
                    members=group.current_member_metadata() if skip else [],
                    skip_assignment=skip))
            else:
                self._prepare_rebalance(group, now_ms, out,
                                        f"static member {instance_id} rejoined with other protocols")
        elif group.state is GroupState.COMPLETING_REBALANCE:
            # The leader may be assigning to the old id: start over.
            self._prepare_rebalance(group, now_ms, out, f"static member {instance_id} rejoined during the sync")
        else:
            assert group.state is GroupState.PREPARING_REBALANCE, group.state

    # --- rebalance mechanics

    def _maybe_prepare_rebalance(self, group: Group, now_ms: int, out: Outcome, reason: str) -> None:
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY):
            self._prepare_rebalance(group, now_ms, out, reason)

    def _prepare_rebalance(self, group: Group, now_ms: int, out: Outcome, reason: str) -> None:
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
        self._try_complete_join(group, now_ms, out)

    def _try_complete_join(self, group: Group, now_ms: int, out: Outcome) -> None:
        if (group.state is GroupState.PREPARING_REBALANCE and group.initial_delay is None
                and group.has_all_members_joined()):
            self._complete_join(group, now_ms, out)

    def _complete_join(self, group: Group, now_ms: int, out: Outcome) -> None:
        """Kafka's onCompleteJoin: drop dynamic members that did not rejoin, bump the generation."""
        for m in [m for m in group.members.values() if not m.is_awaiting_join and not m.is_static]:
            self._remove_member(group, m, now_ms, out, "did not rejoin within the rebalance timeout", update=False)
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
                out.respond(m.join_waiter.handle, self._join_ok(group, member_id, m.join_waiter.version))
                m.join_waiter = None
            m.last_heartbeat_ms = now_ms
            m.is_new = False
            group.pending_sync_members.add(member_id)
        group.sync_deadline_ms = now_ms + group.rebalance_timeout_ms()

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

    def _remove_member(self, group: Group, member: Member, now_ms: int, out: Outcome, reason: str, *,
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
            self._maybe_prepare_rebalance(group, now_ms, out, f"removing member {member.member_id}: {reason}")
        elif group.state is GroupState.PREPARING_REBALANCE:
            self._try_complete_join(group, now_ms, out)

    # --- SyncGroup

    def sync_group(self, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
        """SyncGroup v0-5: the leader's assignment answers every waiting member."""
        self._observe(now_ms)
        out = Outcome()
        group_id, member_id = request["group_id"], request["member_id"]
        instance_id = request.get("group_instance_id") if version >= 3 else None
        protocol_type = request.get("protocol_type") if version >= 5 else None
        protocol_name = request.get("protocol_name") if version >= 5 else None
        group = self._groups.get(group_id) if group_id else None
        error = self._check_member(group_id, group, member_id, instance_id, request["generation_id"])
        if error is E.NONE:
            if protocol_type is not None and protocol_type != group.protocol_type:
                error = E.INCONSISTENT_GROUP_PROTOCOL
            elif protocol_name is not None and protocol_name != group.protocol_name:
                error = E.INCONSISTENT_GROUP_PROTOCOL
            elif group.state is GroupState.EMPTY:
                error = E.UNKNOWN_MEMBER_ID
            elif group.state is GroupState.PREPARING_REBALANCE:
                error = E.REBALANCE_IN_PROGRESS
        if error is not E.NONE:
            out.respond(handle, sync_response(error))
            return out
        member = group.members[member_id]
        group.pending_sync_members.discard(member_id)
        if group.state is GroupState.STABLE:
            member.last_heartbeat_ms = now_ms
            out.respond(handle, sync_response(E.NONE, protocol_type=group.protocol_type,
                                              protocol_name=group.protocol_name,
                                              assignment=member.assignment))
            return out
        assert group.state is GroupState.COMPLETING_REBALANCE
        old = member.sync_waiter
        if old is not None and old.handle is not handle:
            out.respond(old.handle, sync_response(E.REBALANCE_IN_PROGRESS))
        member.sync_waiter = Waiter(handle, version)
        if group.leader_id == member_id:
            assignments = {a["member_id"]: bytes(a["assignment"]) for a in request["assignments"]}
            for mid, m in group.members.items():
                m.assignment = assignments.get(mid, b"")  # members the leader left out get nothing
                m.assignment_generation_id = group.generation_id
            out.records.append(GroupMetadataRecord.of(group))
            self._propagate_assignment(group, E.NONE, now_ms, out)
            group.transition_to(GroupState.STABLE, now_ms)
        return out

    def _check_member(self, group_id: str, group: Group | None, member_id: str,
                      instance_id: str | None, generation_id: int) -> ErrorCode:
        """The checks SyncGroup and Heartbeat share, in Kafka's order."""
        if not group_id:
            return E.INVALID_GROUP_ID
        if group is None:
            return E.UNKNOWN_MEMBER_ID
        if group.state is GroupState.DEAD:
            return E.COORDINATOR_NOT_AVAILABLE
        if group.is_static_member_fenced(instance_id, member_id):
            return E.FENCED_INSTANCE_ID
        if member_id not in group.members:
            return E.UNKNOWN_MEMBER_ID
        if generation_id != group.generation_id:
            return E.ILLEGAL_GENERATION
        return E.NONE

    # --- Heartbeat

    def heartbeat(self, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
        """Heartbeat v0-4: keep the session; REBALANCE_IN_PROGRESS tells members to rejoin."""
        self._observe(now_ms)
        out = Outcome()
        group_id, member_id = request["group_id"], request["member_id"]
        instance_id = request.get("group_instance_id") if version >= 3 else None
        group = self._groups.get(group_id) if group_id else None
        error = self._check_member(group_id, group, member_id, instance_id, request["generation_id"])
        if error is E.NONE:
            if group.state is GroupState.EMPTY:
                error = E.UNKNOWN_MEMBER_ID
            else:
                group.members[member_id].last_heartbeat_ms = now_ms
                if group.state is GroupState.PREPARING_REBALANCE:
                    error = E.REBALANCE_IN_PROGRESS
        out.respond(handle, error_only(error))
        return out

    # --- LeaveGroup

    def leave_group(self, handle: Any, request: dict, version: int, now_ms: int) -> Outcome:
        """LeaveGroup v0-5: v0-2 one member, v3+ a batch with per-member errors."""
        self._observe(now_ms)
        out = Outcome()
        group_id = request["group_id"]
        if version >= 3:
            leaving = [(m["member_id"], m.get("group_instance_id")) for m in request["members"]]
        else:
            leaving = [(request["member_id"], None)]
        top, results = E.NONE, []
        group = self._groups.get(group_id) if group_id else None
        if not group_id:
            top = E.INVALID_GROUP_ID
        elif group is None:
            results = [(mid, iid, E.UNKNOWN_MEMBER_ID) for mid, iid in leaving]
        elif group.state is GroupState.DEAD:
            top = E.COORDINATOR_NOT_AVAILABLE
        else:
            for mid, iid in leaving:
                results.append((mid, iid, self._leave_one(group, mid, iid, now_ms, out)))
        if version >= 3:
            out.respond(handle, {"throttle_time_ms": 0, "error_code": int(top), "members": [
                {"member_id": mid, "group_instance_id": iid, "error_code": int(err)}
                for mid, iid, err in results]})
        else:
            if top is E.NONE and results:
                top = results[0][2]
            out.respond(handle, error_only(top))
        return out

    def _leave_one(self, group: Group, member_id: str, instance_id: str | None, now_ms: int,
                   out: Outcome) -> ErrorCode:
        if not member_id:
            # Administrative removal by instance id (KIP-345).
            current = group.static_members.get(instance_id) if instance_id is not None else None
            if current is None:
                return E.UNKNOWN_MEMBER_ID
            self._remove_member(group, group.members[current], now_ms, out,
                                f"LeaveGroup for group.instance.id {instance_id}")
            return E.NONE
        if member_id in group.pending_members:
            group.pending_members.pop(member_id)
            self._try_complete_join(group, now_ms, out)
            return E.NONE
        error = group.validate_current_member(member_id, instance_id)
        if error is E.NONE:
            self._remove_member(group, group.members[member_id], now_ms, out, "left the group (LeaveGroup)")
        return error

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

    # for offsets.py / admin.py

    def _get_or_create_group(self, group_id: str, now_ms: int) -> Group:
        group = self._groups.get(group_id)
        if group is None:
            group = self._groups[group_id] = Group(group_id, now_ms)
        return group

    def _remove_group(self, group: Group, now_ms: int, out: Outcome) -> None:
        """Kafka's cleanupGroupMetadata end: tombstone every offset and the group."""
        for topic, partition in list(group.offsets):
            out.records.append(OffsetTombstone(group.group_id, topic, partition))
        group.offsets.clear()
        if group.state is not GroupState.DEAD:
            group.transition_to(GroupState.DEAD, now_ms)
        out.records.append(GroupTombstone(group.group_id))
        del self._groups[group.group_id]

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
                self._tick_group(group, now_ms, out)
            if self._next_offsets_check_ms is not None and self._next_offsets_check_ms <= now_ms:
                self._next_offsets_check_ms = now_ms + self.config.offsets_retention_check_interval_ms
                offsets.expire(self, now_ms, out)
        raise AssertionError(f"tick({now_ms}) made no progress: deadline {self.next_deadline_ms()}")

    def _tick_group(self, group: Group, now_ms: int, out: Outcome) -> None:
        for member_id, deadline in list(group.pending_members.items()):
            if deadline <= now_ms:
                del group.pending_members[member_id]
                self._try_complete_join(group, now_ms, out)
        for member in list(group.members.values()):
            deadline = member.session_deadline_ms()
            if deadline is not None and deadline <= now_ms and member.member_id in group.members:
                expired = ("a new member's JoinGroup was not completed in time" if member.is_new
                           else f"no heartbeat within its session timeout ({member.session_timeout_ms} ms)")
                self._remove_member(group, member, now_ms, out, expired)
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
                self._remove_member(group, group.members[member_id], now_ms, out,
                                    "no SyncGroup within the rebalance timeout", update=False)
            self._prepare_rebalance(group, now_ms, out, "members did not sync in time")
        elif not group.pending_sync_members:
            group.sync_deadline_ms = None

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
            group = self._get_or_create_group(record.group_id, None)
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
