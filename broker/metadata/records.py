"""Metadata records: the entries of the metadata log, as KRaft's are.

Each record is a frozen dataclass with a stable ``TYPE`` name and a
``VERSION``. On disk a record is the value of one record in a batch of
``__cluster_metadata-0``, encoded as compact JSON (sorted keys, no spaces)::

    {"type": "topic", "v": 0, "name": "orders", "topic_id": "9f1c...e2"}

``decode_record`` accepts only what ``encode_record`` produces: a known type,
a version it understands, exactly that version's fields with the right JSON
types, and values inside their invariants; anything else is a ValueError.
A field added in a later version (``_SINCE``) is absent from older records
and takes its default when they are decoded, so old logs still replay.
Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import ClassVar, Union

METADATA_TOPIC = "__cluster_metadata"  # the metadata log's partition is <this>-0
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _check_broker_epoch(node_id: int, broker_epoch: int) -> None:
    _check(node_id >= 0, f"node_id must be >= 0, not {node_id}")
    _check(broker_epoch >= 0, f"broker_epoch must be >= 0, not {broker_epoch}")


def check_topic_id(topic_id: str) -> None:
    """A topic id is a 16-byte UUID as 32 lowercase hex digits (not all zero: Kafka's ZERO_UUID)."""
    _check(isinstance(topic_id, str) and bool(_HEX32.match(topic_id)), f"topic_id {topic_id!r} is not 32 hex digits")
    _check(topic_id != "0" * 32, "topic_id must not be the zero uuid")


@dataclass(frozen=True)
class RegisterBrokerRecord:
    """A broker (one incarnation of its process) joins, replacing any earlier registration of its id.

    The broker epoch is the offset of the log entry holding this record, as
    in KRaft, so it is known only once committed: ``broker_epoch`` is -1 in
    what the controller writes. Snapshots write the epoch the image holds
    (>= 0), since a snapshot's records sit at no log offset of their own.
    v1 added ``incarnation_id`` and ``broker_epoch`` (v0: "" and -1).
    """

    TYPE: ClassVar[str] = "register_broker"
    VERSION: ClassVar[int] = 1
    node_id: int  # >= 0
    host: str
    port: int  # 0..65535
    rack: str | None = None
    fenced: bool = False
    incarnation_id: str = ""  # 32 hex digits (the process's uuid), "" before v1
    broker_epoch: int = -1  # -1: the entry's offset; >= 0 only in snapshots

    def __post_init__(self) -> None:
        _check(self.node_id >= 0, f"node_id must be >= 0, not {self.node_id}")
        _check(0 <= self.port <= 65535, f"port {self.port} out of range")
        _check(
            self.incarnation_id == "" or bool(_HEX32.match(self.incarnation_id)),
            f"incarnation_id {self.incarnation_id!r} is not 32 hex digits",
        )
        _check(self.broker_epoch >= -1, f"broker_epoch must be >= -1, not {self.broker_epoch}")


@dataclass(frozen=True)
class FenceBrokerRecord:
    """The broker may no longer lead or be in an ISR (it missed its session, or shuts down).

    Applies only to the registration whose epoch is ``broker_epoch``: a
    record about an earlier incarnation is stale.
    """

    TYPE: ClassVar[str] = "fence_broker"
    VERSION: ClassVar[int] = 0
    node_id: int  # >= 0
    broker_epoch: int  # >= 0

    def __post_init__(self) -> None:
        _check_broker_epoch(self.node_id, self.broker_epoch)


@dataclass(frozen=True)
class UnfenceBrokerRecord:
    """The broker has caught up with the log since it registered: it may lead and host replicas."""

    TYPE: ClassVar[str] = "unfence_broker"
    VERSION: ClassVar[int] = 0
    node_id: int  # >= 0
    broker_epoch: int  # >= 0

    def __post_init__(self) -> None:
        _check_broker_epoch(self.node_id, self.broker_epoch)


@dataclass(frozen=True)
class TopicRecord:
    TYPE: ClassVar[str] = "topic"
    VERSION: ClassVar[int] = 0
    name: str
    topic_id: str  # 32 hex digits

    def __post_init__(self) -> None:
        _check(bool(self.name), "topic name must not be empty")
        check_topic_id(self.topic_id)


@dataclass(frozen=True)
class PartitionRecord:
    """The whole state of one partition (creation, or a change of it).

    Invariants: replicas non-empty and distinct; isr a subset of replicas;
    leader in isr, or -1 (no leader); epochs >= 0.
    """

    TYPE: ClassVar[str] = "partition"
    VERSION: ClassVar[int] = 0
    topic_id: str
    partition: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "replicas", tuple(self.replicas))
        object.__setattr__(self, "isr", tuple(self.isr))
        check_topic_id(self.topic_id)
        _check(self.partition >= 0, f"partition must be >= 0, not {self.partition}")
        _check(len(self.replicas) > 0, "replicas must not be empty")
        _check(len(set(self.replicas)) == len(self.replicas), f"duplicate replicas {self.replicas}")
        _check(len(set(self.isr)) == len(self.isr), f"duplicate isr members {self.isr}")
        _check(set(self.isr) <= set(self.replicas), f"isr {self.isr} not within replicas {self.replicas}")
        _check(self.leader == -1 or self.leader in self.isr, f"leader {self.leader} not in isr {self.isr}")
        _check(self.leader_epoch >= 0 and self.partition_epoch >= 0, "epochs must be >= 0")


