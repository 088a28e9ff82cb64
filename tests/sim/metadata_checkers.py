"""The metadata rules, checked every time a node's image changes.

- every node's image equals the replay, from an empty image and in order,
  of the committed log prefix it has applied (``history`` of the Raft
  checker, below the node's applied offset; a snapshot restored or
  installed must give the same image as replaying what it covers);
- every committed entry applies to the image before it (the leader checks
  its records against its own image, which is the committed prefix before
  the entry: if one does not apply, a controller decided on a stale image);
- a partition (topic id, partition) never has two different leaders with
  the same leader epoch, across all nodes and all time;
- a partition's leader epoch never goes back on a node (within one run of
  its process: a restart begins again from its snapshot);
- a fenced broker never leads a partition, in one and the same image (nor
  does an unregistered one);
- every leader is in its partition's ISR;
- no two producer id blocks acknowledged to brokers overlap, across all
  controllers and all time (KIP-730: an id never goes to two producers).
"""

from __future__ import annotations

from riverlog.broker.metadata.image import MetadataImage
from riverlog.broker.metadata.image_machine import decode_entry

from tests.sim.checkers import Checker
from tests.sim.metadata_machine import CLUSTER_ID

PartitionKey = tuple[str, int]  # (topic id, partition)


class MetadataChecker:
    def __init__(self, checker: Checker) -> None:
        self.checker = checker
        self._replayed: list[MetadataImage] = [MetadataImage.empty(CLUSTER_ID, -1)]  # [k]: offsets below k applied
        self.leaders: dict[PartitionKey, dict[int, int]] = {}  # leader epoch -> the leader, over all time
        self._leader_epochs: dict[int, dict[PartitionKey, int]] = {}  # node -> partition -> last leader epoch seen
        self.producer_id_blocks: list[tuple[int, int, int]] = []  # (start, end, broker) acknowledged

    def fail(self, rule: str, detail: str) -> None:
        self.checker.fail(rule, detail)

    # -- replay ---------------------------------------------------------------------

    def replay(self, end_offset: int) -> MetadataImage:
        """The image of the committed log below ``end_offset``, from empty."""
        replayed, history = self._replayed, self.checker.history
        while len(replayed) <= end_offset:
            offset = len(replayed) - 1
            committed = history.get(offset)
            if committed is None:
                self.fail("a node applies only committed entries",
                          f"offset {offset} was applied somewhere but is in no committed history")
            image = replayed[-1]
            epoch, data, control = committed  # type: ignore[misc]
            if not control:
                try:
                    image = image.apply_entry(decode_entry(data), offset)
                except ValueError as e:
                    self.fail("every committed entry applies to the image before it",
                              f"offset {offset} (epoch {epoch}): {e}")
            replayed.append(image)
        return replayed[end_offset]

    def restarted(self, node: int) -> None:
        self._leader_epochs.pop(node, None)

    def image_changed(self, node: int, image: MetadataImage, applied_end_offset: int) -> None:
        expected = self.replay(applied_end_offset)
        if not same_image(image, expected):
            self.fail("a node's image is the replay of the committed log it applied",
                      f"node {node} applied below {applied_end_offset}: {image_difference(image, expected)}")
        self.partitions(node, image)

    # -- producer ids ---------------------------------------------------------------

    def producer_ids_allocated(self, broker: int, start: int, length: int) -> None:
        end = start + length
        for other_start, other_end, other in self.producer_id_blocks:
            if start < other_end and other_start < end:
                self.fail("no two producer id blocks overlap",
                          f"broker {broker} got [{start}, {end}); broker {other} had [{other_start}, {other_end})")
        self.producer_id_blocks.append((start, end, broker))

    # -- partitions -----------------------------------------------------------------

    def partitions(self, node: int, image: MetadataImage) -> None:
        epochs = self._leader_epochs.setdefault(node, {})
        for name, topic in image.topics.items():
            for p, part in topic.partitions.items():
                key = (topic.topic_id, p)
                where = f"node {node} image at offset {image.offset}: {name}-{p} ({topic.topic_id[:6]})"
                if part.leader != -1:
                    if part.leader not in part.isr:
                        self.fail("every leader is in its ISR", f"{where} leader {part.leader}, isr {list(part.isr)}")
                    broker = image.brokers.get(part.leader)
                    if broker is None or broker.fenced:
                        self.fail("a fenced broker never leads",
                                  f"{where} leader {part.leader} (leader epoch {part.leader_epoch}) is "
                                  f"{'unregistered' if broker is None else 'fenced'} in that image")
                seen = self.leaders.setdefault(key, {}).setdefault(part.leader_epoch, part.leader)
                if seen != part.leader:
                    self.fail("a partition never has two leaders with one leader epoch",
                              f"{where} leader {part.leader} at leader epoch {part.leader_epoch}; "
                              f"leader {seen} had that leader epoch before")
                last = epochs.get(key, -1)
                if part.leader_epoch < last:
                    self.fail("leader epochs only grow",
                              f"{where} leader epoch {part.leader_epoch} after {last} on the same node")
                epochs[key] = part.leader_epoch


def same_image(a: MetadataImage, b: MetadataImage) -> bool:
    """Equal but for ``controller_id`` (each node's image names its own node)."""
    return (a.cluster_id, a.offset) == (b.cluster_id, b.offset) and a.brokers == b.brokers \
        and a.topics == b.topics and a.topics_by_id == b.topics_by_id and a.broker_configs == b.broker_configs \
        and a.next_producer_id == b.next_producer_id


def image_difference(a: MetadataImage, b: MetadataImage) -> str:
    """The first difference, for a violation's detail."""
    if a.offset != b.offset:
        return f"image offset {a.offset}, replay offset {b.offset}"
    for node_id in sorted(a.brokers.keys() | b.brokers.keys()):
        if a.brokers.get(node_id) != b.brokers.get(node_id):
            return f"broker {node_id}: {a.brokers.get(node_id)} vs replay {b.brokers.get(node_id)}"
    for name in sorted(a.topics.keys() | b.topics.keys()):
        if a.topics.get(name) != b.topics.get(name):
            return f"topic {name}: {a.topics.get(name)} vs replay {b.topics.get(name)}"
    if a.next_producer_id != b.next_producer_id:
        return f"next producer id {a.next_producer_id}, replay {b.next_producer_id}"
    return f"topic ids or broker configs differ: {dict(a.broker_configs)} vs {dict(b.broker_configs)}"
