"""Edge cases found in review: each test names the rule it keeps."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from crc32c import crc32c

from riverlog.broker.storage.cleaner import clean_log
from riverlog.broker.storage.errors import InvalidRecordError
from riverlog.broker.storage.leader_epoch_cache import FILE_NAME
from riverlog.broker.storage.log import Log
from riverlog.broker.storage.log_config import LogConfig
from riverlog.broker.storage.log_manager import LogManager
from riverlog.client.records import build_batch

from .conftest import BASE_TS, make_batch, read_all

SMALL = LogConfig(segment_bytes=2048, index_interval_bytes=64, retention_ms=-1)


def _batch_at(base_offset: int, last_offset_delta: int = 0, epoch: int = 0) -> bytes:
    return build_batch(
        [(b"k", b"v", BASE_TS, ())],
        base_offset=base_offset,
        partition_leader_epoch=epoch,
        offset_deltas=[0],
        last_offset_delta=last_offset_delta,
    )


def test_an_append_whose_offsets_fit_no_segment_is_refused_whole(tmp_path):
    log = Log(tmp_path / "t-0", SMALL)
    with pytest.raises(InvalidRecordError):
        log.append_as_follower(_batch_at(0) + _batch_at(2**33))
    huge = [_batch_at(0, last_offset_delta=2**31 - 1) for _ in range(3)]
    with pytest.raises(InvalidRecordError):
        log.append_as_leader(b"".join(huge), leader_epoch=0)
    assert log.log_end_offset == 0 and log.active.size == 0
    assert log.append_as_leader(make_batch(1), leader_epoch=0).first_offset == 0


def test_an_append_never_runs_out_of_index_room_halfway(tmp_path):
    config = LogConfig(segment_index_bytes=24, index_interval_bytes=0, retention_ms=-1)
    log = Log(tmp_path / "t-0", config)
    for _ in range(4):
        log.append_as_leader(b"".join(make_batch(1) for _ in range(5)), leader_epoch=0)
    assert log.log_end_offset == 20
    assert [r.offset for r in read_all(log)] == list(range(20))
    assert len({s.base_offset for s in log.segments}) == len(log.segments)


def test_a_new_epoch_may_start_where_the_log_start_moved_to(tmp_path):
    log = Log(tmp_path / "t-0", SMALL)
    log.append_as_leader(make_batch(3), leader_epoch=1)
    log.delete_records(3)
    info = log.append_as_leader(make_batch(1), leader_epoch=2)
    assert info.first_offset == 3
    assert log.epoch_cache.entries() == [(2, 3)]


def test_truncation_keeps_the_segment_max_timestamp_exact(tmp_path):
    log = Log(tmp_path / "t-0", LogConfig(index_interval_bytes=10_000, retention_ms=-1))
    for i in range(10):
        log.append_as_leader(make_batch(1, ts=BASE_TS + 1000 * i), leader_epoch=0)
    log.truncate_to(6)
    assert log.active.max_timestamp == BASE_TS + 5000
    assert log.find_offset_by_timestamp(BASE_TS + 4500) == (BASE_TS + 5000, 5)


def test_a_corrupt_epoch_checkpoint_is_rebuilt_from_batch_headers(tmp_path):
    log = Log(tmp_path / "t-0", SMALL)
    for epoch in (1, 1, 4, 7):
        log.append_as_leader(make_batch(2), leader_epoch=epoch)
    log.close()
    (tmp_path / "t-0" / FILE_NAME).write_text("0\n9\nnot an entry\n")
    again = Log(tmp_path / "t-0", SMALL, recovery_point=8, clean_shutdown=True)
    assert again.epoch_cache.entries() == [(1, 0), (4, 4), (7, 6)]
    assert again.epoch_cache.end_offset_for(4, again.log_end_offset) == (4, 6)


def test_recovery_refuses_a_base_offset_outside_the_segment(tmp_path):
    log = Log(tmp_path / "t-0", SMALL)
    for _ in range(4):
        log.append_as_leader(make_batch(1), leader_epoch=0)
    last = list(log.active.walk(0))[-1].position
    log.close()
    path = log.active.log_path
    data = bytearray(path.read_bytes())
    data[last + 1] ^= 0x01  # baseOffset += 2**48: outside Kafka's CRC, outside the segment
    path.write_bytes(bytes(data))
    again = Log(tmp_path / "t-0", SMALL, recovery_point=0)
    assert again.log_end_offset == 3
    assert [r.offset for r in read_all(again)] == [0, 1, 2]


COMPACT = LogConfig(segment_bytes=300, index_interval_bytes=64, cleanup_policy=("compact",), retention_ms=-1)


def _fill_compacted(log: Log, n: int = 20) -> None:
    for i in range(n):
        log.append_as_leader(build_batch([(b"k", b"v%d" % i + b"." * 40, BASE_TS + i, ())]), leader_epoch=0)


def test_compaction_leaves_records_above_the_high_watermark_alone(tmp_path):
    log = Log(tmp_path / "s-0", COMPACT)
    _fill_compacted(log)
    assert clean_log(log, now=BASE_TS + 10**6, high_watermark=0).segments_cleaned == 0
    assert len(read_all(log)) == 20
    assert clean_log(log, now=BASE_TS + 10**6).segments_cleaned > 0


def test_compaction_ignores_files_a_failed_pass_left(tmp_path):
    log = Log(tmp_path / "s-0", COMPACT)
    _fill_compacted(log)
    first = log.segments[0].base_offset
    for ext in ("log", "index", "timeindex"):
        (tmp_path / "s-0" / f"{first:020d}.{ext}.cleaned").write_bytes(b"\x00" * 100)
    clean_log(log, now=BASE_TS + 10**6)
    offsets = [r.offset for r in read_all(log)]
    assert offsets == sorted(set(offsets)) and offsets[-1] == 19


def _undecodable_batch() -> bytes:
    """A batch whose CRC is right but whose records area is garbage."""
    good = bytearray(build_batch([(b"k", b"v" * 30, BASE_TS, ())]))
    good[61:] = b"\xff" * (len(good) - 61)
    struct.pack_into(">I", good, 17, crc32c(bytes(good[21:])))
    return bytes(good)


def test_a_log_that_fails_compaction_is_marked_and_the_others_still_compact(tmp_path):
    manager = LogManager([tmp_path], COMPACT)
    manager.startup()
    broken = manager.get_or_create_log("a-broken", 0)
    # A leader now refuses such a batch; a log written before it did not (or
    # damaged on disk) may still hold one: put it in as a follower would.
    broken.append_as_follower(_undecodable_batch())
    _fill_compacted(broken)
    fine = manager.get_or_create_log("b-fine", 0)
    _fill_compacted(fine)
    assert manager.compact(now=BASE_TS + 10**6) > 0
    assert ("a-broken", 0) in manager.uncleanable
    assert len(read_all(fine)) < 20
    assert not list((tmp_path / "a-broken-0").glob("*.cleaned"))
    manager.shutdown()


def test_index_swap_files_left_by_a_crash_follow_their_live_log(tmp_path):
    log = Log(tmp_path / "s-0", COMPACT)
    _fill_compacted(log)
    clean_log(log, now=BASE_TS + 10**6)
    want = [(r.offset, r.value) for r in read_all(log)]
    log.close()
    # Crash inside the last rename of a swap: the .log is live, its indexes still .swap.
    first = sorted((tmp_path / "s-0").glob("*.index"))[0]
    first.rename(first.with_name(first.name + ".swap"))
    again = Log(tmp_path / "s-0", COMPACT, recovery_point=10**9, clean_shutdown=True)
    assert not list((tmp_path / "s-0").glob("*.swap"))
    assert first.exists()
    assert [(r.offset, r.value) for r in read_all(again)] == want
