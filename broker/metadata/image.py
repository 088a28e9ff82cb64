"""MetadataImage: the immutable cluster metadata that request handlers read.

An image is the result of applying the metadata log up to ``offset`` (-1:
nothing applied) to an empty image. ``apply`` returns a new image and never
changes the old one: readers holding an image see a consistent snapshot.
Mappings are read-only views; a changed image shares unchanged topics and
partitions with its predecessor (copy on write, one copy per batch).

Invariants: ``topics`` and ``topics_by_id`` hold the same TopicImage
objects; a topic's partitions are numbered 0..n-1; offsets and
``next_producer_id`` only grow.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from riverlog.broker.metadata.records import (
    ConfigRecord,
    FenceBrokerRecord,
    MetadataRecord,
    PartitionRecord,
    ProducerIdsRecord,
    RegisterBrokerRecord,
    RemoveTopicRecord,
    TopicRecord,
    UnfenceBrokerRecord,
)

_EMPTY: Mapping = MappingProxyType({})


@dataclass(frozen=True)
class BrokerImage:
    """One registered broker incarnation.

    ``epoch`` is the broker epoch: the metadata log offset of the entry that
    registered this incarnation (KRaft's rule), so a later registration of
    the same id always has a larger one, and fence/unfence records and
    heartbeats naming an older epoch are recognised as stale.
    """

    node_id: int
    host: str
    port: int
    rack: str | None
    fenced: bool  # fenced: leads nothing, not listed to clients
    epoch: int  # >= 0
    incarnation_id: str  # "" for registrations from before incarnations were recorded


@dataclass(frozen=True)
class PartitionImage:
    partition: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int  # -1: no leader
    leader_epoch: int
    partition_epoch: int


@dataclass(frozen=True)
class TopicImage:
    name: str
    topic_id: str
    partitions: Mapping[int, PartitionImage] = field(default_factory=lambda: _EMPTY)
    configs: Mapping[str, str] = field(default_factory=lambda: _EMPTY)  # overrides only; defaults are the broker's


@dataclass(frozen=True)
class MetadataImage:
    cluster_id: str
    controller_id: int
    brokers: Mapping[int, BrokerImage] = field(default_factory=lambda: _EMPTY)
    topics: Mapping[str, TopicImage] = field(default_factory=lambda: _EMPTY)
    topics_by_id: Mapping[str, TopicImage] = field(default_factory=lambda: _EMPTY)
    # Broker config overrides by resource name (a broker id, "" = cluster default).
    broker_configs: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: _EMPTY)
    offset: int = -1  # the metadata log offset of the last record applied
    # The first id of the next producer id block (KIP-730): every id below it
    # has gone to some broker, so a new controller continues from here.
    next_producer_id: int = 0

    @classmethod
    def empty(cls, cluster_id: str, controller_id: int) -> MetadataImage:
        return cls(cluster_id, controller_id)

    def unfenced_brokers(self) -> list[BrokerImage]:
        """Brokers that may host replicas, by node id."""
        return [b for _, b in sorted(self.brokers.items()) if not b.fenced]

    def apply(self, record: MetadataRecord, offset: int) -> MetadataImage:
        """A new image with ``record`` (at log ``offset``) applied; ValueError if it does not apply."""
        return self.apply_all([(offset, record)])

    def apply_entry(self, records: Iterable[MetadataRecord], offset: int) -> MetadataImage:
        """Apply the records of one metadata log entry (one controller
        operation, at log ``offset``); all or nothing."""
        if offset <= self.offset:
            raise ValueError(f"entry offset {offset} not after image offset {self.offset}")
        builder = _Builder(self)
        for record in records:
            builder.apply(record, offset)
        builder.offset = offset
        return builder.build()

    def apply_all(self, entries: Iterable[tuple[int, MetadataRecord]]) -> MetadataImage:
        """Apply (offset, record) pairs in order; all or nothing (self is never changed)."""
        builder = _Builder(self)
        for offset, record in entries:
            if offset <= builder.offset:
                raise ValueError(f"record offset {offset} not after image offset {builder.offset}")
            builder.apply(record, offset)
            builder.offset = offset
        return builder.build()


class _Builder:
    """Mutable working copy of an image: dicts copied once, on first change."""

    def __init__(self, image: MetadataImage) -> None:
        self.base = image
        self.offset = image.offset
        self.brokers = dict(image.brokers)
        self.topics = dict(image.topics)
        self.by_id = dict(image.topics_by_id)
        self.broker_configs = dict(image.broker_configs)
        self.next_producer_id = image.next_producer_id

    def apply(self, rec: MetadataRecord, offset: int) -> None:
        """Apply ``rec``, a record of the log entry at ``offset``."""
        if isinstance(rec, RegisterBrokerRecord):
            epoch = rec.broker_epoch if rec.broker_epoch >= 0 else offset  # explicit only in snapshots
            _check_epoch(epoch)
            self.brokers[rec.node_id] = BrokerImage(
                rec.node_id, rec.host, rec.port, rec.rack, rec.fenced, epoch, rec.incarnation_id
            )
        elif isinstance(rec, (FenceBrokerRecord, UnfenceBrokerRecord)):
            broker = self.brokers.get(rec.node_id)
            if broker is None:
                raise ValueError(f"{rec.TYPE} of unregistered broker {rec.node_id}")
            if broker.epoch != rec.broker_epoch:
                raise ValueError(f"stale {rec.TYPE}: broker {rec.node_id} epoch {rec.broker_epoch} != {broker.epoch}")
            self.brokers[rec.node_id] = replace(broker, fenced=isinstance(rec, FenceBrokerRecord))
        elif isinstance(rec, TopicRecord):
            if rec.name in self.topics:
                raise ValueError(f"topic {rec.name!r} already exists")
            if rec.topic_id in self.by_id:
                raise ValueError(f"topic id {rec.topic_id} already in use by {self.by_id[rec.topic_id].name!r}")
            self._put(TopicImage(rec.name, rec.topic_id))
        elif isinstance(rec, PartitionRecord):
            self._apply_partition(rec)
        elif isinstance(rec, ConfigRecord):
            self._apply_config(rec)
        elif isinstance(rec, RemoveTopicRecord):
            topic = self.by_id.pop(rec.topic_id, None)
            if topic is None:
                raise ValueError(f"cannot remove unknown topic id {rec.topic_id}")
            del self.topics[topic.name]
        elif isinstance(rec, ProducerIdsRecord):
            if rec.next_producer_id <= self.next_producer_id:
                raise ValueError(f"producer id block ending at {rec.next_producer_id} is not after "
                                 f"{self.next_producer_id}: ids would be handed out twice")  # fmt: skip
            self.next_producer_id = rec.next_producer_id
        else:
            raise ValueError(f"not a metadata record: {rec!r}")

    def _put(self, topic: TopicImage) -> None:
        self.topics[topic.name] = topic
        self.by_id[topic.topic_id] = topic

    def _apply_partition(self, rec: PartitionRecord) -> None:
        topic = self.by_id.get(rec.topic_id)
        if topic is None:
            raise ValueError(f"partition {rec.partition} of unknown topic id {rec.topic_id}")
        old = topic.partitions.get(rec.partition)
        if old is None:
            if rec.partition != len(topic.partitions):
                raise ValueError(
                    f"{topic.name}: new partition {rec.partition} would leave a gap after {len(topic.partitions)}"
                )
        elif rec.partition_epoch <= old.partition_epoch or rec.leader_epoch < old.leader_epoch:
            raise ValueError(
                f"{topic.name}-{rec.partition}: epochs must grow (partition epoch {old.partition_epoch} -> "
                f"{rec.partition_epoch}, leader epoch {old.leader_epoch} -> {rec.leader_epoch})"
            )
        parts = dict(topic.partitions)
        parts[rec.partition] = PartitionImage(
            rec.partition, rec.replicas, rec.isr, rec.leader, rec.leader_epoch, rec.partition_epoch
        )
        self._put(replace(topic, partitions=MappingProxyType(parts)))

    def _apply_config(self, rec: ConfigRecord) -> None:
        if rec.resource_type == "topic":
            topic = self.topics.get(rec.resource_name)
            if topic is None:
                raise ValueError(f"config {rec.name} for unknown topic {rec.resource_name!r}")
            self._put(replace(topic, configs=_with(topic.configs, rec.name, rec.value)))
        else:
            current = self.broker_configs.get(rec.resource_name, _EMPTY)
            updated = _with(current, rec.name, rec.value)
            if updated:
                self.broker_configs[rec.resource_name] = updated
            else:
                self.broker_configs.pop(rec.resource_name, None)

    def build(self) -> MetadataImage:
        b = self.base
        return MetadataImage(
            b.cluster_id,
            b.controller_id,
            MappingProxyType(self.brokers),
            MappingProxyType(self.topics),
            MappingProxyType(self.by_id),
            MappingProxyType(self.broker_configs),
            self.offset,
            self.next_producer_id,
        )


def _check_epoch(epoch: int) -> None:
    if epoch < 0:
        raise ValueError(f"broker epoch must be >= 0, not {epoch} (apply at a real offset)")


def _with(configs: Mapping[str, str], name: str, value: str | None) -> Mapping[str, str]:
    out = dict(configs)
    if value is None:
        out.pop(name, None)
    else:
        out[name] = value
    return MappingProxyType(out)


# -- differences -------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionChange:
    """One partition that differs between two images.

    ``kind`` is "created" (only ``new``), "deleted" (only ``old``) or
    "changed" (both; replicas, ISR, leader or epochs differ). A topic deleted
    and re-created under the same name is a deletion then a creation (its
    topic id changed), as the broker must drop the old partition's data.
    """

    kind: str
    topic: str
    topic_id: str
    partition: int
    old: PartitionImage | None = field(default=None)
    new: PartitionImage | None = field(default=None)


def changed_partitions(old: MetadataImage, new: MetadataImage) -> Iterator[PartitionChange]:
    """Deletions first, then creations and changes, each in (topic, partition) order."""
    for topic_id in sorted(old.topics_by_id.keys() - new.topics_by_id.keys(), key=lambda t: old.topics_by_id[t].name):
        topic = old.topics_by_id[topic_id]
        for p, part in sorted(topic.partitions.items()):
            yield PartitionChange("deleted", topic.name, topic_id, p, old=part)
    for topic_id, topic in sorted(new.topics_by_id.items(), key=lambda kv: kv[1].name):
        before = old.topics_by_id.get(topic_id)
        if before is topic:
            continue  # untouched: shared with the old image
        before_parts = before.partitions if before is not None else _EMPTY
        for p, part in sorted(topic.partitions.items()):
            prev = before_parts.get(p)
            if prev is None:
                yield PartitionChange("created", topic.name, topic_id, p, new=part)
            elif prev != part:
                yield PartitionChange("changed", topic.name, topic_id, p, old=prev, new=part)
