"""Loading a partition's log from its directory, and recovery after a crash: part of Log.

Split from log.py along its seam (a Log's state is one; this file holds what
runs when it is opened). Leftovers of a cleaning or a deletion are removed,
a compaction swap a crash interrupted is finished, and every segment past the
recovery point is scanned and cut at the first bad batch (LogSegment.recover).
"""

from __future__ import annotations

import logging
import os

from riverlog.broker.storage.index_file import CorruptIndexError
from riverlog.broker.storage.log_segment import (
    CLEANED_SUFFIX,
    DELETED_SUFFIX,
    MAX_SEGMENT_BYTES,
    SEGMENT_FILE,
    SWAP_SUFFIX,
)

log = logging.getLogger("riverlog.broker.storage.log")  # the Log's own lines, as before the split


class LogRecovery:
    """Log's loading and recovery (mixed into Log, whose state it uses)."""

    def _load(self, recovery_point: int, log_start_offset: int, clean_shutdown: bool) -> None:
        swaps: list[int] = []
        bases: set[int] = set()
        for entry in os.listdir(self.dir):
            m = SEGMENT_FILE.match(entry)
            if entry.endswith(".tmp") or (m and m.group(3) in (CLEANED_SUFFIX, DELETED_SUFFIX)):
                # A cleaning that did not reach its swap, or a deletion that
                # was scheduled: either way the files are no longer wanted.
                (self.dir / entry).unlink()
            elif m and m.group(3) == SWAP_SUFFIX:
                if m.group(2) == "log":
                    swaps.append(int(m.group(1)))
            elif m and m.group(2) == "log":
                bases.add(int(m.group(1)))
        for base in swaps:
            bases = self._complete_swap(base, bases)
        for entry in os.listdir(self.dir):
            m = SEGMENT_FILE.match(entry)
            if not m or m.group(2) == "log":
                continue
            if int(m.group(1)) not in bases:
                (self.dir / entry).unlink()  # index files without their .log are stale
            elif m.group(3) == SWAP_SUFFIX:
                # The swap's .log went live before a crash: its indexes follow it.
                os.replace(self.dir / entry, self.dir / entry[: -len(SWAP_SUFFIX)])

        for base in sorted(bases):
            self._add_segment(self._new_segment(base))
        if not self._segments:
            self._add_segment(self._new_segment(max(log_start_offset, 0)))

        self._recover(recovery_point if not clean_shutdown else None)
        self.active.make_active()
        if self.epoch_cache.corrupt or (not self.epoch_cache.entries() and self.active.next_offset > self._bases[0]):
            self._rebuild_epoch_cache()

        self.log_start_offset = max(log_start_offset, self._segments[0].base_offset)
        self.log_start_offset = min(self.log_start_offset, self.log_end_offset)
        self.recovery_point = self.log_end_offset if clean_shutdown else min(
            max(recovery_point, self.log_start_offset), self.log_end_offset
        )
        self.epoch_cache.truncate_from_end(self.log_end_offset)
        self.epoch_cache.truncate_from_start(self.log_start_offset)

    def _complete_swap(self, base: int, bases: set[int]) -> set[int]:
        """Finish a compaction swap that a crash interrupted (see cleaner.py)."""
        swap = self._new_segment(base, SWAP_SUFFIX)
        try:
            end = swap.next_offset
            replaced = {b for b in bases if base <= b < end}
            for b in replaced:
                self._new_segment(b).delete()  # lets go of its maps and descriptor even if it fails
        finally:
            swap.close()
        for ext in (".log", ".index", ".timeindex"):
            src = self.dir / f"{base:020d}{ext}{SWAP_SUFFIX}"
            if src.exists():
                os.replace(src, self.dir / f"{base:020d}{ext}")
        return (bases - replaced) | {base}

    def _recover(self, recovery_point: int | None) -> None:
        """Scan segments that may hold unflushed data; cut at the first bad batch.

        ``recovery_point`` None means a clean shutdown: nothing is scanned, but
        an index that fails its sanity check is still rebuilt.
        """
        i = 0
        while i < len(self._segments):
            seg = self._segments[i]
            is_last = i == len(self._segments) - 1
            next_base = None if is_last else self._segments[i + 1].base_offset
            needs_scan = recovery_point is not None and (next_base is None or next_base > recovery_point)
            if not needs_scan:
                try:
                    seg.sanity_check()
                except CorruptIndexError as e:
                    log.warning("%s: rebuilding index: %s", self.name, e)
                    needs_scan = True
            if needs_scan:
                result = seg.recover(MAX_SEGMENT_BYTES, next_base)
                for epoch, offset in result.epochs:
                    self.epoch_cache.assign(epoch, offset)
                if not is_last:
                    seg.on_become_inactive()
                if result.bytes_truncated:
                    log.warning(
                        "%s: recovery dropped %d bytes of invalid or torn data from offset %d in %s",
                        self.name, result.bytes_truncated, seg.next_offset, seg.log_path.name,
                    )
                    # Everything after a bad batch is unreachable by offset: drop it.
                    for later in self._segments[i + 1 :]:
                        log.warning("%s: recovery deleted segment %s after the bad batch", self.name, later)
                        later.delete()
                    del self._segments[i + 1 :]
                    del self._bases[i + 1 :]
                    break
            i += 1
        # An empty segment other than the active one carries no offsets; it
        # stays (Kafka keeps them too) because its base offset anchors the next.

    def _rebuild_epoch_cache(self) -> None:
        """The cache is derived from batch headers: read them all (rare: a lost or corrupt checkpoint)."""
        log.warning("%s: rebuilding the leader epoch cache from batch headers", self.name)
        self.epoch_cache.clear(force=True)
        for seg in self._segments:
            for header in seg.walk(0):
                self.epoch_cache.assign(header.partition_leader_epoch, header.base_offset)
