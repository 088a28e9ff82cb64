"""Append, read, roll, retention, truncation and reopen of a partition log."""

from __future__ import annotations

import os

import pytest

from riverlog.broker.storage.errors import CorruptRecordError, OffsetOutOfRangeError, RecordTooLargeError, StorageError
from riverlog.broker.storage.log import Log
from riverlog.broker.storage.log_config import LogConfig
from riverlog.client.records import iter_batches

from .conftest import BASE_TS, make_batch, read_all


def test_append_assigns_consecutive_offsets_and_stamps_epoch(open_log):
    log = open_log()
    a = log.append_as_leader(make_batch(3), leader_epoch=5)
    b = log.append_as_leader(make_batch(2), leader_epoch=5)
    assert (a.first_offset, a.last_offset, b.first_offset, b.last_offset) == (0, 2, 3, 4)
    assert log.log_end_offset == 5
    batches = list(iter_batches(log.read(0, 1 << 20).slice.read()))
    assert [(x.base_offset, x.partition_leader_epoch) for x in batches] == [(0, 5), (3, 5)]
    assert all(x.is_valid_crc() for x in batches)
    assert [r.offset for r in read_all(log)] == [0, 1, 2, 3, 4]
    assert log.epoch_cache.entries() == [(5, 0)]


def test_appended_bytes_are_stored_unchanged_apart_from_offset_and_epoch(open_log):
    log = open_log()
    raw = make_batch(4)
    log.append_as_leader(make_batch(1), leader_epoch=0)
    log.append_as_leader(raw, leader_epoch=7)
    stored = log.read(1, 1 << 20).slice.read()
    assert stored[12:16] == (7).to_bytes(4, "big")
    assert stored[:8] == (1).to_bytes(8, "big")
    assert stored[16:] == raw[16:]  # magic, CRC, attributes and records untouched


def test_corrupt_batch_is_refused_and_nothing_is_appended(open_log):
    log = open_log()
    good = make_batch(2)
    bad = bytearray(make_batch(2))
    bad[-1] ^= 0x01
    with pytest.raises(CorruptRecordError):
        log.append_as_leader(good + bytes(bad), leader_epoch=0)
    with pytest.raises(CorruptRecordError):
        log.append_as_leader(good[:-3], leader_epoch=0)
    bad_magic = bytearray(good)
    bad_magic[16] = 1
    with pytest.raises(CorruptRecordError):
        log.append_as_leader(bytes(bad_magic), leader_epoch=0)
    assert log.log_end_offset == 0 and log.active.size == 0


def test_batch_over_max_message_bytes_is_refused(open_log, small_config):
    import dataclasses

    log = open_log(dataclasses.replace(small_config, max_message_bytes=100))
    with pytest.raises(RecordTooLargeError):
        log.append_as_leader(make_batch(5), leader_epoch=0)
    assert log.log_end_offset == 0


def test_segments_roll_on_segment_bytes_and_reads_span_them(open_log):
    log = open_log()
    for i in range(40):
        log.append_as_leader(make_batch(2, start=2 * i), leader_epoch=0)
    assert len(log.segments) > 3
    for seg in log.segments:
        assert seg.size <= 1024
        assert seg.log_path.name == f"{seg.base_offset:020d}.log"
    records = read_all(log)
    assert [r.offset for r in records] == list(range(80))
    assert [r.key for r in records] == [f"k{i}".encode() for i in range(80)]


def test_segment_rolls_when_records_span_segment_ms(open_log, small_config):
    import dataclasses

    log = open_log(dataclasses.replace(small_config, segment_ms=1000, segment_bytes=1 << 20))
    log.append_as_leader(make_batch(1, ts=BASE_TS), leader_epoch=0)
    log.append_as_leader(make_batch(1, ts=BASE_TS + 500), leader_epoch=0)
    assert len(log.segments) == 1
    log.append_as_leader(make_batch(1, ts=BASE_TS + 1500), leader_epoch=0)
    assert [s.base_offset for s in log.segments] == [0, 2]


def test_read_respects_max_offset_and_max_bytes(open_log):
    log = open_log(LogConfig(segment_bytes=1 << 20, index_interval_bytes=100))
    for i in range(10):
        log.append_as_leader(make_batch(2, start=2 * i), leader_epoch=0)
    assert [r.offset for r in read_all(log, max_offset=6)] == [0, 1, 2, 3, 4, 5]
    assert log.read(6, 1 << 20, max_offset=6).slice is None
    # A read starting mid-batch starts at that batch.
    first = next(iter_batches(log.read(5, 1 << 20).slice.read()))
    assert first.base_offset == 4
    # max_bytes smaller than one batch still returns the whole first batch.
    one = log.read(0, 1).slice
    assert one.length == len(make_batch(2))
    # Without min_one_batch a too-small max_bytes returns nothing whole.
    assert list(iter_batches(log.read(0, 10, min_one_batch=False).slice.read())) == []


