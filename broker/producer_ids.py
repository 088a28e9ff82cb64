"""Producer ids that never repeat, across restarts, on a single broker.

Ids are handed out from blocks of ``BLOCK_SIZE``: before the first id of a
block is given out, the start of the *next* block is written (atomically,
fsynced: ``write_checkpoint``) to ``producer-id-block`` in the first data
directory. After a restart or a crash the broker continues from that value,
so the unused rest of a block is skipped and no id is ever handed out twice.
This stands in for Kafka's controller-allocated ProducerIdsRecord blocks; a
multi-broker cluster needs the blocks to come from the metadata log instead.
"""

from __future__ import annotations

from pathlib import Path

from broker.storage.checkpoint import CorruptCheckpointError, read_checkpoint, write_checkpoint

BLOCK_SIZE = 1000
FILE_NAME = "producer-id-block"


class ProducerIdAllocator:
    def __init__(self, path: Path, block_size: int = BLOCK_SIZE) -> None:
        self.path = path
        self.block_size = block_size
        entries = read_checkpoint(path, 1)
        try:
            self._next = int(entries[0][0]) if entries else 0
        except ValueError:
            raise CorruptCheckpointError(f"{path}: not a producer id") from None
        self._end = self._next  # nothing is reserved until the first id is asked for

    def next_id(self) -> int:
        """A fresh producer id; raises OSError if the next block cannot be persisted."""
        if self._next >= self._end:
            end = self._next + self.block_size
            write_checkpoint(self.path, [(end,)])
            self._end = end
        producer_id = self._next
        self._next += 1
        return producer_id
