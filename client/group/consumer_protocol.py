"""Kafka's ConsumerProtocol Subscription and Assignment (versions 0-3).

These are the bytes a consumer puts in JoinGroup's `metadata` (one
Subscription per offered assignor) and the leader puts in SyncGroup's
`assignment` (one Assignment per member); the coordinator never looks inside.
Byte layout, classic (non-flexible) encoding, big-endian:

    Subscription:
      int16 version
      int32 count, then count x (int16 length, UTF-8 topic)      topics
      int32 length (-1 null), then bytes                          user_data
      v1+: int32 count x (topic string, int32 count x int32)      owned_partitions
      v2+: int32                                                  generation_id (-1 none)
      v3+: int16 length (-1 null), then UTF-8                     rack_id
    Assignment:
      int16 version
      int32 count x (topic string, int32 count x int32)           assigned partitions
      int32 length (-1 null), then bytes                          user_data

Assignment versions 1-3 are laid out as version 0: Kafka bumped them only to
track the Subscription. Forward compatibility (Kafka's rule for this
protocol): a newer version may only append fields, so a decoder reads a
version above 3 as version 3 and ignores the bytes after. Fields a version
lacks are dropped silently on encode, as Kafka's "ignorable" fields are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from riverlog.client.protocol import codec
from riverlog.client.protocol import primitives as p
from riverlog.client.protocol.errors import RemoteProtocolError, UnsupportedApi
from riverlog.client.protocol.schema import Message, array, f, message
from riverlog.client.types import TopicPartition

# Highest versions we know; Java's ConsumerProtocol writes these too.
SUBSCRIPTION_VERSION = 3
ASSIGNMENT_VERSION = 3

# Tables from ConsumerProtocolSubscription.json / ConsumerProtocolAssignment.json.
# They are "data" types, not APIs: -1 stands for the missing api key.
SUBSCRIPTION = message(
    "ConsumerProtocolSubscription", -1, "0-3", "none",
    f("topics", "[]string"),
    f("user_data", "bytes", nullable="0+", default=None),
    array("owned_partitions", "1+",
          f("topic", "string"),
          f("partitions", "[]int32")),
    f("generation_id", "int32", "2+", default=-1),
    f("rack_id", "string", "3+", nullable="3+", default=None),
)

ASSIGNMENT = message(
    "ConsumerProtocolAssignment", -1, "0-3", "none",
    array("assigned_partitions", "0+",
          f("topic", "string"),
          f("partitions", "[]int32")),
    f("user_data", "bytes", nullable="0+", default=None),
)


class ConsumerProtocolError(RemoteProtocolError, ValueError):
    """Subscription or Assignment bytes are truncated or malformed.

    A ValueError too, so callers that only know "bad value" can catch it."""


@dataclass
class Subscription:
    """What a member asks for. `generation_id` -1 means "not known" (the
    field is absent before v2); `owned_partitions` is empty before v1."""

    topics: list[str]
    user_data: bytes | None = None
    owned_partitions: list[TopicPartition] = field(default_factory=list)
    generation_id: int = -1
    rack_id: str | None = None


@dataclass
class Assignment:
    """What the leader gives a member: a list of TopicPartition, as Java's
    `Assignment.partitions()`."""

    partitions: list[TopicPartition]
    user_data: bytes | None = None


def _group_by_topic(partitions: list[TopicPartition]) -> list[dict]:
    # Wire form: topics in order of first appearance, partitions in given order.
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    return [{"topic": t, "partitions": ps} for t, ps in by_topic.items()]


def _flatten(entries: list[dict]) -> list[TopicPartition]:
    return [TopicPartition(e["topic"], q) for e in entries for q in e["partitions"]]


def _encode(table: Message, version: int, body: dict) -> bytes:
    out = bytearray()
    p.write_int16(out, version)
    codec.encode_into(out, table, version, body)
    return bytes(out)


def _decode(table: Message, data: bytes | bytearray | memoryview) -> tuple[int, dict]:
    buf = memoryview(data)
    try:
        version, pos = p.read_int16(buf, 0)
        if version < 0:
            raise RemoteProtocolError(f"negative version {version}")
        body, _ = codec.decode_from(table, min(version, table.valid[1]), buf, pos)
    except (RemoteProtocolError, UnsupportedApi) as exc:
        raise ConsumerProtocolError(f"bad {table.name}: {exc}") from None
    return version, body


def encode_subscription(sub: Subscription, version: int = SUBSCRIPTION_VERSION) -> bytes:
    return _encode(SUBSCRIPTION, version, {
        "topics": sub.topics,
        "user_data": sub.user_data,
        "owned_partitions": _group_by_topic(sub.owned_partitions),
        "generation_id": sub.generation_id,
        "rack_id": sub.rack_id,
    })


def decode_subscription(data: bytes | bytearray | memoryview) -> Subscription:
    """Decode JoinGroup member metadata; raises ConsumerProtocolError."""
    _, body = _decode(SUBSCRIPTION, data)
    return Subscription(
        topics=body["topics"],
        user_data=body["user_data"],
        owned_partitions=_flatten(body["owned_partitions"]),
        generation_id=body["generation_id"],
        rack_id=body["rack_id"],
    )


def encode_assignment(assignment: Assignment, version: int = ASSIGNMENT_VERSION) -> bytes:
    return _encode(ASSIGNMENT, version, {
        "assigned_partitions": _group_by_topic(assignment.partitions),
        "user_data": assignment.user_data,
    })


def decode_assignment(data: bytes | bytearray | memoryview) -> Assignment:
    """Decode a SyncGroup assignment; raises ConsumerProtocolError. Empty
    bytes (what the coordinator sends a member the leader left out) are
    malformed here: the caller treats them as "no assignment" first."""
    _, body = _decode(ASSIGNMENT, data)
    return Assignment(_flatten(body["assigned_partitions"]), body["user_data"])
