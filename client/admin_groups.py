"""The admin client's consumer-group operations, each sent to the group's
coordinator (how it is found and asked again: client/admin.py's docstring).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import trio

from riverlog.client.admin_requests import AdminRequests, _error, _is_final, _raise_first, _Retry
from riverlog.client.connection import BrokerConnection
from riverlog.client.errors import KafkaConnectionError, KafkaTimeoutError, UnsupportedVersionError
from riverlog.client.group.consumer_protocol import ConsumerProtocolError, decode_assignment
from riverlog.client.protocol.api_keys import ApiKey
from riverlog.client.protocol.errors import ErrorCode, KafkaError
from riverlog.client.types import TopicPartition

OFFSET_COMMIT = ApiKey.OFFSET_COMMIT
OFFSET_FETCH = ApiKey.OFFSET_FETCH
FIND_COORDINATOR = ApiKey.FIND_COORDINATOR
DESCRIBE_GROUPS = ApiKey.DESCRIBE_GROUPS
LIST_GROUPS = ApiKey.LIST_GROUPS
DELETE_GROUPS = ApiKey.DELETE_GROUPS
OFFSET_DELETE = ApiKey.OFFSET_DELETE

GROUP_KEY = 0  # FindCoordinator's key_type for a group
CONSUMER_PROTOCOL_TYPE = "consumer"
DEAD = "Dead"  # DescribeGroups' state for a group the coordinator does not have


class GroupListing(NamedTuple):
    group_id: str
    protocol_type: str  # "consumer" for consumer groups; "" for offsets-only groups
    state: str | None  # "Stable", "Empty", ...; None from a broker before ListGroups v4


class MemberDescription(NamedTuple):
    member_id: str
    group_instance_id: str | None  # static membership (KIP-345)
    client_id: str
    client_host: str
    # Decoded for consumer groups (bytes the consumer protocol cannot read
    # stay raw); the raw bytes for other protocol types. Empty while the
    # group is rebalancing: the coordinator shares assignments only when Stable.
    assignment: list[TopicPartition] | bytes


class GroupDescription(NamedTuple):
    group_id: str
    state: str
    protocol_type: str
    protocol: str  # the chosen assignor ("range", ...), "" unless Stable
    members: list[MemberDescription]


class OffsetAndMetadata(NamedTuple):
    """A committed offset: the next record the group will read."""

    offset: int
    leader_epoch: int = -1
    metadata: str = ""


def _group_context(group_id: str, code: int) -> str:
    if code == ErrorCode.GROUP_ID_NOT_FOUND:
        return f"group {group_id!r} does not exist"
    if code == ErrorCode.NON_EMPTY_GROUP:
        return f"group {group_id!r} still has members"
    if code in (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION, ErrorCode.REBALANCE_IN_PROGRESS):
        return f"group {group_id!r} has members: its offsets can only be altered while it is empty"
    return f"group {group_id!r}"


def _group_error(group_id: str, code: int, message: str | None = None) -> KafkaError | None:
    return _error(code, message, _group_context(group_id, code))


def _by_topic(partitions: list[TopicPartition], row: Callable[[TopicPartition], dict]) -> list[dict]:
    """Request topics, each with its partitions' rows, in first-seen order."""
    topics: dict[str, list[dict]] = defaultdict(list)
    for tp in partitions:
        topics[tp.topic].append(row(tp))
    return [{"name": t, "partitions": ps} for t, ps in topics.items()]


def _assignment(protocol_type: str, data: bytes) -> list[TopicPartition] | bytes:
    if protocol_type != CONSUMER_PROTOCOL_TYPE:
        return bytes(data)
    if not data:
        return []
    try:
        return decode_assignment(data).partitions
    except ConsumerProtocolError:
        return bytes(data)


