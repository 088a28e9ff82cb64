"""Where a follower's log diverges from its leader's: the leader-epoch rules
of KIP-101 and KIP-279, pure.

Every batch carries the epoch of the leader that appended it, and every
replica keeps a leader-epoch cache: ``(epoch, start offset)`` pairs, epochs
and start offsets both increasing, the start offset being the first offset
written in that epoch. An epoch ends where the next one starts (the latest
one at the log end offset).

The rules:

- **The leader's answer** for epoch E (OffsetForLeaderEpoch, and Fetch's
  the ``diverging_epoch`` of Fetch v12+, added with KIP-595) is
  ``(E', end offset)``: for its latest epoch, its log end offset; otherwise
  the largest epoch E' <= E it has, ending where its next epoch starts; if E
  is older than every epoch it has, ``(E, start of its first epoch)`` (the
  rest was deleted); ``(-1, -1)`` when it cannot say (E = -1, or an empty
  cache).
- **The follower's step** with that answer: if it has epoch E' itself, its
  log agrees up to ``min(leader's end offset, its own end of E', its log
  end offset)``; truncate there, done. If it does not have E' (the leader
  never had the follower's epoch, and the follower never had the leader's),
  truncate to the end of the follower's largest epoch below E' and ask
  again with its new latest epoch: the KIP-279 loop for repeated leader
  changes, which KIP-101's single round got wrong. If every epoch the
  follower has is newer than E', none of its batches is on the leader:
  truncate to where its first epoch starts (or the leader's end offset, if
  lower).
- **Never to the high watermark alone**: a follower's high watermark can
  lag the leader's, so truncating to it can drop records the leader has
  acknowledged (KIP-101's first example). A leader that cannot answer
  (``(-1, -1)``) gets asked again later; the log is kept meanwhile.
- A follower with an empty epoch cache holds no batch (the cache is rebuilt
  from the log's batches), so it has nothing to truncate.

Each round truncates to the end of a strictly older follower epoch, so the
loop ends after at most as many rounds as the follower has epochs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from riverlog.client.protocol import ErrorCode

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


class EpochEntry(NamedTuple):
    """One line of a leader-epoch cache: the first offset written in ``epoch``."""

    epoch: int
    start_offset: int


class EpochEndOffset(NamedTuple):
    """A leader's answer: its largest epoch <= the one asked for, and where that epoch ends."""

    epoch: int
    end_offset: int


UNDEFINED = EpochEndOffset(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)


@dataclass(frozen=True)
class Truncation:
    """Truncate the log and its epoch cache to ``offset`` (nothing to do at
    the log end offset); ``done`` False: ask the leader again with the
    latest epoch left after truncating (KIP-279)."""

    offset: int
    done: bool


def latest_epoch(cache: Sequence[EpochEntry]) -> int:
    return cache[-1][0] if cache else UNDEFINED_EPOCH


def end_offset_for_epoch(cache: Sequence[EpochEntry], epoch: int, log_end_offset: int) -> EpochEndOffset:
    """The answer to "where does ``epoch`` end" from one replica's cache
    (Kafka's LeaderEpochFileCache.endOffsetFor); both sides use it."""
    if epoch == UNDEFINED_EPOCH or not cache:
        return UNDEFINED
    if epoch == cache[-1][0]:
        return EpochEndOffset(epoch, log_end_offset)
    later = next((i for i, (e, _) in enumerate(cache) if e > epoch), None)
    if later is None:  # newer than any epoch we have: nobody can ask this of a leader
        return UNDEFINED
    if later == 0:  # older than every epoch we still have: the log before it is gone
        return EpochEndOffset(epoch, cache[0][1])
    return EpochEndOffset(cache[later - 1][0], cache[later][1])


def truncate_cache(cache: Sequence[EpochEntry], offset: int) -> list[EpochEntry]:
    """The cache after truncating the log to ``offset``: epochs that started at or past it go."""
    return [EpochEntry(*entry) for entry in cache if entry[1] < offset]


def truncation_step(
    cache: Sequence[EpochEntry], log_end_offset: int, answer: EpochEndOffset
) -> Truncation | None:
    """One round of the follower's rule for the leader's ``answer`` to its
    latest epoch; None when the leader could not say (keep the log, ask again)."""
    if answer.epoch == UNDEFINED_EPOCH or answer.end_offset == UNDEFINED_EPOCH_OFFSET:
        return None
    own = end_offset_for_epoch(cache, answer.epoch, log_end_offset)
    if own == UNDEFINED:  # no batch of ours to doubt
        return Truncation(min(answer.end_offset, log_end_offset), done=True)
    if own.epoch != answer.epoch:
        return Truncation(min(own.end_offset, log_end_offset), done=False)
    # Ours too (or all our epochs are newer than the leader's answer, and our
    # "end" of it is where our first epoch starts: everything from there on
    # is of epochs the leader never had).
    return Truncation(min(own.end_offset, answer.end_offset, log_end_offset), done=True)


def diverging_epoch(
    cache: Sequence[EpochEntry],
    log_end_offset: int,
    log_start_offset: int,
    last_fetched_epoch: int,
    fetch_offset: int,
) -> tuple[ErrorCode, EpochEndOffset | None]:
    """The leader's check of a Fetch (v12+) that names the epoch of the
    follower's last batch: ``(NONE, None)`` to serve it, ``(NONE, answer)``
    when the follower's log diverges before ``fetch_offset`` (the follower
    truncates with ``truncation_step``), OFFSET_OUT_OF_RANGE when the leader
    cannot place it."""
    answer = end_offset_for_epoch(cache, last_fetched_epoch, log_end_offset)
    if answer == UNDEFINED or fetch_offset < log_start_offset:
        return ErrorCode.OFFSET_OUT_OF_RANGE, None
    if answer.epoch < last_fetched_epoch or answer.end_offset < fetch_offset:
        return ErrorCode.NONE, answer
    return ErrorCode.NONE, None


def find_truncation_offset(
    cache: Sequence[EpochEntry],
    log_end_offset: int,
    ask: Callable[[int], EpochEndOffset],
) -> int | None:
    """The whole loop, for callers that can ask the leader synchronously
    (a simulation; the fetcher runs ``truncation_step`` once per answer):
    the offset where this log stops agreeing with the leader's, or None when
    the leader could not say."""
    offset = log_end_offset
    cache = list(cache)
    while cache:
        step = truncation_step(cache, offset, ask(latest_epoch(cache)))
        if step is None:
            return None
        offset = step.offset
        cache = truncate_cache(cache, offset)
        if step.done:
            break
    return offset
