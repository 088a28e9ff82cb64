"""LeaderEpochCache: which leader epoch began at which offset of a partition.

Kept in memory as an ordered list of (epoch, start_offset) with both strictly
increasing, and checkpointed to ``<partition dir>/leader-epoch-checkpoint``
(Kafka's text format, see checkpoint.py) on every change. Changes are rare
(one per leader election), so writing the whole file each time is cheap.
"""

from __future__ import annotations

import bisect
from pathlib import Path

from riverlog.broker.storage.checkpoint import CorruptCheckpointError, read_checkpoint, write_checkpoint

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1
FILE_NAME = "leader-epoch-checkpoint"


class LeaderEpochCache:
    def __init__(self, partition_dir: Path) -> None:
        self.path = partition_dir / FILE_NAME
        # Invariant: epochs and start offsets strictly increase along the list.
        self._entries: list[tuple[int, int]] = []
        try:
            raw = read_checkpoint(self.path, 2)
            self._entries = [(int(e), int(o)) for e, o in raw]
            self._check()
        except (CorruptCheckpointError, ValueError, AssertionError):
            # The cache is derived data: Log rebuilds it from batch headers.
            self._entries = []
            self.corrupt = True
        else:
            self.corrupt = False

    def entries(self) -> list[tuple[int, int]]:
        return list(self._entries)

    @property
    def latest_epoch(self) -> int:
        return self._entries[-1][0] if self._entries else UNDEFINED_EPOCH

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that ``epoch`` starts at ``start_offset`` (no-op if not newer)."""
        if epoch < 0:
            return
        if self._entries:
            last_epoch, last_start = self._entries[-1]
            if epoch <= last_epoch:
                return  # an epoch never goes back; an old epoch seen again is not news
            if start_offset <= last_start:
                # A newer epoch starting at or before the last one's start
                # replaces the entries from there on (as Kafka), e.g. after
                # the log start moved up to the log end.
                self._entries = [(e, o) for e, o in self._entries if o < start_offset]
        self._entries.append((epoch, start_offset))
        self._flush()

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """OffsetsForLeaderEpoch: (largest epoch <= requested, the offset where it ended).

        As Kafka's LeaderEpochFileCache.endOffsetFor: the end of the latest
        epoch is the log end offset; an epoch older than all known answers
        with the first known start offset; an unknown newer epoch is undefined.
        """
        if requested_epoch == UNDEFINED_EPOCH or not self._entries:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if requested_epoch == self.latest_epoch:
            return requested_epoch, log_end_offset
        epochs = [e for e, _ in self._entries]
        i = bisect.bisect_right(epochs, requested_epoch)  # first entry with epoch > requested
        if i == len(self._entries):
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if i == 0:
            return requested_epoch, self._entries[0][1]
        return self._entries[i - 1][0], self._entries[i][1]

    def epoch_for_offset(self, offset: int) -> int:
        """The epoch under which ``offset`` was written, or UNDEFINED_EPOCH."""
        starts = [o for _, o in self._entries]
        i = bisect.bisect_right(starts, offset)
        return self._entries[i - 1][0] if i else UNDEFINED_EPOCH

    def truncate_from_end(self, end_offset: int) -> None:
        """Forget epochs that start at or after ``end_offset`` (log truncated there)."""
        kept = [(e, o) for e, o in self._entries if o < end_offset]
        if kept != self._entries:
            self._entries = kept
            self._flush()

    def truncate_from_start(self, start_offset: int) -> None:
        """Log start moved to ``start_offset``: the epoch holding it now starts there."""
        i = bisect.bisect_right([o for _, o in self._entries], start_offset)
        if i == 0:
            return
        kept = [(self._entries[i - 1][0], start_offset)] + self._entries[i:]
        if kept != self._entries:
            self._entries = kept
            self._flush()

    def clear(self, force: bool = False) -> None:
        """Forget every epoch; ``force`` rewrites the file even if nothing is cached."""
        if self._entries or force:
            self._entries = []
            self._flush()
        self.corrupt = False

    def _check(self) -> None:
        for (e1, o1), (e2, o2) in zip(self._entries, self._entries[1:]):
            assert e1 < e2 and o1 < o2, "leader epoch entries must increase"

    def _flush(self) -> None:
        self._check()
        write_checkpoint(self.path, self._entries)
