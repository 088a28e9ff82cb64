"""Idempotent produce rules, pure: duplicates, order, epochs, wrap, the 5-batch window, rebuild."""

from __future__ import annotations

from riverlog.broker.producer_state import ProducerStateManager, last_sequence, next_sequence
from riverlog.client.protocol import ErrorCode

NONE = ErrorCode.NONE
OOO = ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
MAX = 2**31 - 1


def _appended(state: ProducerStateManager, pid: int, epoch: int, base_seq: int, count: int, offset: int) -> None:
    last = last_sequence(base_seq, count - 1)
    assert state.check(pid, epoch, base_seq, last) == (NONE, None)
    state.record(pid, epoch, base_seq, last, offset, offset + count - 1)


def test_an_unknown_producer_is_accepted_at_any_sequence():
    state = ProducerStateManager()
    assert state.check(7, 0, 0, 2) == (NONE, None)
    assert state.check(7, 0, 42, 44) == (NONE, None)  # KIP-360: no UNKNOWN_PRODUCER_ID


def test_in_order_batches_are_accepted_and_a_gap_is_out_of_order():
    state = ProducerStateManager()
    _appended(state, 1, 0, 0, 3, 0)
    _appended(state, 1, 0, 3, 2, 3)
    assert state.check(1, 0, 6, 6) == (OOO, None)  # 5 is missing
    assert state.check(1, 0, 4, 5) == (OOO, None)  # overlaps, not a retained batch
    assert state.check(1, 0, 5, 5) == (NONE, None)


def test_a_retry_of_a_recent_batch_is_a_duplicate_with_its_offset():
    state = ProducerStateManager()
    _appended(state, 1, 0, 0, 3, 10)
    _appended(state, 1, 0, 3, 2, 13)
    assert state.check(1, 0, 0, 2) == (NONE, 10)
    assert state.check(1, 0, 3, 4) == (NONE, 13)
    assert state.check(1, 0, 0, 1) == (OOO, None)  # same start, other span: not that batch


def test_only_the_last_five_batches_are_recognised_as_duplicates():
    state = ProducerStateManager()
    for i in range(6):
        _appended(state, 1, 0, i, 1, 100 + i)
    assert state.check(1, 0, 0, 0) == (OOO, None)  # fell out of the window
    for i in range(1, 6):
        assert state.check(1, 0, i, i) == (NONE, 100 + i)


def test_producers_are_tracked_separately():
    state = ProducerStateManager()
    _appended(state, 1, 0, 0, 1, 0)
    _appended(state, 2, 0, 0, 1, 1)
    assert state.check(1, 0, 0, 0) == (NONE, 0)
    assert state.check(2, 0, 0, 0) == (NONE, 1)
    assert state.check(2, 0, 1, 1) == (NONE, None)


def test_epochs_older_is_fenced_newer_restarts_at_zero():
    state = ProducerStateManager()
    _appended(state, 1, 3, 0, 2, 0)
    assert state.check(1, 2, 2, 2) == (ErrorCode.INVALID_PRODUCER_EPOCH, None)
    assert state.check(1, 2, 0, 1) == (ErrorCode.INVALID_PRODUCER_EPOCH, None)  # no duplicate across epochs
    assert state.check(1, 4, 2, 2) == (OOO, None)
    _appended(state, 1, 4, 0, 1, 2)
    assert state.check(1, 4, 0, 0) == (NONE, 2)
    assert state.check(1, 3, 0, 1) == (ErrorCode.INVALID_PRODUCER_EPOCH, None)  # the old epoch's batches are gone


def test_sequences_wrap_from_int32_max_to_zero():
    assert next_sequence(MAX) == 0
    assert last_sequence(MAX - 1, 3) == 1
    state = ProducerStateManager()
    state.record(1, 0, MAX - 2, MAX, 0, 2)
    assert state.check(1, 0, 0, 4) == (NONE, None)
    assert state.check(1, 0, MAX, 1) == (OOO, None)
    _appended(state, 1, 0, 0, 3, 3)  # base 0 after the wrap
    assert state.entry(1).last_seq == 2


def test_rebuild_from_batch_headers_restores_the_state():
    live = ProducerStateManager()
    headers = []
    offset = 0
    for pid, epoch, seq, count in [(1, 0, 0, 3), (-1, -1, -1, 2), (2, 0, 0, 1), (1, 0, 3, 2), (1, 1, 0, 1)]:
        headers.append((offset, offset + count - 1, pid, epoch, seq))
        if pid >= 0:
            live.record(pid, epoch, seq, last_sequence(seq, count - 1), offset, offset + count - 1)
        offset += count
    rebuilt = ProducerStateManager()
    rebuilt.check(1, 0, 0, 0)
    rebuilt.rebuild_from(headers)
    assert rebuilt.end_offset == offset == 9
    assert rebuilt.entry(1) == live.entry(1) and rebuilt.entry(2) == live.entry(2)
    assert len(rebuilt) == 2
    assert rebuilt.check(1, 1, 0, 0) == (NONE, 8)  # a retry of the last batch
    assert rebuilt.check(1, 0, 5, 5) == (ErrorCode.INVALID_PRODUCER_EPOCH, None)
    assert rebuilt.check(2, 0, 1, 1) == (NONE, None)


def test_truncation_drops_state_above_the_point():
    state = ProducerStateManager()
    _appended(state, 1, 0, 0, 2, 0)
    _appended(state, 1, 0, 2, 2, 2)
    _appended(state, 2, 0, 0, 1, 4)
    state.truncate_to(2)
    assert state.end_offset == 2
    assert state.entry(2) is None
    assert state.check(1, 0, 2, 3) == (NONE, None)  # the truncated batch may be written again
    assert state.check(1, 0, 0, 1) == (NONE, 0)


def test_the_least_recent_producer_is_forgotten_past_the_bound():
    state = ProducerStateManager(max_producers=3)
    for pid in (1, 2, 3):
        state.record(pid, 0, 0, 0, pid, pid)
    state.record(1, 0, 1, 1, 10, 10)  # producer 1 writes again: now the most recent
    state.record(4, 0, 0, 0, 11, 11)  # a fourth: producer 2, the least recent, goes
    assert len(state) == 3
    assert state.entry(2) is None and state.entry(1) is not None
    assert state.check(2, 0, 7, 7) == (ErrorCode.NONE, None)  # unknown again: any sequence (KIP-360)
