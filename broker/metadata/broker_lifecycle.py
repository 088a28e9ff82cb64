"""The broker lifecycle on the controller (KIP-631): registration, heartbeats, fencing, elections. Pure.

Like decisions.py: image + request -> (result, records to commit as one
entry). No clock and no I/O: times are parameters (``BrokerHeartbeatTracker``).

A broker's life, as the image records it::

    register (fenced, epoch = the entry's offset)
      -> heartbeat caught up (metadata offset >= epoch) -> unfenced: may lead
      -> missed session / want_fence / want_shut_down   -> fenced: leads nothing
      -> register again (a new incarnation, a new epoch) -> fenced ...

Leader election is clean only (unclean.leader.election.enable=false): a
new leader comes from the ISR, first in replica order, unfenced. A fenced
broker leaves every ISR it shares with others; a partition whose ISR holds
no other unfenced member goes offline (leader -1) with the ISR kept, and
its old leader leads it again when unfenced. Every partition change is the
full PartitionRecord with the partition epoch + 1, and the leader epoch + 1
when the leader changes (an ISR shrink under the same leader keeps the
leader epoch, as in Kafka 3.6+).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from riverlog.broker.metadata.image import MetadataImage, PartitionImage, TopicImage
from riverlog.broker.metadata.records import (
    FenceBrokerRecord,
    MetadataRecord,
    PartitionRecord,
    RegisterBrokerRecord,
    UnfenceBrokerRecord,
)
from riverlog.client.protocol.errors import ErrorCode

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
NO_LEADER = -1


@dataclass(frozen=True)
class RegistrationResult:
    error_code: ErrorCode
    error_message: str | None = None


@dataclass(frozen=True)
class HeartbeatResult:
    error_code: ErrorCode
    is_caught_up: bool = False
    is_fenced: bool = True
    should_shut_down: bool = False


# -- registration ---------------------------------------------------------------------


def decide_register(
    image: MetadataImage,
    node_id: int,
    incarnation_id: str,
    host: str,
    port: int,
    rack: str | None,
    *,
    live: frozenset[int],
) -> tuple[RegistrationResult, list[MetadataRecord]]:
    """A RegisterBrokerRecord (fenced) for a new incarnation of ``node_id``.

    ``live``: the ids that heartbeated within the session timeout. The id is
    refused while another incarnation holds it, live and unfenced (two
    processes configured with one node id). Otherwise the registration
    replaces any earlier one: the old incarnation's leaderships move first
    (it may have died without being fenced yet). The new broker epoch is
    the committed entry's offset: read it from the image after commit.
    """
    if node_id < 0 or not host or not 1 <= port <= 65535 or not _HEX32.match(incarnation_id):
        message = f"bad registration of broker {node_id} at {host}:{port} (incarnation {incarnation_id!r})"
        return RegistrationResult(ErrorCode.INVALID_REQUEST, message), []
    current = image.brokers.get(node_id)
    if (
        current is not None
        and current.incarnation_id != incarnation_id
        and node_id in live
        and not current.fenced
    ):
        message = f"Another broker is registered with that broker id {node_id} (incarnation {current.incarnation_id})."
        return RegistrationResult(ErrorCode.DUPLICATE_BROKER_REGISTRATION, message), []
    records: list[MetadataRecord] = []
    if current is not None and not current.fenced:
        records += _partitions_without(image, node_id)
    records.append(RegisterBrokerRecord(node_id, host, port, rack, True, incarnation_id))
    image.apply_entry(records, image.offset + 1)  # they apply, or this is a bug
    return RegistrationResult(ErrorCode.NONE), records


# -- heartbeats ------------------------------------------------------------------------


def decide_heartbeat(
    image: MetadataImage,
    node_id: int,
    broker_epoch: int,
    metadata_offset: int,
    want_fence: bool,
    want_shut_down: bool,
) -> tuple[HeartbeatResult, list[MetadataRecord]]:
    """Kafka's BrokerHeartbeat on the controller.

    A fenced broker that has replayed the log up to its own registration
    (``metadata_offset`` >= its epoch) and does not ask to stay fenced is
    unfenced and takes back the offline partitions whose ISR lists it.
    ``want_shut_down`` (controlled shutdown) moves its leaderships away and
    fences it; ``should_shut_down`` is True once it leads nothing another
    replica could lead, i.e. once these records are committed.
    """
    broker = image.brokers.get(node_id)
    if broker is None:
        return HeartbeatResult(ErrorCode.BROKER_ID_NOT_REGISTERED), []
    if broker_epoch != broker.epoch:
        return HeartbeatResult(ErrorCode.STALE_BROKER_EPOCH), []
    caught_up = metadata_offset >= broker.epoch
    records: list[MetadataRecord]
    if want_shut_down or want_fence:
        records = decide_fence(image, node_id)
    elif broker.fenced and caught_up:
        records = [UnfenceBrokerRecord(node_id, broker.epoch), *_partitions_back(image, node_id)]
    else:
        records = []
    after = image.apply_entry(records, image.offset + 1) if records else image
    fenced = after.brokers[node_id].fenced
    shut_down = want_shut_down and not any(True for _ in _movable_leaderships(after, node_id))
    return HeartbeatResult(ErrorCode.NONE, caught_up, fenced, shut_down), records


# -- fencing and election --------------------------------------------------------------


def decide_fence(image: MetadataImage, node_id: int) -> list[MetadataRecord]:
    """Fence ``node_id`` (missed session, or controlled shutdown): a
    FenceBrokerRecord and its partitions re-elected or shrunk. Nothing for
    an unknown broker; only leftover partition moves (normally none) for
    one already fenced."""
    broker = image.brokers.get(node_id)
    if broker is None:
        return []
    records: list[MetadataRecord] = [] if broker.fenced else [FenceBrokerRecord(node_id, broker.epoch)]
    records += _partitions_without(image, node_id)
    if records:
        image.apply_entry(records, image.offset + 1)  # they apply, or this is a bug
    return records


def _partitions(image: MetadataImage) -> Iterator[tuple[TopicImage, PartitionImage]]:
    for _, topic in sorted(image.topics.items()):
        for _, part in sorted(topic.partitions.items()):
            yield topic, part


def _eligible(image: MetadataImage, node_id: int) -> bool:
    broker = image.brokers.get(node_id)
    return broker is not None and not broker.fenced


def _changed(topic: TopicImage, part: PartitionImage, isr: tuple[int, ...], leader: int) -> PartitionRecord:
    leader_epoch = part.leader_epoch + 1 if leader != part.leader else part.leader_epoch
    return PartitionRecord(topic.topic_id, part.partition, part.replicas, isr, leader, leader_epoch,
                           part.partition_epoch + 1)  # fmt: skip


def _partitions_without(image: MetadataImage, node_id: int) -> list[PartitionRecord]:
    """Partition changes taking ``node_id`` out of leadership and ISRs (as if fenced).

    Led partitions get the first unfenced other ISR member in replica order,
    or go offline keeping their ISR. Followed partitions with a leader drop
    it from the ISR while other members remain.
    """
    out = []
    for topic, part in _partitions(image):
        if part.leader == node_id:
            others = [r for r in part.replicas if r in part.isr and r != node_id and _eligible(image, r)]
            if others:
                out.append(_changed(topic, part, tuple(r for r in part.isr if r != node_id), others[0]))
            else:
                out.append(_changed(topic, part, part.isr, NO_LEADER))  # offline until it returns
        elif part.leader != NO_LEADER and node_id in part.isr and len(part.isr) > 1:
            out.append(_changed(topic, part, tuple(r for r in part.isr if r != node_id), part.leader))
    return out


def _partitions_back(image: MetadataImage, node_id: int) -> list[PartitionRecord]:
    """Offline partitions whose ISR lists ``node_id``: it leads them again (clean: it was in the ISR)."""
    return [
        _changed(topic, part, part.isr, node_id)
        for topic, part in _partitions(image)
        if part.leader == NO_LEADER and node_id in part.isr
    ]


def _movable_leaderships(image: MetadataImage, node_id: int) -> Iterator[PartitionImage]:
    """Partitions ``node_id`` leads that another unfenced ISR member could lead."""
    for _, part in _partitions(image):
        if part.leader == node_id and any(r != node_id and _eligible(image, r) for r in part.isr):
            yield part


# -- sessions --------------------------------------------------------------------------


class BrokerHeartbeatTracker:
    """When each broker last heartbeated (controller-local, not in the log).

    A broker whose last heartbeat is more than ``session_timeout_ms`` old
    (broker.session.timeout.ms, 9 s by default) has expired: the controller
    fences it. A new active controller starts empty, so it gives every broker
    a full session before fencing it (touch them all when it takes over).
    """

    def __init__(self) -> None:
        self._last_ms: dict[int, int] = {}

    def touch(self, node_id: int, now_ms: int) -> None:
        self._last_ms[node_id] = max(now_ms, self._last_ms.get(node_id, now_ms))

    def forget(self, node_id: int) -> None:
        self._last_ms.pop(node_id, None)

    def expired(self, now_ms: int, session_timeout_ms: int) -> list[int]:
        return sorted(n for n, last in self._last_ms.items() if now_ms - last > session_timeout_ms)

    def live(self, now_ms: int, session_timeout_ms: int) -> frozenset[int]:
        return frozenset(n for n, last in self._last_ms.items() if now_ms - last <= session_timeout_ms)