def test_read_outside_the_log_is_offset_out_of_range(open_log):
    log = open_log()
    log.append_as_leader(make_batch(3), leader_epoch=0)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(4, 100)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(-1, 100)
    assert log.read(3, 100).slice is None  # the log end itself is a valid, empty read


def test_read_by_timestamp_finds_first_record_at_or_after(open_log):
    log = open_log()
    for i in range(30):
        log.append_as_leader(make_batch(3, start=3 * i, ts=BASE_TS + 10 * i), leader_epoch=0)
    assert log.find_offset_by_timestamp(BASE_TS) == (BASE_TS, 0)
    assert log.find_offset_by_timestamp(BASE_TS + 101) == (BASE_TS + 101, 31)
    assert log.find_offset_by_timestamp(BASE_TS + 103) == (BASE_TS + 110, 33)
    assert log.find_offset_by_timestamp(BASE_TS + 10_000) is None


def test_reopen_after_clean_close_keeps_everything(tmp_path, small_config):
    log = Log(tmp_path / "t-0", small_config)
    for i in range(20):
        log.append_as_leader(make_batch(2, start=2 * i), leader_epoch=3)
    segments = [s.base_offset for s in log.segments]
    log.close()
    again = Log(tmp_path / "t-0", small_config, recovery_point=40, clean_shutdown=True)
    assert [s.base_offset for s in again.segments] == segments
    assert again.log_end_offset == 40
    assert [r.offset for r in read_all(again)] == list(range(40))
    info = again.append_as_leader(make_batch(1), leader_epoch=4)
    assert info.first_offset == 40
    assert again.epoch_cache.entries() == [(3, 0), (4, 40)]


def test_retention_by_bytes_deletes_oldest_whole_segments(open_log, small_config):
    import dataclasses

    log = open_log(dataclasses.replace(small_config, retention_bytes=2048))
    for i in range(40):
        log.append_as_leader(make_batch(2, start=2 * i), leader_epoch=0)
    before = log.size_bytes
    deleted = log.delete_old_segments(now=BASE_TS)
    assert deleted > 0
    # Kafka's rule: whole segments go while the log stays at or above retention.bytes.
    assert log.size_bytes - log.segments[0].size < 2048 <= log.size_bytes < before
    assert log.log_start_offset == log.segments[0].base_offset > 0
    assert [r.offset for r in read_all(log)] == list(range(log.log_start_offset, 80))
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0, 100)


def test_retention_by_time_deletes_expired_segments_and_keeps_an_active_one(open_log, small_config):
    import dataclasses

    log = open_log(dataclasses.replace(small_config, retention_ms=60_000))
    for i in range(20):
        log.append_as_leader(make_batch(2, start=2 * i, ts=BASE_TS + i * 1000), leader_epoch=0)
    # At BASE_TS + 70 s the records older than BASE_TS + 10 s are expired.
    log.delete_old_segments(now=BASE_TS + 70_000)
    assert all(s.largest_timestamp > BASE_TS + 10_000 - 2000 for s in log.segments if s.size)
    assert log.log_start_offset > 0
    # Far in the future everything is expired: the log is empty but keeps its end offset.
    log.delete_old_segments(now=BASE_TS + 10**9)
    assert log.log_end_offset == 40 and log.log_start_offset == 40
    assert len(log.segments) == 1 and log.active.size == 0
    assert log.append_as_leader(make_batch(1), leader_epoch=0).first_offset == 40


def test_retention_never_deletes_above_the_high_watermark(open_log, small_config):
    import dataclasses

    log = open_log(dataclasses.replace(small_config, retention_ms=1))
    for i in range(20):
        log.append_as_leader(make_batch(2, start=2 * i), leader_epoch=0)
    log.delete_old_segments(now=BASE_TS + 10**9, high_watermark=0)
    assert log.log_start_offset == 0 and read_all(log)[0].offset == 0


def test_delete_records_moves_log_start_inside_a_segment(open_log):
    log = open_log()
    for i in range(20):
        log.append_as_leader(make_batch(2, start=2 * i), leader_epoch=0)
    assert log.delete_records(7) == 7
    assert log.log_start_offset == 7
    assert [r.offset for r in read_all(log)][0] == 7
    with pytest.raises(OffsetOutOfRangeError):
        log.read(6, 100)
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records(41)
    log.delete_records(39)
    assert log.segments[0].base_offset <= 39 < log.log_end_offset


