"""Producer ids for InitProducerId, in blocks from the active controller (KIP-730).

Idempotence keys a partition's deduplication on (producer id, epoch), so an
id must never go to two producers anywhere in the cluster. As in Kafka, a
broker hands out ids from a block of ``PRODUCER_ID_BLOCK_SIZE`` that the
active controller allocated to it with AllocateProducerIds and recorded in
the metadata log (ProducerIdsRecord) before answering; the image holds
where the next block begins, so a new controller, or every node restarted,
continues after every block ever given out. A broker restarted drops the
rest of its block and asks for a new one.

``ProducerIdBlocks`` is the pure part: the current block, the one fetched
ahead of need (asked for once 90% of the current one is used, as Kafka's
RPCProducerIdManager does), and when to ask. ``ProducerIdManager`` runs the
asking. While a broker has no id to give (just started, or a burst used
its blocks before the next one came), InitProducerId is answered
COORDINATOR_LOAD_IN_PROGRESS, retriable, as Kafka answers it.

Before the controller allocated them, a single broker kept its next block
in ``producer-id-block`` in its first data directory. Ids below that value
may live on in its partitions' producer state, so a controller that finds
the file in its own data directory starts no block below it
(``legacy_producer_id_floor``); the file is left as it is (no longer
written) and costs nothing once the log has moved past it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from broker.storage.checkpoint import CorruptCheckpointError, read_checkpoint
from client.protocol import ErrorCode

log = logging.getLogger(__name__)

LEGACY_FILE_NAME = "producer-id-block"
PREFETCH_RATIO = 0.9  # ask for the next block once this much of the current one is handed out
RETRY_BACKOFF_S = 0.1  # Kafka's retry.backoff.ms for a failed AllocateProducerIds
RETRY_BACKOFF_MAX_S = 1.0
_PRODUCER_ID_END = 2**63  # producer ids are int64 on the wire


class NoProducerIdBlock(Exception):
    """No producer id to hand out until the controller's next block arrives."""


@dataclass(frozen=True)
class ProducerIdBlock:
    start: int
    length: int

    @property
    def end(self) -> int:
        """The first id past the block."""
        return self.start + self.length


class ProducerIdBlocks:
    """The ids a broker may hand out: its current block and at most one more. Pure."""

    def __init__(self, prefetch_ratio: float = PREFETCH_RATIO) -> None:
        self.prefetch_ratio = prefetch_ratio
        self._current: ProducerIdBlock | None = None
        self._next_id = 0
        self._prefetched: ProducerIdBlock | None = None
        self._seen_end = 0  # no block may begin below the end of one already taken

    def next_id(self) -> int:
        """A fresh producer id; NoProducerIdBlock if there is none until a block arrives."""
        if self._current is None or self._next_id >= self._current.end:
            if self._prefetched is None:
                self._current = None
                raise NoProducerIdBlock("no producer id block from the controller yet")
            self._current, self._prefetched = self._prefetched, None
            self._next_id = self._current.start
        producer_id = self._next_id
        self._next_id += 1
        return producer_id

    def wants_block(self) -> bool:
        """Whether to ask the controller for a block now: none is held in
        reserve, and the current one is missing or mostly handed out."""
        if self._prefetched is not None:
            return False
        if self._current is None:
            return True
        used = self._next_id - self._current.start
        return used >= self._current.length * self.prefetch_ratio

    def add_block(self, start: int, length: int) -> None:
        """A block the controller allocated to this broker; ValueError if it
        overlaps one already taken (it would hand ids out twice)."""
        if length <= 0 or start < self._seen_end or start + length > _PRODUCER_ID_END:
            raise ValueError(f"producer id block [{start}, {start + length}) is empty, not after {self._seen_end} "
                             f"or past the int64 range")  # fmt: skip
        block = ProducerIdBlock(start, length)
        self._seen_end = block.end
        if self._current is None or self._next_id >= self._current.end:
            self._current, self._next_id = block, start
        else:
            self._prefetched = block


# The controller's answer to AllocateProducerIds: (error code, first id, number of ids).
Allocate = Callable[[], Awaitable[tuple[int, int, int]]]


class ProducerIdManager:
    """A broker's producer ids: ``next_id()`` for InitProducerId, and ``run``,
    the task that asks the controller for blocks as they are wanted."""

    def __init__(self, blocks: ProducerIdBlocks | None = None) -> None:
        self.blocks = blocks if blocks is not None else ProducerIdBlocks()
        self._wanted = trio.Event()
        self._has_block = trio.Event()

    async def wait_first_block(self) -> None:
        await self._has_block.wait()

    def next_id(self) -> int:
        """A fresh producer id; NoProducerIdBlock (retriable) while there is none."""
        try:
            return self.blocks.next_id()
        finally:
            if self.blocks.wants_block():
                self._wanted.set()

    async def run(self, allocate: Allocate) -> None:
        """Ask for a block whenever one is wanted (at once: the first block),
        retrying with backoff until the controller gives one."""
        backoff_s = RETRY_BACKOFF_S
        while True:
            if not self.blocks.wants_block():
                await self._wanted.wait()
                self._wanted = trio.Event()
                continue
            code, start, length = await allocate()
            if code == ErrorCode.NONE:
                try:
                    self.blocks.add_block(start, length)
                except ValueError as exc:
                    log.error("refusing a producer id block from the controller: %s", exc)
                else:
                    log.debug("producer id block [%d, %d) from the controller", start, start + length)
                    self._has_block.set()
                    backoff_s = RETRY_BACKOFF_S
                    continue
            else:  # once per spell of failures: the controller may be away for a while
                (log.info if backoff_s == RETRY_BACKOFF_S else log.debug)(
                    "AllocateProducerIds: error %d; retrying", code)
            await trio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, RETRY_BACKOFF_MAX_S)


def legacy_producer_id_floor(data_dir: Path) -> int:
    """The next block start a single broker wrote to ``producer-id-block``
    before the controller allocated ids (0: no file)."""
    path = data_dir / LEGACY_FILE_NAME
    entries = read_checkpoint(path, 1)
    try:
        return int(entries[0][0]) if entries else 0
    except ValueError:
        raise CorruptCheckpointError(f"{path}: not a producer id") from None
