"""The admin client: topics, partitions, configs, offsets, records, cluster, groups.

``async with Admin(bootstrap_servers=...) as admin: await admin.create_topics(...)``.
Topic creation, deletion and partition growth go to the controller (the
Metadata answer's ``controller_id``; any broker when none is named) and are
sent again to the new controller on NOT_CONTROLLER. Everything retries
retriable errors with backoff until the operation's timeout
(``default_api_timeout_ms`` unless the method takes its own).

Errors: a broker's per-topic (or per-partition) error code raises that
code's Kafka exception (``client.protocol.errors``), its message the code's
name and the broker's error message. A call naming several topics or
partitions finishes all of them and then raises the first error, in the
order they were given: the others succeeded or failed independently, so
after an error, describe or list to see where each stands.
UNKNOWN_TOPIC_OR_PARTITION is final here although Kafka calls it retriable:
for an admin asking about a topic, its absence is the answer.

Groups: each group's requests go to its coordinator (FindCoordinator, asked
again on every attempt, so NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE and
COORDINATOR_LOAD_IN_PROGRESS are retried against the coordinator of the
moment). ListGroups asks every broker, as each knows only its own groups.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import trio

from riverlog.client import offsets
from riverlog.client.base import ClientBase
from riverlog.client.cluster import BrokerInfo
from riverlog.client.config import AdminConfig
from riverlog.client.connection import BrokerConnection, jittered_backoff
from riverlog.client.errors import KafkaConnectionError, KafkaTimeoutError, UnsupportedVersionError, is_retriable
from riverlog.client.group.consumer_protocol import ConsumerProtocolError, decode_assignment
from riverlog.client.protocol.api_keys import ApiKey
from riverlog.client.protocol.errors import ErrorCode, KafkaError, error_for_code
from riverlog.client.protocol.messages import APIS
from riverlog.client.types import OffsetAndTimestamp, TopicPartition

CREATE_TOPICS = ApiKey.CREATE_TOPICS
DELETE_TOPICS = ApiKey.DELETE_TOPICS
DELETE_RECORDS = ApiKey.DELETE_RECORDS
DESCRIBE_CONFIGS = ApiKey.DESCRIBE_CONFIGS
ALTER_CONFIGS = ApiKey.ALTER_CONFIGS
CREATE_PARTITIONS = ApiKey.CREATE_PARTITIONS
INCREMENTAL_ALTER_CONFIGS = ApiKey.INCREMENTAL_ALTER_CONFIGS
DESCRIBE_CLUSTER = ApiKey.DESCRIBE_CLUSTER
DESCRIBE_QUORUM = ApiKey.DESCRIBE_QUORUM
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

TOPIC_RESOURCE = 2  # ConfigResource.Type.TOPIC
OP_SET, OP_DELETE = 0, 1  # IncrementalAlterConfigs' config_operation

T = TypeVar("T")


class ConfigSource(enum.IntEnum):
    """Where a config's value comes from (Kafka's DescribeConfigs config_source)."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    DYNAMIC_BROKER_LOGGER_CONFIG = 6
    CLIENT_METRICS_CONFIG = 7
    GROUP_CONFIG = 8

    @classmethod
    def of(cls, value: int) -> ConfigSource:
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


@dataclass(frozen=True)
class NewTopic:
    """-1 partitions or replication factor: the broker's default (KIP-464)."""

    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PartitionDescription:
    partition: int
    leader: int  # -1: no leader right now
    replicas: list[int]
    isr: list[int]


@dataclass(frozen=True)
class TopicDescription:
    name: str
    partitions: list[PartitionDescription]
    internal: bool = False


@dataclass(frozen=True)
class ConfigEntry:
    value: str | None
    source: ConfigSource
    is_default: bool
    read_only: bool
    sensitive: bool


@dataclass(frozen=True)
class ClusterDescription:
    cluster_id: str | None
    controller_id: int  # -1: unknown
    brokers: list[BrokerInfo]


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


def _error(code: int, message: str | None, context: str) -> KafkaError | None:
    """The Kafka exception for a result's code, None for NONE."""
    cls = error_for_code(code)
    if cls is None:
        return None
    return cls(f"{cls.code.name}: {message or context}")


def _topic_context(name: str, code: int) -> str:
    """What to say when the broker gave no error message."""
    if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        return f"topic {name!r} does not exist"
    return f"topic {name!r}"


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


