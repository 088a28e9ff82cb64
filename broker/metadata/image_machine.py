"""MetadataStateMachine: the metadata image as the Raft log's state machine.

Every node replays the committed metadata log into an image (``apply``);
listeners hear of each change as (old image, new image), which is how a
broker acts on metadata (create or delete partition logs, lead or follow).

A snapshot is the image written back as the records that rebuild it
(brokers with their epoch and incarnation, topics, partitions, configs,
where the next producer id block begins), JSON: ``{"offset": N, "records":
[...]}`` with each record as ``encode_record`` makes it. Restoring one
replaces the image; listeners then see the whole difference at once.

Each log entry holds the records of one controller operation
(``encode_entry``), applied all or nothing. A committed entry that does not
apply (it would break an image invariant) is logged and skipped, on every
node alike: the leader checks
each record against its own image before proposing it, so this means a
bug, and skipping keeps the nodes' images equal rather than stopping them.
The offsets of the last skipped entries are kept (``was_skipped``), so the
controller that proposed one does not answer it as done.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace

from riverlog.broker.controller.raft.messages import Entry
from riverlog.broker.metadata.image import MetadataImage
from riverlog.broker.metadata.records import (
    ConfigRecord,
    MetadataRecord,
    PartitionRecord,
    ProducerIdsRecord,
    RegisterBrokerRecord,
    TopicRecord,
    decode_record,
    encode_record,
)

log = logging.getLogger(__name__)

Listener = Callable[[MetadataImage, MetadataImage], None]

# Skipped entries remembered: the controller asks about its own entry right
# after it applies, so a few are plenty; bounded, as a bug could skip many.
_SKIPPED_KEPT = 64


def image_records(image: MetadataImage) -> list[MetadataRecord]:
    """Records that rebuild ``image`` from an empty one."""
    out: list[MetadataRecord] = [
        RegisterBrokerRecord(b.node_id, b.host, b.port, b.rack, b.fenced, b.incarnation_id, broker_epoch=b.epoch)
        for _, b in sorted(image.brokers.items())
    ]  # the epoch written out: a snapshot's records are not at the offsets that registered them
    for name, topic in sorted(image.topics.items()):
        out.append(TopicRecord(name, topic.topic_id))
        for p, part in sorted(topic.partitions.items()):
            out.append(PartitionRecord(topic.topic_id, p, part.replicas, part.isr, part.leader, part.leader_epoch,
                                       part.partition_epoch))  # fmt: skip
        out += [ConfigRecord("topic", name, k, v) for k, v in sorted(topic.configs.items())]
    for resource, configs in sorted(image.broker_configs.items()):
        out += [ConfigRecord("broker", resource, k, v) for k, v in sorted(configs.items())]
    if image.next_producer_id > 0:
        out.append(ProducerIdsRecord(-1, -1, image.next_producer_id))
    return out


def encode_entry(records: Sequence[MetadataRecord]) -> bytes:
    """One log entry for one controller operation's records, so the log
    holds all of them or none: ``encode_record`` lines joined by newlines
    (compact JSON never contains a raw newline)."""
    return b"\n".join(encode_record(r) for r in records)


def decode_entry(data: bytes) -> list[MetadataRecord]:
    return [decode_record(line) for line in bytes(data).split(b"\n")]


class MetadataStateMachine:
    def __init__(self, cluster_id: str, node_id: int) -> None:
        self.cluster_id = cluster_id
        self.node_id = node_id
        self.image = MetadataImage.empty(cluster_id, node_id)
        self._listeners: list[Listener] = []
        self._skipped: deque[int] = deque(maxlen=_SKIPPED_KEPT)

    def was_skipped(self, offset: int) -> bool:
        """Whether the entry at ``offset`` (one of the last few skipped) did not apply."""
        return offset in self._skipped

    def on_change(self, callback: Listener) -> Callable[[], None]:
        """``callback(old, new)`` after each change; returns an unsubscribe."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def apply(self, entries: Sequence[Entry]) -> None:
        old = new = self.image
        for e in entries:
            try:
                new = new.apply_entry(decode_entry(e.data), e.offset)
            except Exception as exc:  # noqa: BLE001 - one bad entry must not stop every node, on every replay
                log.error("metadata log offset %d: skipping an entry that does not apply: %s", e.offset, exc)
                self._skipped.append(e.offset)
        if new is not old:
            self._set(old, new)

    def snapshot(self) -> bytes:
        records = [encode_record(r).decode() for r in image_records(self.image)]
        return json.dumps({"offset": self.image.offset, "records": records}, separators=(",", ":")).encode()

    def restore(self, data: bytes) -> None:
        doc = json.loads(data)
        records = [decode_record(r.encode()) for r in doc["records"]]
        image = MetadataImage.empty(self.cluster_id, self.node_id).apply_all(enumerate(records))
        self._set(self.image, replace(image, offset=int(doc["offset"])))

    def _set(self, old: MetadataImage, new: MetadataImage) -> None:
        self.image = new
        for listener in list(self._listeners):
            try:
                listener(old, new)
            except Exception:  # noqa: BLE001 - the image moved on; one listener's fault (a full disk
                # creating a log, say) must not stop the Raft loop that called us, nor the others
                log.exception("acting on metadata offset %d failed", new.offset)
