"""A node's state machine: the list of payloads it has applied.

Each applied payload keeps its (offset, epoch) so the checkers can compare
it with the committed history. Every ``snapshot_every`` applied entries the
node snapshots it; the encoding is plain text so a trace can show it.
Control entries (LeaderChange) move the applied offset but add no payload.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from riverlog.broker.controller.raft.messages import Entry, Snapshot, SnapshotId

Applied = tuple[int, int, bytes]  # (offset, epoch, data)


@dataclass
class StateMachine:
    applied: list[Applied] = field(default_factory=list)
    applied_end_offset: int = 0  # every entry below this has been applied (or came with a snapshot)
    last_epoch: int = 0  # epoch of the entry at applied_end_offset - 1
    since_snapshot: int = 0

    def apply(self, entry: Entry) -> None:
        assert entry.offset == self.applied_end_offset, (
            f"applied offset {entry.offset}, expected {self.applied_end_offset}"
        )
        if not entry.control:
            self.applied.append((entry.offset, entry.epoch, entry.data))
        self.applied_end_offset = entry.offset + 1
        self.last_epoch = entry.epoch
        self.since_snapshot += 1

    def snapshot(self) -> Snapshot:
        self.since_snapshot = 0
        return Snapshot(SnapshotId(self.applied_end_offset, self.last_epoch), encode(self.applied))

    @staticmethod
    def applied_in(data: bytes) -> list[Applied]:
        """The applied payloads a snapshot of this kind of machine holds."""
        return decode(data)

    @classmethod
    def restore(cls, snapshot: Snapshot | None) -> StateMachine:
        if snapshot is None:
            return cls()
        return cls(decode(snapshot.data), snapshot.id.end_offset, snapshot.id.epoch)


def encode(applied: list[Applied]) -> bytes:
    return b"".join(b"%d %d %s\n" % (offset, epoch, data.hex().encode()) for offset, epoch, data in applied)


def decode(data: bytes) -> list[Applied]:
    out: list[Applied] = []
    for line in data.splitlines():
        offset, epoch, hexdata = line.split(b" ")
        out.append((int(offset), int(epoch), bytes.fromhex(hexdata.decode())))
    return out
