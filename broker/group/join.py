"""JoinGroup (Kafka's handleJoinGroup with its new-member, known-member and
static-member paths). Functions of a `GroupCoordinator`; the rebalance they
start is its `Rebalancer`'s.

A JoinGroup is answered at once when it is refused or needs no rebalance;
otherwise its member waits (`Member.join_waiter`) until the join round
completes, in this call or a later one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from riverlog.client.protocol import ErrorCode

from .group import Group
from .member import Member, Waiter
from .outcome import Outcome
from .records_model import GroupMetadataRecord
from .responses import join_ok, join_response, sync_response
from .state import GroupState

if TYPE_CHECKING:
    from .coordinator import GroupCoordinator

E = ErrorCode

# At least a second: a join round of 0 ms would complete and start again in
# the same tick, over and over (Java's consumer sends max.poll.interval.ms,
# never that small).
_MIN_REBALANCE_TIMEOUT_MS = 1000


@dataclass(frozen=True)
class _Joining:
    """What a JoinGroup says about its member, and whom to answer."""

    instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    waiter: Waiter

    def new_member(self, member_id: str) -> Member:
        return Member(member_id, self.instance_id, self.client_id, self.client_host, self.session_timeout_ms,
                      self.rebalance_timeout_ms, self.protocol_type, self.protocols)

    def respond(self, out: Outcome, error: ErrorCode, member_id: str) -> None:
        out.respond(self.waiter.handle, join_response(self.waiter.version, error, member_id))


def join_group(coord: GroupCoordinator, handle: Any, request: dict, version: int, now_ms: int, *,
               client_id: str, client_host: str) -> Outcome:
    """JoinGroup v0-9. `client_id`/`client_host` come from the request header and socket."""
    out = Outcome()
    group_id = request["group_id"]
    member_id = request["member_id"] or ""
    session_timeout_ms = request["session_timeout_ms"]
    rebalance_timeout_ms = request.get("rebalance_timeout_ms", -1) if version >= 1 else -1
    if rebalance_timeout_ms < 0:
        rebalance_timeout_ms = session_timeout_ms  # v0: the session timeout doubles as it
    joining = _Joining(
        instance_id=request.get("group_instance_id") if version >= 5 else None,
        client_id=client_id, client_host=client_host, session_timeout_ms=session_timeout_ms,
        rebalance_timeout_ms=max(rebalance_timeout_ms, _MIN_REBALANCE_TIMEOUT_MS),
        protocol_type=request["protocol_type"],
        protocols=[(p["name"], bytes(p["metadata"])) for p in request["protocols"]],
        waiter=Waiter(handle, version))

    def fail(error: ErrorCode, mid: str = member_id) -> Outcome:
        joining.respond(out, error, mid)
        return out

    if not group_id:
        return fail(E.INVALID_GROUP_ID)
    cfg = coord.config
    if not cfg.group_min_session_timeout_ms <= session_timeout_ms <= cfg.group_max_session_timeout_ms:
        return fail(E.INVALID_SESSION_TIMEOUT)
    created = coord.group(group_id) is None
    if created and member_id:
        return fail(E.UNKNOWN_MEMBER_ID)
    group = coord.get_or_create_group(group_id, now_ms)
    if not _accept_joining_member(coord, group, member_id):
        _drop_member_quietly(coord, group, member_id, now_ms, out)
        fail(E.GROUP_MAX_SIZE_REACHED, "")
    elif group.state is GroupState.DEAD:
        fail(E.COORDINATOR_NOT_AVAILABLE)
    elif not group.supports_protocols(joining.protocol_type, {name for name, _ in joining.protocols}):
        fail(E.INCONSISTENT_GROUP_PROTOCOL)
    elif not member_id:
        _join_new_member(coord, group, joining, now_ms, out)
    else:
        _join_known_member(coord, group, member_id, joining, now_ms, out)
    if group.state is GroupState.PREPARING_REBALANCE:
        coord.rebalancer.try_complete_join(group, now_ms, out)
    if created and not group.members and not group.pending_members and not group.offsets:
        coord.forget_group(group_id)  # a refused first join leaves nothing behind
    return out


def _accept_joining_member(coord: GroupCoordinator, group: Group, member_id: str) -> bool:
    """Kafka's acceptJoiningMember: enforce group.max.size."""
    max_size = coord.config.group_max_size
    member = group.members.get(member_id)
    if group.state in (GroupState.EMPTY, GroupState.DEAD):
        return True
    if group.state is GroupState.PREPARING_REBALANCE:
        return (member is not None and member.is_awaiting_join) or group.num_awaiting_join < max_size
    return member is not None or len(group.members) < max_size


def _drop_member_quietly(coord: GroupCoordinator, group: Group, member_id: str, now_ms: int,
                         out: Outcome) -> None:
    member = group.members.get(member_id)
    if member is not None:
        coord.rebalancer.remove_member(group, member, now_ms, out, "group.max.size reached", update=False)
    else:
        group.pending_members.pop(member_id, None)


