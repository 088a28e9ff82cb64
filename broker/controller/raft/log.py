"""RaftLog: the core's view of its replicated log, in memory.

The entries after the latest snapshot (or from offset 0), plus an epoch
index like Kafka's leader-epoch cache: ``(epoch, start offset)`` per epoch
present, so "where does epoch E end here?" (the question behind Vote's
up-to-date check and Fetch's divergence answer) is a bisect, not a scan.

Invariants::

    start_offset <= end_offset
    entries[i].offset == start_offset + i
    epochs strictly increase with offset (and from the snapshot's epoch)

The driver keeps the durable copy (raft_store.py); a restarted core is
rebuilt from it. Metadata logs are small and snapshots trim the prefix, so
memory stays bounded by the snapshot interval.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from .messages import Entry, SnapshotId


class RaftLog:
    def __init__(self, snapshot_id: SnapshotId | None = None, entries: Sequence[Entry] = ()) -> None:
        self.snapshot_id = snapshot_id
        self.start_offset = snapshot_id.end_offset if snapshot_id else 0
        self.entries: list[Entry] = []
        self._epoch_starts: list[int] = []  # offsets where an epoch begins, ascending
        self._epochs: list[int] = []  # the epoch beginning there
        self.append(entries)

    # -- reading ---------------------------------------------------------------------

    @property
    def end_offset(self) -> int:
        return self.start_offset + len(self.entries)

    @property
    def last_epoch(self) -> int:
        """The epoch of the last entry (or of the snapshot; 0 for an empty log)."""
        if self._epochs:
            return self._epochs[-1]
        return self.snapshot_id.epoch if self.snapshot_id else 0

    def entry(self, offset: int) -> Entry:
        assert self.start_offset <= offset < self.end_offset, (offset, self.start_offset, self.end_offset)
        return self.entries[offset - self.start_offset]

    def epoch_at(self, offset: int) -> int | None:
        """The epoch of the entry at ``offset``; the snapshot's epoch for the
        offset just before the log start; None when unknown."""
        if self.start_offset <= offset < self.end_offset:
            return self.entries[offset - self.start_offset].epoch
        if offset == self.start_offset - 1 and self.snapshot_id:
            return self.snapshot_id.epoch
        return None

    def slice(self, start: int, max_bytes: int) -> list[Entry]:
        """Entries from ``start`` on, at least one, about ``max_bytes`` in all."""
        out: list[Entry] = []
        size = 0
        for i in range(start - self.start_offset, len(self.entries)):
            entry = self.entries[i]
            size += len(entry.data) + 24
            if out and size > max_bytes:
                break
            out.append(entry)
        return out

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int] | None:
        """KRaft's answer for ``epoch``: (the largest epoch <= it present
        here, the end offset of that epoch). None if ``epoch`` is older than
        what this log (with its snapshot) still knows."""
        i = bisect.bisect_right(self._epochs, epoch) - 1
        if i >= 0:
            end = self._epoch_starts[i + 1] if i + 1 < len(self._epochs) else self.end_offset
            return self._epochs[i], end
        if self.snapshot_id is not None:
            if epoch < self.snapshot_id.epoch:
                return None
            return self.snapshot_id.epoch, self.start_offset
        return -1, self.start_offset  # older than the first epoch: nothing of it here

    # -- changing --------------------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> None:
        for entry in entries:
            assert entry.offset == self.end_offset, (entry.offset, self.end_offset)
            assert entry.epoch >= self.last_epoch, (entry.epoch, self.last_epoch)
            if not self._epochs or entry.epoch != self._epochs[-1]:
                self._epochs.append(entry.epoch)
                self._epoch_starts.append(entry.offset)
            self.entries.append(entry)

    def truncate_to(self, offset: int) -> None:
        """Drop every entry at ``offset`` and after."""
        assert self.start_offset <= offset <= self.end_offset, (offset, self.start_offset, self.end_offset)
        del self.entries[offset - self.start_offset:]
        while self._epoch_starts and self._epoch_starts[-1] >= offset:
            self._epoch_starts.pop()
            self._epochs.pop()

    def compact(self, snapshot_id: SnapshotId) -> None:
        """A snapshot now covers everything below its end offset: drop it here."""
        end = snapshot_id.end_offset
        assert end >= self.start_offset
        if end <= self.end_offset:
            assert self.epoch_at(end - 1) in (snapshot_id.epoch, None), (end, snapshot_id)
            del self.entries[: end - self.start_offset]
        else:
            self.entries.clear()
        self.start_offset = end
        self.snapshot_id = snapshot_id
        remaining, self.entries = self.entries, []
        self._epochs.clear()
        self._epoch_starts.clear()
        self.append(remaining)  # rebuilds the epoch index (compaction is rare)

    def reset(self, snapshot_id: SnapshotId) -> None:
        """Start over from an installed snapshot: nothing before or after it."""
        self.entries.clear()
        self._epochs.clear()
        self._epoch_starts.clear()
        self.snapshot_id = snapshot_id
        self.start_offset = snapshot_id.end_offset