def _is_final(exc: BaseException) -> bool:
    return not is_retriable(exc) or getattr(exc, "code", None) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def _raise_first(errors: list[tuple[Any, BaseException]], order: list) -> None:
    """Raise the first error in the caller's order (see the module docstring)."""
    if errors:
        rank = {key: i for i, key in enumerate(order)}
        raise min(errors, key=lambda e: rank.get(e[0], len(rank)))[1]


class _Retry(Exception):
    """Some results were retriable: send those again after a backoff."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class Admin(ClientBase[AdminConfig]):
    config_class = AdminConfig

    # -- topics --------------------------------------------------------------

    async def create_topics(self, topics: list[NewTopic], *, validate_only: bool = False,
                            timeout_ms: int = 30_000) -> None:  # fmt: skip
        """Create `topics`; with `validate_only`, only check they could be."""
        self._check_open()
        by_name = {t.name: t for t in topics}

        def body(version: int, names: list[str]) -> dict:
            if version < 4 and any(by_name[n].num_partitions < 0 or by_name[n].replication_factor < 0 for n in names):
                raise UnsupportedVersionError("broker defaults for partitions/replication need CreateTopics v4+")
            return {
                "topics": [
                    {"name": n, "num_partitions": by_name[n].num_partitions,
                     "replication_factor": by_name[n].replication_factor, "assignments": [],
                     "configs": [{"name": k, "value": v} for k, v in by_name[n].configs.items()]}
                    for n in names
                ],
                "timeout_ms": timeout_ms,
                "validate_only": validate_only,
            }  # fmt: skip

        # validate_only came with v1: never send it to a broker that would create the topics.
        min_version = 1 if validate_only else 0
        await self._controller_call(CREATE_TOPICS, list(by_name), body, "topics", timeout_ms, min_version)

    async def delete_topics(self, names: list[str], *, timeout_ms: int = 30_000) -> None:
        self._check_open()

        def body(version: int, pending: list[str]) -> dict:
            if version >= 6:
                return {"topics": [{"name": n} for n in pending], "timeout_ms": timeout_ms}
            return {"topic_names": pending, "timeout_ms": timeout_ms}

        await self._controller_call(DELETE_TOPICS, list(dict.fromkeys(names)), body, "responses", timeout_ms)

    async def create_partitions(self, new_totals: dict[str, int], *, validate_only: bool = False) -> None:
        """Grow each topic to `new_totals[topic]` partitions (a total, not an increment)."""
        self._check_open()
        timeout_ms = self.config.default_api_timeout_ms

        def body(version: int, names: list[str]) -> dict:
            return {
                "topics": [{"name": n, "count": new_totals[n], "assignments": None} for n in names],
                "timeout_ms": timeout_ms,
                "validate_only": validate_only,
            }

        await self._controller_call(CREATE_PARTITIONS, list(new_totals), body, "results", timeout_ms)

    async def list_topics(self, *, include_internal: bool = False) -> list[str]:
        self._check_open()

        async def attempt(deadline: float) -> list[str]:
            await self._any_connection(deadline)
            metadata = await self.cluster.refresh(None)
            return sorted(
                name for name, t in metadata.topics.items()
                if t.error_code == 0 and (include_internal or not t.is_internal)
            )  # fmt: skip

        return await self._retrying("Metadata", attempt)

    async def describe_topics(self, names: list[str] | None = None) -> dict[str, TopicDescription]:
        """Each named topic's partitions (None: every topic)."""
        self._check_open()

        async def attempt(deadline: float) -> dict[str, TopicDescription]:
            await self._any_connection(deadline)
            metadata = await self.cluster.refresh(None if names is None else list(dict.fromkeys(names)))
            wanted = sorted(metadata.topics) if names is None else list(dict.fromkeys(names))
            found, errors = {}, []
            for name in wanted:
                info = metadata.topics.get(name)
                code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if info is None else info.error_code
                exc = _error(code, None, _topic_context(name, code))
                if exc is not None:
                    errors.append((name, exc))
                    continue
                assert info is not None
                parts = [
                    PartitionDescription(p.partition, p.leader, list(p.replicas), list(p.isr))
                    for p in sorted(info.partitions.values(), key=lambda p: p.partition)
                ]
                found[name] = TopicDescription(name, parts, info.is_internal)
            retry = [e for _, e in errors if not _is_final(e)]
            if retry:
                raise _Retry(retry[0])
            _raise_first(errors, wanted)
            return found

        return await self._retrying("Metadata", attempt)

    # -- configs -------------------------------------------------------------

    async def describe_configs(self, topic: str) -> dict[str, ConfigEntry]:
        """The topic's configs by name, each with its value and source."""
        self._check_open()

        async def attempt(deadline: float) -> dict[str, ConfigEntry]:
            conn = await self._any_connection(deadline)
            version = conn.version_for(DESCRIBE_CONFIGS)
            body = {"resources": [{"resource_type": TOPIC_RESOURCE, "resource_name": topic,
                                   "configuration_keys": None}]}  # fmt: skip
            response = await self._request(conn, DESCRIBE_CONFIGS, body, version, deadline)
            (result,) = response["results"]
            exc = _error(result["error_code"], result["error_message"], _topic_context(topic, result["error_code"]))
            if exc is not None:
                raise exc
            out = {}
            for c in result["configs"]:
                if version == 0:  # no source yet: non-default topic configs are overrides
                    source = ConfigSource.DEFAULT_CONFIG if c["is_default"] else ConfigSource.DYNAMIC_TOPIC_CONFIG
                else:
                    source = ConfigSource.of(c["config_source"])
                out[c["name"]] = ConfigEntry(c["value"], source, source == ConfigSource.DEFAULT_CONFIG,
                                             c["read_only"], c["is_sensitive"])  # fmt: skip
            return out

        return await self._retrying("DescribeConfigs", attempt)

    async def alter_configs(self, topic: str, set: dict[str, str] | None = None,  # noqa: A002 - the brief's name
                            delete: list[str] | None = None) -> None:  # fmt: skip
        """Set and delete (back to the default) topic config overrides; the
        others stay. IncrementalAlterConfigs when the broker has it, else
        AlterConfigs, which replaces all of the topic's overrides: so read,
        modify, write (a concurrent change between the read and the write
        is lost, as with Kafka's own tools on old brokers)."""
        self._check_open()
        sets, deletes = dict(set or {}), list(delete or [])

        async def attempt(deadline: float) -> None:
            conn = await self._any_connection(deadline)
            try:
                version = conn.version_for(INCREMENTAL_ALTER_CONFIGS)
            except UnsupportedVersionError:
                version = -1
            if version >= 0:
                api = INCREMENTAL_ALTER_CONFIGS
                configs = [{"name": k, "config_operation": OP_SET, "value": v} for k, v in sets.items()]
                configs += [{"name": k, "config_operation": OP_DELETE, "value": None} for k in deletes]
            else:
                api, version = ALTER_CONFIGS, conn.version_for(ALTER_CONFIGS)
                current = await self.describe_configs(topic)
                merged = {k: e.value for k, e in current.items() if e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG}
                for k in deletes:
                    merged.pop(k, None)
                merged.update(sets)
                configs = [{"name": k, "value": v} for k, v in merged.items()]
            body = {"resources": [{"resource_type": TOPIC_RESOURCE, "resource_name": topic, "configs": configs}],
                    "validate_only": False}  # fmt: skip
            response = await self._request(conn, api, body, version, deadline)
            (result,) = response["responses"]
            exc = _error(result["error_code"], result["error_message"], _topic_context(topic, result["error_code"]))
            if exc is not None:
                raise exc

        await self._retrying("AlterConfigs", attempt)

    # -- offsets and records -------------------------------------------------

    async def list_offsets(self, specs: dict[TopicPartition, str | int]) -> dict[TopicPartition, OffsetAndTimestamp]:
        """Each partition's offset for 'earliest', 'latest' or a timestamp (ms)."""
        self._check_open()
        # An unknown topic fails at once here rather than being retried to the deadline.
        await self.describe_topics(list({tp.topic for tp in specs}))
        return await offsets.list_offsets(self.cluster, specs)

    async def delete_records(self, before: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Delete the records below each offset (-1: the high watermark); the
        new low watermark (log start offset) of each partition. Each
        partition's request goes to its leader."""
        self._check_open()
        pending = dict(before)
        done: dict[TopicPartition, int] = {}
        errors: list[tuple[TopicPartition, BaseException]] = []
        timeout_ms = self.config.default_api_timeout_ms

        async def ask(leader: int, tps: dict[TopicPartition, int], deadline: float, retry: list) -> None:
            topics: dict[str, list] = defaultdict(list)
            for tp, offset in tps.items():
                topics[tp.topic].append({"partition_index": tp.partition, "offset": offset})
            body = {"topics": [{"name": t, "partitions": ps} for t, ps in topics.items()], "timeout_ms": timeout_ms}
            try:
                conn = await self._connection(leader, deadline)
                response = await self._request(conn, DELETE_RECORDS, body, conn.version_for(DELETE_RECORDS), deadline)
            except (KafkaConnectionError, KafkaTimeoutError) as exc:  # this leader only: the others go on
                retry.append(exc)
                return
            except UnsupportedVersionError as exc:  # not raised in the nursery: no ExceptionGroup
                errors.extend((tp, exc) for tp in tps)
                for tp in tps:
                    pending.pop(tp, None)
                return
            for t in response["topics"]:
                for p in t["partitions"]:
                    tp = TopicPartition(t["name"], p["partition_index"])
                    exc = _error(p["error_code"], None, f"partition {tp.topic}-{tp.partition}")
                    if exc is None:
                        done[tp] = p["low_watermark"]
                    elif _is_final(exc):
                        errors.append((tp, exc))
                    else:
                        retry.append(exc)
                        continue
                    pending.pop(tp, None)

        async def attempt(deadline: float) -> None:
            by_leader: dict[int, dict[TopicPartition, int]] = defaultdict(dict)
            await self._any_connection(deadline)
            for tp, offset in list(pending.items()):
                try:
                    info = await self.cluster.topic(tp.topic)
                except KafkaError as exc:
                    if not _is_final(exc):
                        raise _Retry(exc) from None
                    errors.append((tp, exc))
                    pending.pop(tp)
                    continue
                part = info.partitions.get(tp.partition)
                if part is None:
                    missing = f"partition {tp.topic}-{tp.partition} does not exist"
                    errors.append((tp, _error(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, None, missing)))
                    pending.pop(tp)
                    continue
                by_leader[part.leader][tp] = offset
            retry: list[BaseException] = []
            if -1 in by_leader:
                retry.append(_error(ErrorCode.LEADER_NOT_AVAILABLE, None, "DeleteRecords"))
            async with trio.open_nursery() as nursery:
                for leader, tps in by_leader.items():
                    if leader >= 0:
                        nursery.start_soon(ask, leader, tps, deadline, retry)
            if retry:
                raise _Retry(retry[0])

        await self._retrying("DeleteRecords", attempt)
        _raise_first(errors, list(before))
        return {tp: done[tp] for tp in before if tp in done}

    # -- groups --------------------------------------------------------------

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

    # -- cluster -------------------------------------------------------------

    async def describe_cluster(self, include_fenced: bool = False) -> ClusterDescription:
        """DescribeCluster where the broker has it, else the Metadata answer.
        ``include_fenced``: fenced brokers too, where the broker can say
        (DescribeCluster v2), each with ``fenced`` set."""
        self._check_open()

        async def attempt(deadline: float) -> ClusterDescription:
            conn = await self._any_connection(deadline)
            try:
                version = conn.version_for(DESCRIBE_CLUSTER)
            except UnsupportedVersionError:
                metadata = await self.cluster.refresh([])
                brokers = sorted(metadata.brokers.values(), key=lambda b: b.node_id)
                return ClusterDescription(metadata.cluster_id, metadata.controller_id, brokers)
            body = {"include_cluster_authorized_operations": False, "endpoint_type": 1,
                    "include_fenced_brokers": include_fenced}  # fmt: skip
            response = await self._request(conn, DESCRIBE_CLUSTER, body, version, deadline)
            exc = _error(response["error_code"], response["error_message"], "DescribeCluster")
            if exc is not None:
                raise exc
            brokers = sorted(
                (BrokerInfo(b["broker_id"], b["host"], b["port"], b["rack"], b.get("is_fenced", False))
                 for b in response["brokers"]),
                key=lambda b: b.node_id,
            )
            return ClusterDescription(response["cluster_id"], response["controller_id"], brokers)

        return await self._retrying("DescribeCluster", attempt)

    async def describe_quorum(self) -> dict | None:
        """The metadata quorum (DescribeQuorum of ``__cluster_metadata``-0):
        leader_id, leader_epoch, high_watermark, current_voters and
        observers (each with replica_id, log_end_offset and, from v1,
        last_fetch_timestamp); None if the broker does not serve it."""
        self._check_open()

        async def attempt(deadline: float) -> dict | None:
            conn = await self._any_connection(deadline)
            try:
                version = conn.version_for(DESCRIBE_QUORUM)
            except UnsupportedVersionError:
                return None
            body = {"topics": [{"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 0}]}]}
            response = await self._request(conn, DESCRIBE_QUORUM, body, version, deadline)
            partitions = response["topics"][0]["partitions"] if response["topics"] else [{}]
            exc = _error(response["error_code"] or partitions[0].get("error_code", 0),
                         response.get("error_message"), "DescribeQuorum")  # fmt: skip
            if exc is not None:
                raise exc
            return partitions[0]

        return await self._retrying("DescribeQuorum", attempt)

    # -- plumbing ------------------------------------------------------------

    async def _retrying(self, what: str, attempt: Callable[[float], Awaitable[T]],
                        timeout_ms: int | None = None) -> T:  # fmt: skip
        """`attempt(deadline)` until it returns, raises a final error, or the
        deadline passes (KafkaTimeoutError naming the last retriable error).
        Each step inside an attempt is bounded by the deadline itself, so a
        failure near it is reported with its own cause."""
        timeout_ms = self.config.default_api_timeout_ms if timeout_ms is None else timeout_ms
        deadline = trio.current_time() + timeout_ms / 1000
        attempts = 0
        while True:
            try:
                return await attempt(deadline)
            except _Retry as retry:
                last: BaseException = retry.cause
            except (KafkaError, KafkaConnectionError, KafkaTimeoutError) as exc:
                if _is_final(exc):
                    raise
                last = exc
            attempts += 1
            self.cluster.invalidate()
            delay = jittered_backoff(self.config.retry_backoff_ms, self.config.retry_backoff_max_ms, attempts)
            if trio.current_time() + delay >= deadline:
                if isinstance(last, KafkaConnectionError):
                    raise last  # "no broker reachable at ...": clearer than a timeout
                raise KafkaTimeoutError(f"{what} did not finish within {timeout_ms / 1000:.1f} s: {last}") from last
            await trio.sleep(delay)

    async def _controller_call(
        self,
        api_key: int,
        names: list[str],
        body: Callable[[int, list[str]], dict],
        results_key: str,
        timeout_ms: int,
        min_version: int = 0,
    ) -> None:
        """One request for `names` to the controller; resend the retriable
        ones (NOT_CONTROLLER: to the new controller) until `timeout_ms`."""
        pending = list(dict.fromkeys(names))
        errors: list[tuple[str, BaseException]] = []

        async def attempt(deadline: float) -> None:
            conn = await self._controller_connection(deadline)
            version = conn.version_for(api_key, min_version=min_version)
            response = await self._request(conn, api_key, body(version, list(pending)), version, deadline)
            retry = None
            for r in response[results_key]:
                exc = _error(r["error_code"], r.get("error_message"), _topic_context(r["name"], r["error_code"]))
                if exc is not None and not _is_final(exc):
                    retry = retry or exc
                    continue
                if exc is not None:
                    errors.append((r["name"], exc))
                if r["name"] in pending:
                    pending.remove(r["name"])
            if retry is not None:
                raise _Retry(retry)

        if pending:
            await self._retrying(APIS[api_key].name, attempt, timeout_ms)
        _raise_first(errors, names)

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

    async def _controller_connection(self, deadline: float) -> BrokerConnection:
        await self._any_connection(deadline)
        metadata = self.cluster.metadata
        if metadata.controller_id < 0 or self.cluster.is_stale():
            metadata = await self.cluster.refresh([])
        if metadata.controller_id in metadata.brokers:
            return await self._connection(metadata.controller_id, deadline)
        return await self._any_connection(deadline)

    async def _any_connection(self, deadline: float) -> BrokerConnection:
        return await self.cluster.any_connection(timeout=max(deadline - trio.current_time(), 0.001))

    async def _connection(self, node: int, deadline: float) -> BrokerConnection:
        try:
            with trio.fail_at(deadline):
                return await self.cluster.connection(node)
        except trio.TooSlowError:
            raise KafkaTimeoutError(f"connecting to broker {node} did not finish in time") from None

    async def _request(self, conn: BrokerConnection, api_key: int, body: dict, version: int,
                       deadline: float) -> dict:  # fmt: skip
        timeout = min(conn.request_timeout, max(deadline - trio.current_time(), 0.001))
        response = await conn.request(api_key, body, version=version, timeout=timeout)
        assert response is not None
        return response

__all__ = [
    "Admin", "ClusterDescription", "ConfigEntry", "ConfigSource", "GroupDescription", "GroupListing",
    "MemberDescription", "NewTopic", "OffsetAndMetadata", "PartitionDescription", "TopicDescription",
]
