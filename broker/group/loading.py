"""Replaying one ``__consumer_offsets`` partition into a coordinator.

A broker loads a partition when it becomes its leader (at start-up, or when
leadership moves here). The log is read chunk by chunk so the Trio driver
can let other requests run between chunks; damaged batches and records are
logged and skipped, so one bad record cannot keep groups from loading.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from riverlog.client.records import CorruptRecordError, iter_batches

from . import record_codec
from .coordinator import GroupCoordinator
from .record_codec import OFFSETS_TOPIC

if TYPE_CHECKING:
    from riverlog.broker.storage.log import Log

log = logging.getLogger(__name__)

READ_CHUNK_BYTES = 4 * 1024 * 1024


def replay_chunks(log_of: Callable[[], Log], index: int, into: GroupCoordinator, now_ms: int) -> Iterator[int]:
    """Replay the partition's log into `into`, yielding the number of records
    replayed after each chunk read (the caller may pause between chunks).

    ``log_of()`` is the partition's log now, asked again for every chunk: a
    pause is long enough for its log directory to be reloaded (a new Log of
    the same files, the old one closed) or to go offline (then it raises)."""
    offset = None
    while True:
        plog = log_of()
        offset = plog.log_start_offset if offset is None else max(offset, plog.log_start_offset)
        if offset >= plog.log_end_offset:
            break
        data = plog.read(offset, READ_CHUNK_BYTES).slice
        if data is None:
            break
        try:
            batches = list(iter_batches(data.read()))
        except CorruptRecordError as exc:
            batches = []
            log.error("%s-%d at offset %d: %s", OFFSETS_TOPIC, index, offset, exc)
        if not batches:
            log.error("%s-%d: stopped loading at offset %d of %d: no whole batch there",
                      OFFSETS_TOPIC, index, offset, plog.log_end_offset)  # fmt: skip
            break
        yield sum(replay_batch(into, batch, index, now_ms) for batch in batches)
        offset = batches[-1].next_offset


def replay_batch(into: GroupCoordinator, batch, index: int, now_ms: int) -> int:
    """Replay one batch's records; the number replayed."""
    if batch.is_control:
        return 0
    try:
        records = batch.records()
    except CorruptRecordError as exc:
        log.error("%s-%d: skipping the batch at offset %d: %s", OFFSETS_TOPIC, index, batch.base_offset, exc)
        return 0
    replayed = 0
    for record in records:
        try:
            into.replay(record_codec.decode(record.key or b"", record.value), now_ms)
            replayed += 1
        except Exception as exc:  # noqa: BLE001 - a FormatError, or a record the coordinator refuses
            log.error("%s-%d offset %d: skipping a record: %s", OFFSETS_TOPIC, index, record.offset, exc)
    return replayed
