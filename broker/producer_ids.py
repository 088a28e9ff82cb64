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

Before the controller allocated them, a broker kept its next block in
``producer-id-block`` in its first data directory, each broker its own
counter. Ids below that value may live on in partitions' producer state, so
a controller that finds the file in its own data directory starts no block
below it (``legacy_producer_id_floor``); the file is left as it is (no
longer written) and costs nothing once the log has moved past it. A file
that does not hold a block start in [0, 2^63 - 1 - block size] stops the
node at start-up with one line naming it: ignoring it could hand out ids
that are still in use (the loss this floor exists to prevent), and a value
near 2^63 would make every allocation fail forever.

The floor is read only from the active controller's own data directory
(AllocateProducerIds has no field to carry another node's), so it covers a
single broker upgraded in place. A multi-broker cluster upgraded from the
per-broker counters must copy the ``producer-id-block`` file with the
largest value to the first data directory of every controller voter before
starting them (any voter may become the active controller).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from riverlog.broker.metadata.decisions import PRODUCER_ID_BLOCK_SIZE
from riverlog.broker.metadata.records import PRODUCER_ID_END
from riverlog.broker.storage.checkpoint import CorruptCheckpointError, read_checkpoint
from riverlog.client.protocol import ErrorCode

log = logging.getLogger(__name__)

LEGACY_FILE_NAME = "producer-id-block"
PREFETCH_RATIO = 0.9  # ask for the next block once this much of the current one is handed out
RETRY_BACKOFF_S = 0.1  # Kafka's retry.backoff.ms for a failed AllocateProducerIds
RETRY_BACKOFF_MAX_S = 1.0
WARN_EVERY_S = 10.0  # while the controller keeps refusing (as registration.py says so)


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
        if length <= 0 or start < self._seen_end or start + length > PRODUCER_ID_END:
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
        self._none_left_quiet_until = 0.0

    async def wait_first_block(self) -> None:
        await self._has_block.wait()

    def next_id(self) -> int:
        """A fresh producer id; NoProducerIdBlock (retriable) while there is none."""
        try:
            return self.blocks.next_id()
        except NoProducerIdBlock:
            if trio.current_time() >= self._none_left_quiet_until:
                log.warning("no producer id left to hand out until the controller's next block: InitProducerId "
                            "answers COORDINATOR_LOAD_IN_PROGRESS (retriable)")  # fmt: skip
                self._none_left_quiet_until = trio.current_time() + WARN_EVERY_S
            raise
        finally:
            if self.blocks.wants_block():
                self._wanted.set()

    async def run(self, allocate: Allocate) -> None:
        """Ask for a block whenever one is wanted (at once: the first block),
        retrying with backoff until the controller gives one. Nothing
        ``allocate`` raises stops this task (it would take the broker down):
        a fault is logged and retried like a refusal."""
        backoff_s = RETRY_BACKOFF_S
        quiet_until = 0.0
        while True:
            if not self.blocks.wants_block():
                await self._wanted.wait()
                self._wanted = trio.Event()
                continue
            try:
                code, start, length = await allocate()
            except Exception as exc:  # noqa: BLE001 - see the docstring
                code, start, length = None, -1, 0
                failure = f"failed: {exc!r}"
            else:
                failure = f"error {_error_name(code)}"
            if code == ErrorCode.NONE:
                try:
                    self.blocks.add_block(start, length)
                except ValueError as exc:
                    failure = f"refused the controller's block: {exc}"
                else:
                    log.debug("producer id block [%d, %d) from the controller", start, start + length)
                    self._has_block.set()
                    backoff_s, quiet_until = RETRY_BACKOFF_S, 0.0
                    continue
            if trio.current_time() >= quiet_until:  # the controller may be away for a while
                log.warning("AllocateProducerIds %s; retrying", failure, exc_info=code is None)
                quiet_until = trio.current_time() + WARN_EVERY_S
            else:
                log.debug("AllocateProducerIds %s; retrying", failure)
            await trio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, RETRY_BACKOFF_MAX_S)


def _error_name(code: int) -> str:
    """Kafka's name for a known code, the number for one this broker does not know."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


def legacy_producer_id_floor(data_dir: Path) -> int:
    """The next block start a broker wrote to ``producer-id-block`` before
    the controller allocated ids (0: no file); CorruptCheckpointError, with
    one line saying what to do, if the file holds no block start that fits."""
    path = data_dir / LEGACY_FILE_NAME
    highest = PRODUCER_ID_END - PRODUCER_ID_BLOCK_SIZE
    try:
        entries = read_checkpoint(path, 1)
        value = int(entries[0][0]) if entries else 0
        if not 0 <= value <= highest:
            raise ValueError(f"{value} is outside [0, {highest}]")
    except ValueError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise CorruptCheckpointError(
            f"{path}: not a producer id block start ({reason}); it is the floor for the producer ids this node "
            f"handed out before the controller allocated them: restore it, or delete it if no idempotent "
            f"producer used this node before the upgrade") from None
    return value
