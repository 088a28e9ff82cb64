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
from dataclasses import dataclass, field

import trio

from riverlog.client import offsets
from riverlog.client.admin_groups import (  # the group types: re-exported, part of this module's API
    GroupAdmin,
    GroupDescription,
    GroupListing,
    MemberDescription,
    OffsetAndMetadata,
)
from riverlog.client.admin_requests import _error, _is_final, _raise_first, _Retry, _topic_context
from riverlog.client.cluster import BrokerInfo
from riverlog.client.config import AdminConfig
from riverlog.client.errors import KafkaConnectionError, KafkaTimeoutError, UnsupportedVersionError
from riverlog.client.protocol.api_keys import ApiKey
from riverlog.client.protocol.errors import ErrorCode, KafkaError
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

TOPIC_RESOURCE = 2  # ConfigResource.Type.TOPIC
OP_SET, OP_DELETE = 0, 1  # IncrementalAlterConfigs' config_operation


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


class Admin(GroupAdmin):
    """Topics, configs, records and the cluster here; the groups' operations
    in `GroupAdmin` (client/admin_groups.py), the retries and connections
    under both in `AdminRequests` (client/admin_requests.py)."""

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

__all__ = [
    "Admin", "ClusterDescription", "ConfigEntry", "ConfigSource", "GroupDescription", "GroupListing",
    "MemberDescription", "NewTopic", "OffsetAndMetadata", "PartitionDescription", "TopicDescription",
]
