"""A node's simulated disk: what survives a crash.

It models Ready steps 1-5 as a list of writes (snapshot, truncation, one
write per appended entry, hard state) that reach the platter in order. A
crash while a Ready is being handled keeps a prefix of those writes (the
fsync never returned) and loses the rest; the Ready's messages never leave
and its committed entries are never applied. A restart builds a new core
from exactly what is here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from riverlog.broker.controller.raft.messages import Entry, HardState, Ready, Snapshot


class ReadyContractError(AssertionError):
    """The core handed out a Ready the driver cannot apply as documented."""


@dataclass
class SimDisk:
    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)  # contiguous, after the snapshot
    fsyncs: int = 0

    @property
    def log_start_offset(self) -> int:
        return self.snapshot.id.end_offset if self.snapshot is not None else 0

    @property
    def log_end_offset(self) -> int:
        return self.entries[-1].offset + 1 if self.entries else self.log_start_offset

    @staticmethod
    def writes(ready: Ready) -> list[tuple[str, object]]:
        """The Ready's durable effects, in the order the driver issues them."""
        writes: list[tuple[str, object]] = []
        if ready.snapshot is not None:
            writes.append(("snapshot", ready.snapshot))
        if ready.truncate_to is not None:
            writes.append(("truncate", ready.truncate_to))
        writes.extend(("append", entry) for entry in ready.entries)
        if ready.hard_state is not None:
            writes.append(("hard_state", ready.hard_state))
        return writes

    def apply(self, writes: list[tuple[str, object]]) -> None:
        for kind, value in writes:
            if kind == "snapshot":
                assert isinstance(value, Snapshot)
                self.snapshot, self.entries = value, []  # a leader's snapshot replaces the whole log
            elif kind == "truncate":
                assert isinstance(value, int)
                if value < self.log_start_offset:
                    raise ReadyContractError(f"truncate_to {value} below log start {self.log_start_offset}")
                self.entries = [e for e in self.entries if e.offset < value]
            elif kind == "append":
                assert isinstance(value, Entry)
                if value.offset != self.log_end_offset:
                    raise ReadyContractError(
                        f"appended entry at offset {value.offset}, log ends at {self.log_end_offset}"
                    )
                self.entries.append(value)
            else:
                assert isinstance(value, HardState)
                self.hard_state = value
        self.fsyncs += 1

    def store_snapshot(self, snapshot: Snapshot) -> None:
        """Atomic (temp file, fsync, rename): the snapshot replaces the log
        below its end offset; entries from its end offset on stay."""
        self.snapshot = snapshot
        end = snapshot.id.end_offset
        self.entries = [e for e in self.entries if e.offset >= end]
