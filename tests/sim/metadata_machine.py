"""A simulated node's state machine in the metadata simulation.

The real ``MetadataStateMachine`` (broker/metadata/image_machine.py) is the
node's state: every committed non-control entry goes to its ``apply`` as the
Raft driver hands it over, and a snapshot is its own ``snapshot()`` bytes,
restored with its own ``restore``. Around it stays the Raft simulation's
list of applied payloads (``StateMachine``), so the Raft checkers (applied
state is a prefix, snapshots hold only committed entries) keep working:
a snapshot here is an envelope of both, the metadata part first::

    <length of the metadata snapshot>\\n<metadata snapshot><applied list>

The envelope is the simulation's only: the real driver stores the metadata
snapshot alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from riverlog.broker.controller.raft.messages import Entry, Snapshot
from riverlog.broker.metadata.image import MetadataImage
from riverlog.broker.metadata.image_machine import MetadataStateMachine

from tests.sim.state_machine import Applied, StateMachine, decode

CLUSTER_ID = "simcluster"


@dataclass
class MetadataNodeMachine(StateMachine):
    meta: MetadataStateMachine = field(default_factory=lambda: MetadataStateMachine(CLUSTER_ID, -1))

    @property
    def image(self) -> MetadataImage:
        return self.meta.image

    def apply(self, entry: Entry) -> None:
        super().apply(entry)
        if not entry.control:
            self.meta.apply([entry])

    def snapshot(self) -> Snapshot:
        raft_part = super().snapshot()
        meta_part = self.meta.snapshot()
        return Snapshot(raft_part.id, b"%d\n" % len(meta_part) + meta_part + raft_part.data)

    @staticmethod
    def applied_in(data: bytes) -> list[Applied]:
        return decode(split(data)[1])

    @classmethod
    def for_node(cls, node_id: int, snapshot: Snapshot | None) -> MetadataNodeMachine:
        meta = MetadataStateMachine(CLUSTER_ID, node_id)
        if snapshot is None:
            return cls(meta=meta)
        meta_part, raft_part = split(snapshot.data)
        meta.restore(meta_part)
        return cls(decode(raft_part), snapshot.id.end_offset, snapshot.id.epoch, meta=meta)


def split(data: bytes) -> tuple[bytes, bytes]:
    """(metadata snapshot, applied list) of an envelope."""
    header, _, rest = data.partition(b"\n")
    length = int(header)
    assert len(rest) >= length, "a truncated snapshot envelope"
    return rest[:length], rest[length:]
