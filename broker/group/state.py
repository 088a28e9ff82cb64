"""The classic group states (Kafka's ``GroupState`` / ``ClassicGroupState``)."""

from __future__ import annotations

from enum import Enum


class GroupState(Enum):
    """Where a classic group is in its rebalance cycle; values are Kafka's names.

    EMPTY: no members. The group may still hold offsets (a group that emptied,
        or a "simple" consumer committing without membership); offsets expire
        `offsets.retention.minutes` after the group became empty, and a group
        with neither members nor offsets becomes DEAD.
        -> PREPARING_REBALANCE when a member joins; -> DEAD on DeleteGroups or
        when its last offset expires.
    PREPARING_REBALANCE: collecting JoinGroups. Heartbeats answer
        REBALANCE_IN_PROGRESS so members rejoin; commits are still accepted.
        Completes when every known member rejoined, or when the rebalance
        timeout passes (members that did not rejoin are removed). A new group
        waits `group.initial.rebalance.delay.ms` first.
        -> COMPLETING_REBALANCE (members remain); -> EMPTY (none remain).
    COMPLETING_REBALANCE: the generation was bumped and JoinGroups answered;
        waiting for the leader's SyncGroup with the assignment. Commits answer
        REBALANCE_IN_PROGRESS.
        -> STABLE on the leader's assignment; -> PREPARING_REBALANCE when a
        member joins, changes metadata, leaves or times out.
    STABLE: assignment handed out; heartbeats keep sessions alive.
        -> PREPARING_REBALANCE on a join by the leader or a new member, a
        metadata change, a leave or a session timeout.
    DEAD: no members and no offsets; the group is being removed.
        Terminal.
    """

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"

    def __str__(self) -> str:
        return self.value


# Kafka's validPreviousStates: the states each state may be entered from.
VALID_PREVIOUS: dict[GroupState, frozenset[GroupState]] = {
    GroupState.EMPTY: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.PREPARING_REBALANCE: frozenset(
        {GroupState.EMPTY, GroupState.STABLE, GroupState.COMPLETING_REBALANCE}),
    GroupState.COMPLETING_REBALANCE: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.STABLE: frozenset({GroupState.COMPLETING_REBALANCE}),
    GroupState.DEAD: frozenset(GroupState),
}
