"""OffsetIndex: sparse map from offset to byte position in a segment's .log.

File ``<base offset, 20 digits>.index``; each entry is 8 bytes, big-endian::

    relative_offset u32   (offset - segment base offset)
    position        u32   (byte position of the batch in the .log file)

Invariant: relative offsets strictly increase along the file, and so do
positions. An entry is added at most every ``index.interval.bytes`` of log;
the offset it records is the *last* offset of the batch at that position (as
Kafka does), so a lookup lands on a batch at or before the target.
"""

from __future__ import annotations

import struct

from riverlog import native
from riverlog.broker.storage.errors import InvariantError
from riverlog.broker.storage.index_file import CorruptIndexError, IndexFile

_ENTRY = struct.Struct(">II")
MAX_RELATIVE_OFFSET = 2**31 - 1  # offsets in a segment stay within an int32 of its base (as Kafka)


class OffsetIndex(IndexFile):
    ENTRY_SIZE = 8

    def entry(self, slot: int) -> tuple[int, int]:
        """(absolute offset, position) of ``slot``."""
        rel, pos = _ENTRY.unpack_from(self.buffer, slot * 8)
        return self.base_offset + rel, pos

    @property
    def last_offset(self) -> int:
        return self.entry(self.entries - 1)[0] if self.entries else self.base_offset

    def append(self, offset: int, position: int) -> None:
        rel = offset - self.base_offset
        n = self.entries
        # The invariant (module docstring): both strictly increase. Checked
        # per entry, one per index.interval.bytes of log: cheap.
        last_rel, last_pos = _ENTRY.unpack_from(self.buffer, n * 8 - 8) if n else (-1, -1)
        if rel <= last_rel or position <= last_pos or rel > 0xFFFFFFFF:
            raise InvariantError(
                f"{self.path}: entry (offset {offset}, position {position}) does not follow "
                f"(offset {self.base_offset + last_rel}, position {last_pos})"
            )
        self._write_entry(_ENTRY, rel, position)

    def lookup(self, target_offset: int) -> tuple[int, int]:
        """The largest indexed (offset, position) with offset <= target, else (base, 0)."""
        slot = native.offset_index_lookup(self.search_buffer, self.entries, target_offset - self.base_offset)
        return self.entry(slot) if slot >= 0 else (self.base_offset, 0)

    def truncate_to(self, offset: int) -> None:
        """Remove the entries for offsets >= ``offset``."""
        slot = native.offset_index_lookup(self.search_buffer, self.entries, offset - self.base_offset)
        # Keep slots < first slot whose offset >= target.
        if slot >= 0 and self.entry(slot)[0] == offset:
            slot -= 1
        self._truncate_to_entries(slot + 1)

    def sanity_check(self, log_size: int) -> None:
        """Cheap checks that catch a torn or zero-filled (crashed) index."""
        if self._torn:
            raise CorruptIndexError(f"{self.path}: length is not a multiple of 8")
        if self.entries == 0:
            return
        last_rel, last_pos = _ENTRY.unpack_from(self.buffer, (self.entries - 1) * 8)
        if last_pos >= log_size:
            raise CorruptIndexError(f"{self.path}: last entry points past the end of the log")
        if self.entries > 1:
            prev_rel, prev_pos = _ENTRY.unpack_from(self.buffer, (self.entries - 2) * 8)
            if prev_rel >= last_rel or prev_pos >= last_pos:
                raise CorruptIndexError(f"{self.path}: entries do not increase")
