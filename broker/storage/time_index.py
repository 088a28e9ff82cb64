"""TimeIndex: sparse map from timestamp to offset in a segment.

File ``<base offset, 20 digits>.timeindex``; each entry is 12 bytes, big-endian::

    timestamp       i64   (largest batch max timestamp seen so far, ms)
    relative_offset u32   (last offset of the batch that had it, - base offset)

Invariant: timestamps strictly increase along the file (an entry is only added
when the segment's max timestamp grows). Every batch before the offset of the
largest entry with timestamp <= T has only timestamps <= T, so a search for
the first record with timestamp >= T starts at that entry (``lookup``).
One slot is kept free for the entry written when the segment rolls, which
records the segment's final max timestamp.
"""

from __future__ import annotations

import struct

from riverlog import native
from riverlog.broker.storage.errors import InvariantError
from riverlog.broker.storage.index_file import CorruptIndexError, IndexFile

_ENTRY = struct.Struct(">qI")
NO_TIMESTAMP = -1


class TimeIndex(IndexFile):
    ENTRY_SIZE = 12

    def entry(self, slot: int) -> tuple[int, int]:
        """(timestamp, absolute offset) of ``slot``."""
        ts, rel = _ENTRY.unpack_from(self.buffer, slot * 12)
        return ts, self.base_offset + rel

    @property
    def last_entry(self) -> tuple[int, int]:
        return self.entry(self.entries - 1) if self.entries else (NO_TIMESTAMP, self.base_offset)

    @property
    def is_full(self) -> bool:
        return self.entries >= self.max_entries - 1  # the last slot is the roll's

    def maybe_append(self, timestamp: int, offset: int, final: bool = False) -> None:
        """Add (timestamp, offset) if the timestamp is newer than the last entry's.

        ``final`` is the entry written when the segment stops taking appends:
        it may use the slot kept free for it.
        """
        n = self.entries
        if n and timestamp <= _ENTRY.unpack_from(self.buffer, n * 12 - 12)[0]:
            return
        if n >= self.max_entries or (n >= self.max_entries - 1 and not final):
            return
        self.append(timestamp, offset, final)

    def append(self, timestamp: int, offset: int, final: bool = False) -> None:
        """Write (timestamp, offset) as the next entry: the invariant (module
        docstring) is checked here, timestamps strictly increasing, offsets
        never going back (one entry per index.interval.bytes of log: cheap)."""
        n, rel = self.entries, offset - self.base_offset
        last_ts, last_rel = _ENTRY.unpack_from(self.buffer, n * 12 - 12) if n else (NO_TIMESTAMP - 1, 0)
        if timestamp <= last_ts or rel < last_rel or rel > 0xFFFFFFFF:
            raise InvariantError(
                f"{self.path}: entry (timestamp {timestamp}, offset {offset}) does not follow "
                f"(timestamp {last_ts}, offset {self.base_offset + last_rel})"
            )
        self._write_entry(_ENTRY, timestamp, rel, final)

    def lookup(self, target_timestamp: int) -> tuple[int, int]:
        """Largest (timestamp, offset) with timestamp <= target, else (-1, base offset)."""
        slot = native.time_index_lookup(self.search_buffer, self.entries, target_timestamp)
        return self.entry(slot) if slot >= 0 else (NO_TIMESTAMP, self.base_offset)

    def truncate_to(self, offset: int) -> None:
        """Remove entries whose offset is >= ``offset``."""
        n = self.entries
        while n > 0 and self.entry(n - 1)[1] >= offset:
            n -= 1
        self._truncate_to_entries(n)

    def sanity_check(self, log_size: int) -> None:
        if self._torn:
            raise CorruptIndexError(f"{self.path}: length is not a multiple of 12")
        if self.entries > 1:
            prev_ts, prev_off = self.entry(self.entries - 2)
            last_ts, last_off = self.entry(self.entries - 1)
            if prev_ts >= last_ts or prev_off > last_off:
                raise CorruptIndexError(f"{self.path}: entries do not increase")