class GroupAdmin(AdminRequests):
    """Admin's group operations, each sent to the group's coordinator."""

    async def list_groups(self) -> list[GroupListing]:
        """Every group in the cluster: ListGroups to each broker, merged."""
        self._check_open()
        found: dict[str, GroupListing] = {}
        pending: set[int] = set()
        started = False

        async def ask(node: int, deadline: float, retry: list) -> None:
            try:
                conn = await self._connection(node, deadline)
                version = conn.version_for(LIST_GROUPS)
                response = await self._request(conn, LIST_GROUPS, {}, version, deadline)
            except (KafkaConnectionError, KafkaTimeoutError) as exc:  # this broker only: the others go on
                retry.append(exc)
                return
            exc = _error(response["error_code"], None, f"ListGroups from broker {node}")
            if exc is not None:
                retry.append(exc)  # final ones are raised by _retrying, outside the nursery
                return
            for g in response["groups"]:
                state = g["group_state"] if version >= 4 else None
                found[g["group_id"]] = GroupListing(g["group_id"], g["protocol_type"], state)
            pending.discard(node)

        async def attempt(deadline: float) -> None:
            nonlocal started
            await self._any_connection(deadline)
            metadata = await self.cluster.refresh([])
            if not started:  # the brokers of the first answer; one that joins later has no groups yet
                pending.update(metadata.brokers)
                started = True
            retry: list[BaseException] = []
            async with trio.open_nursery() as nursery:
                for node in sorted(pending & set(metadata.brokers)):
                    nursery.start_soon(ask, node, deadline, retry)
            pending.intersection_update(metadata.brokers)  # departed brokers took their groups along
            if retry:
                final = [e for e in retry if _is_final(e)]
                raise final[0] if final else _Retry(retry[0])

        await self._retrying("ListGroups", attempt)
        return sorted(found.values())

    async def describe_groups(self, group_ids: list[str]) -> dict[str, GroupDescription]:
        """Each group's state, protocol and members, from its coordinator.
        A group the coordinator does not have (DescribeGroups answers "Dead")
        raises GroupIdNotFoundError, as Kafka's AdminClient does."""
        self._check_open()

        async def ask(conn: BrokerConnection, ids: list[str], deadline: float) -> dict[str, Any]:
            version = conn.version_for(DESCRIBE_GROUPS)
            body = {"groups": ids, "include_authorized_operations": False}
            response = await self._request(conn, DESCRIBE_GROUPS, body, version, deadline)
            out: dict[str, Any] = {}
            for g in response["groups"]:
                group_id, code = g["group_id"], g["error_code"]
                if code == 0 and g["group_state"] == DEAD:
                    code = ErrorCode.GROUP_ID_NOT_FOUND
                exc = _group_error(group_id, code)
                if exc is not None:
                    out[group_id] = exc
                    continue
                members = [
                    MemberDescription(m["member_id"], m.get("group_instance_id"), m["client_id"], m["client_host"],
                                      _assignment(g["protocol_type"], m["member_assignment"]))
                    for m in g["members"]
                ]  # fmt: skip
                out[group_id] = GroupDescription(group_id, g["group_state"], g["protocol_type"],
                                                 g["protocol_data"], members)  # fmt: skip
            return out

        return await self._group_call("DescribeGroups", group_ids, ask)

    async def list_group_offsets(
        self, group_id: str, partitions: list[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata | None]:
        """The group's committed offsets: of every partition it has one for
        (None), or of `partitions`, None for those without a commit (as
        Kafka's AdminClient answers). An unknown group has none."""
        self._check_open()
        wanted = None if partitions is None else list(dict.fromkeys(partitions))

        async def ask(conn: BrokerConnection, ids: list[str], deadline: float) -> dict[str, Any]:
            version = conn.version_for(OFFSET_FETCH, min_version=1 if wanted is not None else 2)
            topics = None if wanted is None else [
                {"name": t["name"], "partition_indexes": [p["partition_index"] for p in t["partitions"]]}
                for t in _by_topic(wanted, lambda tp: {"partition_index": tp.partition})
            ]  # fmt: skip
            if version >= 8:  # batched form: one group of the batch
                body = {"groups": [{"group_id": group_id, "topics": topics}], "require_stable": False}
                (answer,) = (await self._request(conn, OFFSET_FETCH, body, version, deadline))["groups"]
            else:
                body = {"group_id": group_id, "topics": topics, "require_stable": False}
                answer = await self._request(conn, OFFSET_FETCH, body, version, deadline)
            exc = _group_error(group_id, answer.get("error_code", 0))
            if exc is not None:
                return {group_id: exc}
            offsets_found: dict[TopicPartition, OffsetAndMetadata | None] = {}
            for t in answer["topics"]:
                for p in t["partitions"]:
                    tp = TopicPartition(t["name"], p["partition_index"])
                    exc = _error(p["error_code"], None, f"group {group_id!r} partition {tp.topic}-{tp.partition}")
                    if exc is not None:
                        return {group_id: exc}  # UNSTABLE_OFFSET_COMMIT: retried; the others are final
                    if p["committed_offset"] < 0:
                        offsets_found[tp] = None  # no commit
                    else:
                        offsets_found[tp] = OffsetAndMetadata(p["committed_offset"],
                                                              p.get("committed_leader_epoch", -1),
                                                              p["metadata"] or "")  # fmt: skip
            if wanted is None:
                return {group_id: {tp: o for tp, o in offsets_found.items() if o is not None}}
            return {group_id: {tp: offsets_found.get(tp) for tp in wanted}}

        return (await self._group_call("OffsetFetch", [group_id], ask))[group_id]

    async def alter_group_offsets(self, group_id: str, offsets: dict[TopicPartition, int]) -> None:
        """Commit `offsets` for the group as an admin: no generation, no
        member id. Kafka takes such a commit only while the group is empty;
        otherwise UnknownMemberIdError (or IllegalGeneration /
        RebalanceInProgress) says the group has members."""
        self._check_open()
        tps = list(offsets)

        async def ask(conn: BrokerConnection, ids: list[str], deadline: float) -> dict[str, Any]:
            version = conn.version_for(OFFSET_COMMIT)
            body = {
                "group_id": group_id, "generation_id_or_member_epoch": -1, "member_id": "",
                "group_instance_id": None, "retention_time_ms": -1,
                "topics": _by_topic(tps, lambda tp: {"partition_index": tp.partition,
                                                     "committed_offset": offsets[tp],
                                                     "committed_leader_epoch": -1, "commit_timestamp": -1,
                                                     "committed_metadata": ""}),
            }  # fmt: skip
            response = await self._request(conn, OFFSET_COMMIT, body, version, deadline)
            return {group_id: self._partition_errors(group_id, response) or None}

        await self._group_call("OffsetCommit", [group_id], ask)

    async def delete_groups(self, group_ids: list[str]) -> None:
        """Delete empty groups and their offsets: NonEmptyGroupError for one
        with members, GroupIdNotFoundError for one that does not exist."""
        self._check_open()

        async def ask(conn: BrokerConnection, ids: list[str], deadline: float) -> dict[str, Any]:
            version = conn.version_for(DELETE_GROUPS)
            response = await self._request(conn, DELETE_GROUPS, {"groups_names": ids}, version, deadline)
            return {r["group_id"]: _group_error(r["group_id"], r["error_code"]) for r in response["results"]}

        await self._group_call("DeleteGroups", group_ids, ask)

    async def delete_group_offsets(self, group_id: str, partitions: list[TopicPartition]) -> None:
        """Delete the group's committed offsets of `partitions`; refused
        (GroupSubscribedToTopicError) for a topic a member subscribes to."""
        self._check_open()
        tps = list(dict.fromkeys(partitions))

        async def ask(conn: BrokerConnection, ids: list[str], deadline: float) -> dict[str, Any]:
            version = conn.version_for(OFFSET_DELETE)
            body = {"group_id": group_id, "topics": _by_topic(tps, lambda tp: {"partition_index": tp.partition})}
            response = await self._request(conn, OFFSET_DELETE, body, version, deadline)
            exc = _group_error(group_id, response["error_code"])
            return {group_id: exc or self._partition_errors(group_id, response) or None}

        await self._group_call("OffsetDelete", [group_id], ask)

    @staticmethod
    def _partition_errors(group_id: str, response: dict) -> KafkaError | None:
        """The error to report for a per-partition answer: a retriable one if
        any (the whole request is sent again), else the first final one."""
        errors = []
        for t in response["topics"]:
            for p in t["partitions"]:
                code = p["error_code"]
                if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                    context = f"partition {t['name']}-{p['partition_index']} does not exist"
                else:
                    context = _group_context(group_id, code)
                exc = _error(code, None, context)
                if exc is not None:
                    errors.append(exc)
        retry = [e for e in errors if not _is_final(e)]
        return (retry or errors or [None])[0]

    async def _group_call(
        self,
        what: str,
        group_ids: list[str],
        ask: Callable[[BrokerConnection, list[str], float], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """`ask(conn, ids, deadline)` of each group's coordinator, for the
        groups it coordinates; it answers {group_id: result or KafkaError}.
        Groups with a retriable error (a coordinator that moved, is loading,
        or cannot be reached) are asked again, their coordinator found anew,
        until the admin timeout; then the first final error is raised, in
        the order given (the other groups' results stand)."""
        order = list(dict.fromkeys(group_ids))
        pending = list(order)
        done: dict[str, Any] = {}
        errors: list[tuple[str, BaseException]] = []

        def settle(group_id: str, result: Any, retry: list) -> None:
            if isinstance(result, BaseException) and not _is_final(result):
                retry.append(result)
                return
            if isinstance(result, BaseException):
                errors.append((group_id, result))
            else:
                done[group_id] = result
            if group_id in pending:
                pending.remove(group_id)

        async def ask_node(node: int, ids: list[str], deadline: float, retry: list) -> None:
            try:
                conn = await self._connection(node, deadline)
                answers = await ask(conn, ids, deadline)
            except (KafkaConnectionError, KafkaTimeoutError) as exc:  # this coordinator only: the others go on
                retry.append(exc)
                return
            except (KafkaError, UnsupportedVersionError) as exc:  # not raised in the nursery: no ExceptionGroup
                answers = {g: exc for g in ids}
            for group_id in ids:
                if group_id in answers:
                    settle(group_id, answers[group_id], retry)
                else:
                    retry.append(_group_error(group_id, ErrorCode.UNKNOWN_SERVER_ERROR, f"no answer for {group_id!r}"))

        async def attempt(deadline: float) -> None:
            retry: list[BaseException] = []
            by_node: dict[int, list[str]] = defaultdict(list)
            for group_id, found in (await self._find_coordinators(list(pending), deadline)).items():
                if isinstance(found, BaseException):
                    settle(group_id, found, retry)
                else:
                    by_node[found].append(group_id)
            async with trio.open_nursery() as nursery:
                for node, ids in by_node.items():
                    nursery.start_soon(ask_node, node, ids, deadline, retry)
            if retry:
                raise _Retry(retry[0])

        if pending:
            await self._retrying(what, attempt)
        _raise_first(errors, order)
        return done

    async def _find_coordinators(self, group_ids: list[str], deadline: float) -> dict[str, int | BaseException]:
        """Each group's coordinator node id, or the error finding it. One
        batched FindCoordinator (v4+) where the broker has it, else one each."""
        conn = await self._any_connection(deadline)
        version = conn.version_for(FIND_COORDINATOR)
        if version >= 4:
            body = {"key_type": GROUP_KEY, "coordinator_keys": group_ids}
            response = await self._request(conn, FIND_COORDINATOR, body, version, deadline)
            answers = [(c["key"], c) for c in response["coordinators"]]
        else:
            answers = []
            for group_id in group_ids:
                body = {"key": group_id, "key_type": GROUP_KEY}
                answers.append((group_id, await self._request(conn, FIND_COORDINATOR, body, version, deadline)))
        out: dict[str, int | BaseException] = {}
        for group_id, a in answers:
            exc = _error(a["error_code"], a.get("error_message"), f"coordinator of group {group_id!r}")
            out[group_id] = a["node_id"] if exc is None else exc
        if any(isinstance(n, int) and n not in self.cluster.metadata.brokers for n in out.values()):
            await self.cluster.refresh([])  # a coordinator we have not heard of yet
        for group_id, node in out.items():
            if isinstance(node, int) and node not in self.cluster.metadata.brokers:
                out[group_id] = _error(ErrorCode.COORDINATOR_NOT_AVAILABLE, None,
                                       f"coordinator {node} of group {group_id!r} is not in the metadata")  # fmt: skip
        return out
