"""The storage invariants, each broken on purpose (a hand-made bad call or a
private hook): InvariantError, and nothing written. Checked with a named
error, not assert, so they hold under python -O too."""

from __future__ import annotations

import struct

import pytest

from riverlog.broker.storage.batches import assign_offsets, validate_batches
from riverlog.broker.storage.errors import InvariantError
from riverlog.broker.storage.log_config import LogConfig
from riverlog.broker.storage.log_segment import MAX_RELATIVE_OFFSET, LogSegment
from riverlog.broker.storage.offset_index import OffsetIndex
from riverlog.broker.storage.time_index import TimeIndex

from .conftest import BASE_TS, make_batch, read_all


def _stamped(first_offset: int, count: int = 2) -> tuple[list, list]:
    """A producer batch with offsets from ``first_offset`` (pieces, infos)."""
    batch = make_batch(count)
    return assign_offsets(batch, validate_batches(batch, 2**20), first_offset, 0, None)


def _filled(open_log, **config):
    lg = open_log(LogConfig(**{"retention_ms": -1, **config}))
    for i in range(3):
        lg.append_as_leader(make_batch(2, start=2 * i), leader_epoch=0)
    return lg


def test_a_leader_append_starts_exactly_at_the_log_end(open_log):
    lg = _filled(open_log)
    size, records = lg.size_bytes, read_all(lg)
    for first in (lg.log_end_offset + 1, lg.log_end_offset - 1):
        pieces, infos = _stamped(first)
        with pytest.raises(InvariantError, match="where offset 6 comes next"):
            lg._append(pieces, infos, -1, lg.log_end_offset, contiguous=True)
    assert lg.size_bytes == size and read_all(lg) == records


def test_a_leader_append_s_batches_are_back_to_back(open_log):
    lg = _filled(open_log)
    size = lg.size_bytes
    one, first_infos = _stamped(lg.log_end_offset)
    two, second_infos = _stamped(lg.log_end_offset + 3)  # a gap of one offset
    length = first_infos[0].length
    second_infos = [info._replace(position=info.position + length) for info in second_infos]
    with pytest.raises(InvariantError):
        lg._append(one + two, first_infos + second_infos, -1, lg.log_end_offset, contiguous=True)
    assert lg.size_bytes == size


def test_no_append_goes_back_below_the_log_end(open_log):
    """A follower's offsets may jump forward (compaction's gaps), never back."""
    lg = _filled(open_log)
    pieces, infos = _stamped(lg.log_end_offset - 1)
    with pytest.raises(InvariantError):
        lg._append(pieces, infos, -1, lg.log_end_offset)
    pieces, infos = _stamped(lg.log_end_offset + 10)
    lg._append(pieces, infos, -1, lg.log_end_offset)  # forward is fine
    assert lg.log_end_offset == 18


def test_the_active_segment_is_never_appended_past_segment_bytes(open_log):
    lg = _filled(open_log, segment_bytes=300)
    assert len(lg.segments) > 1  # it rolled by the rule
    active = lg.active
    active.should_roll = lambda *args: False  # the hook: a broken roll decision
    with pytest.raises(InvariantError, match="segment.bytes"):
        for i in range(10):
            lg.append_as_leader(make_batch(2, start=10 + i), leader_epoch=0)
    assert active is lg.active and active.size <= 300
    assert active.log_path.stat().st_size == active.size
    assert [r.offset for r in read_all(lg)] == list(range(lg.log_end_offset))


def test_a_segment_takes_no_offset_below_its_next_one_nor_past_its_range(tmp_path):
    seg = LogSegment(tmp_path, 100, LogConfig())
    seg.make_active()
    pieces, infos = _stamped(100)
    seg.append(pieces, infos, sum(i.length for i in infos))
    size = seg.size
    for first in (101, 100 + MAX_RELATIVE_OFFSET):  # overlapping; beyond an int32 of the base
        pieces, infos = _stamped(first)
        with pytest.raises(InvariantError):
            seg.append(pieces, infos, sum(i.length for i in infos))
    assert seg.size == size == (tmp_path / "00000000000000000100.log").stat().st_size
    seg.close()


def test_a_segment_s_index_entries_point_into_what_was_appended(tmp_path):
    seg = LogSegment(tmp_path, 0, LogConfig(index_interval_bytes=0))
    seg.make_active()
    pieces, infos = _stamped(0)
    seg.append(pieces, infos, sum(i.length for i in infos))
    pieces, infos = _stamped(2)
    total = sum(i.length for i in infos)
    with pytest.raises(InvariantError):
        seg.append(pieces, [infos[0]._replace(position=total)], total)  # a position past the append
    seg.close()


def test_offset_index_entries_strictly_increase(tmp_path):
    index = OffsetIndex(tmp_path / "0.index", 0, 1024)
    index.append(10, 100)
    for offset, position in ((10, 200), (9, 200), (11, 100), (11, 50)):
        with pytest.raises(InvariantError):
            index.append(offset, position)
    assert index.entries == 1
    index.append(11, 101)
    assert index.entries == 2
    index.close()


def test_time_index_timestamps_increase_and_offsets_never_go_back(tmp_path):
    index = TimeIndex(tmp_path / "0.timeindex", 0, 1200)
    index.append(BASE_TS, 10)
    for ts, offset in ((BASE_TS, 11), (BASE_TS - 1, 11), (BASE_TS + 1, 9)):
        with pytest.raises(InvariantError):
            index.append(ts, offset)
    index.maybe_append(BASE_TS - 1, 11)  # not newer: skipped by the rule, not an error
    assert index.entries == 1
    index.append(BASE_TS + 1, 10)
    assert index.entries == 2
    index.close()


def test_a_read_never_follows_an_index_entry_past_the_segment(tmp_path):
    """Such an entry read as nothing there: the records after it silently skipped."""
    seg = LogSegment(tmp_path, 0, LogConfig())
    seg.make_active()
    pieces, infos = _stamped(0)
    seg.append(pieces, infos, sum(i.length for i in infos))
    assert seg.read(1, 1 << 20) is not None
    # The hook: an entry written past the checks, as a bug might leave one.
    seg.offset_index._write_entry(struct.Struct(">II"), 1, seg.size + 4096)
    with pytest.raises(InvariantError, match="past the end"):
        seg.read(1, 1 << 20)
    seg.close()
