"""The controller's decisions: requests + image -> (results, records). Pure.

Each function validates like Kafka's ReplicationControlManager and
ConfigurationControlManager, and returns per-item results with Kafka error
codes plus the records to append for the items that succeed (all of one
call's records go into one atomic append). The records have already been
applied to a scratch image here, so they are known to apply.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count

from riverlog.broker.metadata import internal_topics
from riverlog.broker.metadata.image import MetadataImage
from riverlog.broker.metadata.placement import broker_order, place_replicas
from riverlog.broker.metadata.records import (
    ConfigRecord,
    METADATA_TOPIC,
    PRODUCER_ID_END,
    MetadataRecord,
    PartitionRecord,
    ProducerIdsRecord,
    RegisterBrokerRecord,
    RemoveTopicRecord,
    TopicRecord,
)
from riverlog.broker.metadata.validation import (
    TOPIC_CONFIG_NAMES,
    collision_error,
    config_error,
    partition_dir_error,
    topic_name_error,
)
from riverlog.broker.storage.log_config import LogConfig
from riverlog.client.protocol.errors import ErrorCode


# The largest replication factor the broker accepts: 1 until partitions
# replicate (a second replica would be an empty copy a failover could elect).
SUPPORTED_REPLICATION_FACTOR = 1


@dataclass(frozen=True)
class TopicDefaults:
    """Broker defaults for -1 in a request (Kafka's num.partitions, default.replication.factor)."""

    num_partitions: int = 1
    replication_factor: int = 1
    # Partitions the cluster may hold in all (riverlog.max.partitions): each
    # costs files and memory, and a client can ask for 2^31 of them.
    max_partitions: int = 10_000
    # Until partitions replicate, a second replica would be an empty copy
    # that a failover could make leader: the broker sets 1 (None: no limit).
    max_replication_factor: int | None = None
    log_config: LogConfig = field(default_factory=LogConfig)


@dataclass(frozen=True)
class TopicResult:
    name: str
    error_code: ErrorCode
    error_message: str | None = None
    topic_id: str | None = None  # creates and deletes
    num_partitions: int = -1  # creates
    replication_factor: int = -1  # creates


@dataclass(frozen=True)
class ConfigResult:
    resource_type: str
    resource_name: str
    error_code: ErrorCode
    error_message: str | None = None


@dataclass(frozen=True)
class BrokerResult:
    node_id: int
    error_code: ErrorCode
    error_message: str | None = None


@dataclass(frozen=True)
class ProducerIdsResult:
    error_code: ErrorCode
    error_message: str | None = None
    producer_id_start: int = -1
    producer_id_len: int = 0


Decision = tuple[list, list[MetadataRecord]]

# Kafka's ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE: ids a broker gets per AllocateProducerIds.
PRODUCER_ID_BLOCK_SIZE = 1000


class _Scratch:
    """An image that records are applied to as they are decided."""

    def __init__(self, image: MetadataImage) -> None:
        self.image = image
        self.records: list[MetadataRecord] = []
        self._offsets = count(image.offset + 1)

    def add(self, records: Sequence[MetadataRecord]) -> None:
        self.image = self.image.apply_all((next(self._offsets), r) for r in records)
        self.records.extend(records)


def _duplicates(names: Iterable[str]) -> set[str]:
    return {n for n, c in Counter(names).items() if c > 1}


def decide_register_broker(image: MetadataImage, node_id: int, host: str, port: int, rack: str | None) -> Decision:
    if node_id < 0 or not host or not 0 <= port <= 65535:
        return [BrokerResult(node_id, ErrorCode.INVALID_REQUEST, f"bad registration {node_id}@{host}:{port}")], []
    rec = RegisterBrokerRecord(node_id, host, port, rack, fenced=False)
    current = image.brokers.get(node_id)
    if current is not None and (current.host, current.port, current.rack, current.fenced) == (host, port, rack, False):
        return [BrokerResult(node_id, ErrorCode.NONE)], []  # already registered as asked
    return [BrokerResult(node_id, ErrorCode.NONE)], [rec]


def decide_create_topics(
    image: MetadataImage,
    topics: Sequence[tuple[str, int, int, Mapping[str, str | None]]],
    defaults: TopicDefaults,
    new_topic_id: Callable[[], str],
) -> Decision:
    scratch = _Scratch(image)
    dups = _duplicates(t[0] for t in topics)
    broker_ids = [b.node_id for b in image.unfenced_brokers()]
    racks = {b.node_id: b.rack for b in image.unfenced_brokers()}  # rack-aware when every one has a rack
    start = sum(len(t.partitions) for t in image.topics.values())  # spreads leaders over topics
    results = []
    for name, num_partitions, replication_factor, configs in topics:
        configs = dict(configs or {})
        partitions = defaults.num_partitions if num_partitions == -1 else num_partitions
        rf = defaults.replication_factor if replication_factor == -1 else replication_factor

        def fail(code: ErrorCode, message: str) -> None:
            results.append(TopicResult(name, code, message))

        if name in dups:
            fail(ErrorCode.INVALID_REQUEST, f"Found multiple entries for topic {name} in the request")
        elif (msg := topic_name_error(name)) is not None:
            fail(ErrorCode.INVALID_TOPIC_EXCEPTION, msg)
        elif name == METADATA_TOPIC:
            fail(ErrorCode.INVALID_REQUEST, f"Creation of internal topic {name} is prohibited.")
        elif name in scratch.image.topics:
            fail(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        elif (msg := collision_error(name, scratch.image.topics)) is not None:
            fail(ErrorCode.INVALID_TOPIC_EXCEPTION, msg)
        elif partitions < 1:
            fail(ErrorCode.INVALID_PARTITIONS, f"Number of partitions was set to an invalid value {partitions}.")
        elif (msg := _over_limit(start, partitions, defaults.max_partitions)) is not None:
            fail(ErrorCode.INVALID_PARTITIONS, msg)
        elif (msg := partition_dir_error(name, partitions)) is not None:
            fail(ErrorCode.INVALID_PARTITIONS, msg)
        elif rf < 1:
            fail(ErrorCode.INVALID_REPLICATION_FACTOR, f"Replication factor must be larger than 0, not {rf}.")
        elif defaults.max_replication_factor is not None and rf > defaults.max_replication_factor:
            fail(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"Replication factor {rf} is not supported yet: riverlog does not replicate partitions "
                f"(at most {defaults.max_replication_factor}).",
            )
        elif rf > len(broker_ids):
            fail(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"Unable to replicate the partition {rf} time(s): The target replication factor of {rf} "
                f"cannot be reached because only {len(broker_ids)} broker(s) are registered.",
            )
        elif (msg := config_error(configs, defaults.log_config)) is not None:
            fail(ErrorCode.INVALID_CONFIG, msg)
        elif (msg := _internal_config_error(name, configs, defaults.log_config)) is not None:
            fail(ErrorCode.POLICY_VIOLATION, msg)
        else:
            topic_id = new_topic_id()
            while topic_id in scratch.image.topics_by_id:  # a uuid4 clash: vanishingly rare
                topic_id = new_topic_id()
            records: list[MetadataRecord] = [TopicRecord(name, topic_id)]
            for p, replicas in enumerate(place_replicas(broker_ids, 0, partitions, rf, start, racks)):
                records.append(PartitionRecord(topic_id, p, replicas, replicas, replicas[0], 0, 0))
            records += [ConfigRecord("topic", name, k, v) for k, v in sorted(configs.items())]
            scratch.add(records)
            start += partitions
            results.append(TopicResult(name, ErrorCode.NONE, None, topic_id, partitions, rf))
    return results, scratch.records


def decide_delete_topics(image: MetadataImage, names: Sequence[str]) -> Decision:
    dups = _duplicates(names)
    results, records = [], []
    for name in names:
        topic = image.topics.get(name)
        if name in dups:
            results.append(TopicResult(name, ErrorCode.INVALID_REQUEST, f"Duplicate topic name {name} in the request"))
        elif topic is None:  # named: from v5 the client shows this message
            results.append(TopicResult(name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {name} does not exist."))
        elif (msg := internal_topics.delete_topic_error(name)) is not None:
            results.append(TopicResult(name, ErrorCode.INVALID_TOPIC_EXCEPTION, msg))
        else:
            records.append(RemoveTopicRecord(topic.topic_id))
            results.append(TopicResult(name, ErrorCode.NONE, None, topic.topic_id))
    return results, records


def _internal_config_error(topic: str, overrides: Mapping[str, str], base: LogConfig) -> str | None:
    """internal_topics.config_error on the effective config of valid ``overrides``."""
    if not internal_topics.is_internal(topic):
        return None
    return internal_topics.config_error(topic, LogConfig.from_properties(dict(overrides), base), base)


def _over_limit(existing: int, more: int, limit: int) -> str | None:
    if existing + more > limit:
        return f"{more} more partition(s) would exceed the cluster's limit of {limit} (riverlog.max.partitions)"
    return None


def decide_create_partitions(
    image: MetadataImage, requests: Sequence[tuple[str, int]], max_partitions: int
) -> Decision:
    scratch = _Scratch(image)
    existing = sum(len(t.partitions) for t in image.topics.values())
    dups = _duplicates(r[0] for r in requests)
    broker_ids = [b.node_id for b in image.unfenced_brokers()]
    racks = {b.node_id: b.rack for b in image.unfenced_brokers()}
    order = broker_order(broker_ids, racks)  # what place_replicas walks, so partition 0's rotation goes on
    results = []
    for name, total in requests:
        topic = image.topics.get(name)

        def fail(code: ErrorCode, message: str) -> None:
            results.append(TopicResult(name, code, message))

        if name in dups:
            fail(ErrorCode.INVALID_REQUEST, f"Duplicate topic name {name} in the request")
        elif topic is None:
            fail(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition.")
        elif (msg := internal_topics.create_partitions_error(name)) is not None:
            fail(ErrorCode.INVALID_TOPIC_EXCEPTION, msg)
        elif total < len(topic.partitions):
            fail(
                ErrorCode.INVALID_PARTITIONS,
                f"Topic currently has {len(topic.partitions)} partitions, which is higher than the requested {total}.",
            )
        elif total == len(topic.partitions):
            fail(ErrorCode.INVALID_PARTITIONS, f"Topic already has {total} partition(s).")
        elif (msg := _over_limit(existing, total - len(topic.partitions), max_partitions)) is not None:
            fail(ErrorCode.INVALID_PARTITIONS, msg)
        elif (msg := partition_dir_error(name, total)) is not None:
            fail(ErrorCode.INVALID_PARTITIONS, msg)
        else:
            rf = len(topic.partitions[0].replicas) if topic.partitions else 1
            if rf > len(broker_ids):
                fail(
                    ErrorCode.INVALID_REPLICATION_FACTOR,
                    f"Unable to replicate the partition {rf} time(s): only {len(broker_ids)} broker(s) are registered.",
                )
                continue
            first = len(topic.partitions)
            lead0 = topic.partitions[0].replicas[0] if topic.partitions else None
            start = order.index(lead0) if lead0 in order else 0  # continue partition 0's rotation
            placed = place_replicas(broker_ids, first, total - first, rf, start, racks)
            scratch.add([
                PartitionRecord(topic.topic_id, first + i, r, r, r[0], 0, 0) for i, r in enumerate(placed)
            ])  # fmt: skip
            existing += total - first
            results.append(TopicResult(name, ErrorCode.NONE, None, topic.topic_id, total, rf))
    return results, scratch.records


def decide_alter_configs(
    image: MetadataImage, topic: str, changes: Mapping[str, str | None], base: LogConfig, *, replace: bool = False
) -> Decision:
    """Incremental (``None`` deletes an override) or, with ``replace``, the full new set of overrides."""
    current = image.topics.get(topic)
    if current is None:
        return [ConfigResult("topic", topic, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {topic} does not exist.")], []
    if replace:
        if any(v is None for v in changes.values()):
            bad = next(k for k, v in changes.items() if v is None)
            return [ConfigResult("topic", topic, ErrorCode.INVALID_CONFIG, f"Null value not supported for topic config: {bad}")], []
        wanted = dict(changes)
        changes = {**{k: None for k in current.configs if k not in wanted}, **wanted}
    unknown = [k for k in changes if k not in TOPIC_CONFIG_NAMES]  # deleting one is an error too
    merged = {k: v for k, v in {**current.configs, **changes}.items() if v is not None}
    msg = f"Unknown topic config name: {unknown[0]}" if unknown else config_error(merged, base)
    if msg is not None:
        return [ConfigResult("topic", topic, ErrorCode.INVALID_CONFIG, msg)], []
    if (msg := _internal_config_error(topic, merged, base)) is not None:
        return [ConfigResult("topic", topic, ErrorCode.POLICY_VIOLATION, msg)], []
    records = [
        ConfigRecord("topic", topic, name, value)
        for name, value in sorted(changes.items())
        if current.configs.get(name) != value
    ]
    return [ConfigResult("topic", topic, ErrorCode.NONE)], records


def decide_allocate_producer_ids(
    image: MetadataImage, broker_id: int, broker_epoch: int, *, floor: int = 0,
    block_size: int = PRODUCER_ID_BLOCK_SIZE,
) -> tuple[ProducerIdsResult, list[MetadataRecord]]:  # fmt: skip
    """AllocateProducerIds (KIP-730), as Kafka's ProducerIdControlManager: the
    next block of ``block_size`` ids for a registered broker, from where the
    image says the next block begins, and the record that moves it on.

    ``floor``: ids below it may have been handed out outside the metadata log
    (a broker's producer-id-block file from before the controller allocated
    them, see broker/producer_ids.py), so no block starts below it.
    A broker unknown to the image, or one naming another incarnation's epoch,
    gets STALE_BROKER_EPOCH (it registers again and asks with its new epoch).
    """
    broker = image.brokers.get(broker_id)
    if broker is None or broker.epoch != broker_epoch:
        known = "not registered" if broker is None else f"registered with broker epoch {broker.epoch}"
        return ProducerIdsResult(ErrorCode.STALE_BROKER_EPOCH, f"Broker {broker_id} is {known}, "
                                 f"not with broker epoch {broker_epoch}."), []  # fmt: skip
    start = max(image.next_producer_id, floor)
    if start > PRODUCER_ID_END - block_size:
        return ProducerIdsResult(ErrorCode.UNKNOWN_SERVER_ERROR, f"Exhausted all producer ids (next {start})."), []
    record = ProducerIdsRecord(broker_id, broker_epoch, start + block_size)
    return ProducerIdsResult(ErrorCode.NONE, None, start, block_size), [record]