@dataclass(frozen=True)
class ConfigRecord:
    """Set (value a str) or delete (value None) one config override."""

    TYPE: ClassVar[str] = "config"
    VERSION: ClassVar[int] = 0
    resource_type: str  # "topic" or "broker"
    resource_name: str  # topic name, or broker id as a string ("" = cluster default)
    name: str
    value: str | None

    def __post_init__(self) -> None:
        _check(self.resource_type in ("topic", "broker"), f"resource_type {self.resource_type!r}")
        _check(bool(self.name), "config name must not be empty")


@dataclass(frozen=True)
class RemoveTopicRecord:
    TYPE: ClassVar[str] = "remove_topic"
    VERSION: ClassVar[int] = 0
    topic_id: str

    def __post_init__(self) -> None:
        check_topic_id(self.topic_id)


# Producer ids are int64 on the wire, and so is where the next block begins:
# every block ends by this (the id itself is never handed out).
PRODUCER_ID_END = 2**63 - 1


@dataclass(frozen=True)
class ProducerIdsRecord:
    """A block of producer ids allocated to a broker (KIP-730): the block ends
    before ``next_producer_id``, where the next block begins.

    ``broker_id`` and ``broker_epoch`` name the broker it went to; a snapshot
    writes -1 for both (it keeps only where the next block begins).
    """

    TYPE: ClassVar[str] = "producer_ids"
    VERSION: ClassVar[int] = 0
    broker_id: int  # >= 0, or -1 in snapshots
    broker_epoch: int  # >= 0, or -1 in snapshots
    next_producer_id: int  # > 0: the first id of the next block

    def __post_init__(self) -> None:
        snapshot = self.broker_id == -1 and self.broker_epoch == -1
        _check(snapshot or (self.broker_id >= 0 and self.broker_epoch >= 0),
               f"bad broker {self.broker_id}@{self.broker_epoch}: both -1 (a snapshot's) or both >= 0")  # fmt: skip
        _check(0 < self.next_producer_id <= PRODUCER_ID_END, f"next_producer_id {self.next_producer_id} out of range")


MetadataRecord = Union[
    RegisterBrokerRecord, FenceBrokerRecord, UnfenceBrokerRecord, TopicRecord, PartitionRecord, ConfigRecord,
    RemoveTopicRecord, ProducerIdsRecord,
]

RECORD_TYPES: dict[str, type] = {
    cls.TYPE: cls
    for cls in (RegisterBrokerRecord, FenceBrokerRecord, UnfenceBrokerRecord, TopicRecord, PartitionRecord,
                ConfigRecord, RemoveTopicRecord, ProducerIdsRecord)
}  # fmt: skip

# Field kinds, checked on decode (JSON has no tuples and bools are ints in Python).
_KINDS: dict[type, dict[str, str]] = {
    RegisterBrokerRecord: {
        "node_id": "int", "host": "str", "port": "int", "rack": "str?", "fenced": "bool",
        "incarnation_id": "str", "broker_epoch": "int",
    },
    FenceBrokerRecord: {"node_id": "int", "broker_epoch": "int"},
    UnfenceBrokerRecord: {"node_id": "int", "broker_epoch": "int"},
    TopicRecord: {"name": "str", "topic_id": "str"},
    PartitionRecord: {
        "topic_id": "str", "partition": "int", "replicas": "ints", "isr": "ints",
        "leader": "int", "leader_epoch": "int", "partition_epoch": "int",
    },
    ConfigRecord: {"resource_type": "str", "resource_name": "str", "name": "str", "value": "str?"},
    RemoveTopicRecord: {"topic_id": "str"},
    ProducerIdsRecord: {"broker_id": "int", "broker_epoch": "int", "next_producer_id": "int"},
}  # fmt: skip

# The version that added a field, for fields added after v0 (older records lack them).
_SINCE: dict[type, dict[str, int]] = {RegisterBrokerRecord: {"incarnation_id": 1, "broker_epoch": 1}}


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _fits(kind: str, v: object) -> bool:
    if kind == "int":
        return _is_int(v)
    if kind == "str":
        return isinstance(v, str)
    if kind == "str?":
        return v is None or isinstance(v, str)
    if kind == "bool":
        return isinstance(v, bool)
    return isinstance(v, list) and all(_is_int(x) for x in v)  # "ints"


def encode_record(rec: MetadataRecord) -> bytes:
    cls = type(rec)
    if cls not in _KINDS:
        raise TypeError(f"{cls.__name__} is not a metadata record")
    body: dict[str, object] = {"type": cls.TYPE, "v": cls.VERSION}
    for f in dataclasses.fields(rec):
        value = getattr(rec, f.name)
        body[f.name] = list(value) if isinstance(value, tuple) else value
    return json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def decode_record(data: bytes | bytearray | memoryview) -> MetadataRecord:
    """The record in ``data``; ValueError naming what is wrong for anything else."""
    try:
        body = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"metadata record is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise ValueError("metadata record is not a JSON object")
    type_name, version = body.pop("type", None), body.pop("v", None)
    cls = RECORD_TYPES.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise ValueError(f"unknown metadata record type {type_name!r}")
    if not _is_int(version) or not 0 <= version <= cls.VERSION:
        raise ValueError(f"{type_name} record version {version!r} not supported (max {cls.VERSION})")
    since = _SINCE.get(cls, {})
    kinds = {name: kind for name, kind in _KINDS[cls].items() if since.get(name, 0) <= version}
    if set(body) != set(kinds):
        raise ValueError(f"{type_name} record fields {sorted(body)} != {sorted(kinds)}")
    for name, kind in kinds.items():
        if not _fits(kind, body[name]):
            raise ValueError(f"{type_name} record field {name}={body[name]!r} is not {kind}")
        if kind == "ints":
            body[name] = tuple(body[name])
    return cls(**body)  # missing newer fields take their defaults; __post_init__ checks the invariants (ValueError)