def test_truncate_to_removes_batches_at_and_after_the_offset(open_log):
    log = open_log()
    for i in range(20):
        log.append_as_leader(make_batch(2, start=2 * i), leader_epoch=i // 5)
    assert log.truncate_to(25)
    # The batch [24, 25] straddles the target and goes whole, as in Kafka.
    assert log.log_end_offset == 24
    assert [r.offset for r in read_all(log)] == list(range(24))
    assert log.epoch_cache.entries() == [(0, 0), (1, 10), (2, 20)]
    assert log.append_as_leader(make_batch(1), leader_epoch=9).first_offset == 24
    assert not log.truncate_to(100)


def test_truncate_fully_and_start_at(open_log):
    log = open_log()
    for i in range(10):
        log.append_as_leader(make_batch(2), leader_epoch=1)
    log.truncate_fully_and_start_at(500)
    assert (log.log_start_offset, log.log_end_offset) == (500, 500)
    assert log.epoch_cache.entries() == []
    assert log.append_as_leader(make_batch(1), leader_epoch=2).first_offset == 500
    assert [r.offset for r in read_all(log)] == [500]


def test_follower_append_keeps_leader_offsets_and_epochs(open_log, tmp_path, small_config):
    leader = open_log()
    for i in range(6):
        leader.append_as_leader(make_batch(2, start=2 * i), leader_epoch=1 + i // 3)
    data = leader.read(0, 1 << 20).slice.read()
    follower = Log(tmp_path / "orders-1", small_config)
    follower.append_as_follower(data)
    assert follower.log_end_offset == 12
    assert follower.epoch_cache.entries() == [(1, 0), (2, 6)]
    from riverlog.broker.storage.errors import InvalidRecordError

    with pytest.raises(InvalidRecordError):
        follower.append_as_follower(data)  # offsets below the log end


def test_log_append_time_topics_get_broker_timestamps(open_log, small_config):
    import dataclasses

    log = open_log(dataclasses.replace(small_config, message_timestamp_type="LogAppendTime"))
    info = log.append_as_leader(make_batch(2), leader_epoch=0, now=BASE_TS + 99)
    assert info.log_append_time_ms == BASE_TS + 99
    batch = next(iter_batches(log.read(0, 1000).slice.read()))
    assert batch.is_valid_crc() and batch.max_timestamp == BASE_TS + 99
    assert [r.timestamp for r in batch.records()] == [BASE_TS + 99] * 2


def test_flush_messages_one_fsyncs_every_batch(open_log, small_config, monkeypatch):
    import dataclasses

    synced = []  # the files fsynced, by inode: a segment holds no descriptor to compare with
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_ino), real(fd)))
    log = open_log(dataclasses.replace(small_config, flush_messages=1))
    log.append_as_leader(make_batch(1), leader_epoch=0)
    assert os.stat(log.active.log_path).st_ino in synced and log.recovery_point == 1
    synced.clear()
    default = Log(log.dir.with_name("orders-9"), small_config)
    default.append_as_leader(make_batch(1), leader_epoch=0)
    assert os.stat(default.active.log_path).st_ino not in synced and default.recovery_point == 0


def test_flush_ms_flushes_when_due(open_log, small_config):
    import dataclasses

    log = open_log(dataclasses.replace(small_config, flush_ms=1000))
    log.append_as_leader(make_batch(1), leader_epoch=0)
    assert not log.flush_if_due(log._last_flush_ms + 10)
    assert log.flush_if_due(log._last_flush_ms + 1000)
    assert log.recovery_point == 1


def test_a_full_disk_fails_the_append_and_leaves_nothing_behind(open_log, monkeypatch):
    import errno

    log = open_log()
    log.append_as_leader(make_batch(2), leader_epoch=0)
    size = log.active.size
    real = os.pwrite
    calls = []

    def short_then_full(fd, pieces, pos):
        calls.append(pos)
        if len(calls) == 1:  # the first write goes out in part, then the disk is full
            return real(fd, bytes(pieces[0][:10]), pos)
        raise OSError(errno.ENOSPC, "No space left on device")

    def full(fd, data, pos):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwritev", short_then_full)
    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(StorageError, match="disk full"):
        log.append_as_leader(make_batch(3), leader_epoch=0)
    monkeypatch.undo()
    assert log.active.size == size == os.path.getsize(log.active.log_path)
    assert log.log_end_offset == 2
    assert log.append_as_leader(make_batch(1), leader_epoch=0).first_offset == 2
    assert [r.offset for r in read_all(log)] == [0, 1, 2]


def test_deleted_segments_keep_their_fd_until_the_delay_passes(open_log, small_config):
    import dataclasses

    log = open_log(dataclasses.replace(small_config, retention_bytes=0, file_delete_delay_ms=5000))
    for i in range(10):
        log.append_as_leader(make_batch(2, start=2 * i), leader_epoch=0)
    in_flight = log.read(0, 1 << 20).slice
    log.delete_old_segments(now=BASE_TS)
    assert in_flight.read()  # still readable: the file is only renamed
    assert any(p.name.endswith(".deleted") for p in log.dir.iterdir())
    assert log.delete_expired_files(BASE_TS + 4999) == 0
    assert log.delete_expired_files(BASE_TS + 5000) > 0
    assert not any(p.name.endswith(".deleted") for p in log.dir.iterdir())