def _join_new_member(coord: GroupCoordinator, group: Group, joining: _Joining, now_ms: int,
                     out: Outcome) -> None:
    instance_id = joining.instance_id
    new_id = coord.new_member_id(instance_id if instance_id is not None else joining.client_id)
    assert new_id and new_id not in group.members and new_id not in group.pending_members
    if instance_id is not None and instance_id in group.static_members:
        _replace_static_member(coord, group, new_id, joining, now_ms, out)
    elif joining.waiter.version >= 4 and instance_id is None:
        # KIP-394: hand out an id first, so a client that gives up on a
        # long JoinGroup does not leave an anonymous member behind.
        group.pending_members[new_id] = now_ms + joining.session_timeout_ms
        joining.respond(out, E.MEMBER_ID_REQUIRED, new_id)
    else:
        _add_member_and_rebalance(coord, group, joining.new_member(new_id), joining.waiter, now_ms, out)


def _join_known_member(coord: GroupCoordinator, group: Group, member_id: str, joining: _Joining,
                       now_ms: int, out: Outcome) -> None:
    instance_id = joining.instance_id
    if group.is_static_member_fenced(instance_id, member_id):
        joining.respond(out, E.FENCED_INSTANCE_ID, member_id)
        return
    if member_id in group.pending_members:
        # (A pending id arriving with an unmapped instance id becomes that static member.)
        _add_member_and_rebalance(coord, group, joining.new_member(member_id), joining.waiter, now_ms, out)
        return
    if member_id not in group.members or (instance_id is not None and instance_id not in group.static_members):
        joining.respond(out, E.UNKNOWN_MEMBER_ID, member_id)
        return
    member = group.members[member_id]
    member.last_heartbeat_ms = now_ms
    state = group.state
    waiter = joining.waiter
    if state is GroupState.PREPARING_REBALANCE:
        _update_member_and_rebalance(coord, group, member, joining, now_ms, out)
    elif state is GroupState.COMPLETING_REBALANCE:
        if member.matches(joining.protocols):
            # A retry of a JoinGroup whose answer was lost: answer it again.
            out.respond(waiter.handle, join_ok(group, member_id, waiter.version))
        else:
            _update_member_and_rebalance(coord, group, member, joining, now_ms, out)
    elif state is GroupState.STABLE:
        if group.leader_id == member_id or not member.matches(joining.protocols):
            # The leader rejoins to rebalance for changes outside member
            # metadata (e.g. new partitions); anyone rejoins on new metadata.
            _update_member_and_rebalance(coord, group, member, joining, now_ms, out)
        else:
            out.respond(waiter.handle, join_ok(group, member_id, waiter.version, as_leader=False))
    else:
        joining.respond(out, E.UNKNOWN_MEMBER_ID, member_id)


def _add_member_and_rebalance(coord: GroupCoordinator, group: Group, member: Member, waiter: Waiter,
                              now_ms: int, out: Outcome) -> None:
    member.is_new = True
    member.last_heartbeat_ms = now_ms
    member.join_waiter = waiter
    if group.state is GroupState.PREPARING_REBALANCE and group.generation_id == 0:
        group.new_member_added = True
    group.add(member)
    coord.rebalancer.maybe_prepare(group, now_ms, out, f"adding new member {member.member_id}")


def _set_join_waiter(member: Member, waiter: Waiter, out: Outcome) -> None:
    old = member.join_waiter
    if old is not None and old.handle is not waiter.handle:
        # Superseded (the client gave up on it): answer so no handle hangs.
        out.respond(old.handle, join_response(old.version, E.REBALANCE_IN_PROGRESS, member.member_id))
    member.join_waiter = waiter


def _update_member_and_rebalance(coord: GroupCoordinator, group: Group, member: Member, joining: _Joining,
                                 now_ms: int, out: Outcome) -> None:
    member.set_protocols(joining.protocols)
    member.rebalance_timeout_ms = joining.rebalance_timeout_ms
    member.session_timeout_ms = joining.session_timeout_ms
    _set_join_waiter(member, joining.waiter, out)
    coord.rebalancer.maybe_prepare(group, now_ms, out, f"member {member.member_id} rejoined")


def _replace_static_member(coord: GroupCoordinator, group: Group, new_id: str, joining: _Joining,
                           now_ms: int, out: Outcome) -> None:
    """A known group_instance_id joined with an unknown member id (KIP-345).

    The new id takes over the old member (and its assignment); whoever
    still waits under the old id is fenced. A STABLE group only stores
    the new id, without a rebalance, as long as the selected protocol
    stays the same.
    """
    instance_id = joining.instance_id
    assert instance_id is not None
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
    member.set_protocols(joining.protocols)
    member.rebalance_timeout_ms = joining.rebalance_timeout_ms
    member.session_timeout_ms = joining.session_timeout_ms
    member.join_waiter = waiter = joining.waiter
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
            coord.rebalancer.prepare(group, now_ms, out,
                                     f"static member {instance_id} rejoined with other protocols")
    elif group.state is GroupState.COMPLETING_REBALANCE:
        # The leader may be assigning to the old id: start over.
        coord.rebalancer.prepare(group, now_ms, out, f"static member {instance_id} rejoined during the sync")
    else:
        assert group.state is GroupState.PREPARING_REBALANCE, group.state
