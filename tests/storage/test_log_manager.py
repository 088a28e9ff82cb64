"""LogManager: data directories, checkpoints, clean shutdown and restart."""

from __future__ import annotations

import os

import pytest

from riverlog.broker.storage import log_segment
from riverlog.broker.storage.checkpoint import read_offsets
from riverlog.broker.storage.errors import StorageError
from riverlog.broker.storage.log_config import LogConfig
from riverlog.broker.storage.log_manager import CLEAN_SHUTDOWN_FILE, RECOVERY_POINT_CHECKPOINT, LogManager

from .conftest import make_batch, read_all

CONFIG = LogConfig(segment_bytes=2048, index_interval_bytes=128, retention_ms=-1)


def _fill(manager: LogManager) -> None:
    for p in range(3):
        log = manager.get_or_create_log("orders-eu", p)
        for i in range(15):
            log.append_as_leader(make_batch(2, start=2 * i), leader_epoch=0)


def test_partitions_spread_over_data_dirs_and_reload(tmp_path):
    dirs = [tmp_path / "d1", tmp_path / "d2"]
    manager = LogManager(dirs, CONFIG)
    manager.startup()
    _fill(manager)
    assert {manager._log_dir_of[("orders-eu", p)] for p in range(3)} == set(dirs)
    manager.shutdown()
    again = LogManager(dirs, CONFIG)
    again.startup()
    assert sorted((lg.topic, lg.partition) for lg in again.all_logs()) == [("orders-eu", p) for p in range(3)]
    assert all(lg.log_end_offset == 30 for lg in again.all_logs())
    again.shutdown()


def test_clean_shutdown_skips_rescanning_and_a_crash_does_not(tmp_path, monkeypatch):
    manager = LogManager([tmp_path], CONFIG)
    manager.startup()
    _fill(manager)
    manager.shutdown()
    assert (tmp_path / CLEAN_SHUTDOWN_FILE).exists()
    assert read_offsets(tmp_path / RECOVERY_POINT_CHECKPOINT) == {("orders-eu", p): 30 for p in range(3)}

    scans = []
    real = log_segment.LogSegment.recover
    monkeypatch.setattr(log_segment.LogSegment, "recover", lambda self, *a: (scans.append(self), real(self, *a))[1])
    clean = LogManager([tmp_path], CONFIG)
    clean.startup()
    assert scans == [] and clean.had_clean_shutdown[tmp_path]
    assert not (tmp_path / CLEAN_SHUTDOWN_FILE).exists()  # a crash from now on is seen as one
    clean.get_log("orders-eu", 0).append_as_leader(make_batch(1), leader_epoch=0)
    # Crash: no shutdown, so no marker; the lock goes with the process.
    for fd in clean._locks:
        import os

        os.close(fd)
    crashed = LogManager([tmp_path], CONFIG)
    crashed.startup()
    assert scans, "segments past the recovery point must be scanned after a crash"
    assert not crashed.had_clean_shutdown[tmp_path]
    assert [r.offset for r in read_all(crashed.get_log("orders-eu", 0))] == list(range(31))
    crashed.shutdown()


def test_a_data_dir_is_owned_by_one_broker(tmp_path):
    first = LogManager([tmp_path], CONFIG)
    first.startup()
    with pytest.raises(StorageError, match="in use"):
        LogManager([tmp_path], CONFIG).startup()
    first.shutdown()


def test_log_start_offsets_survive_restart(tmp_path):
    manager = LogManager([tmp_path], CONFIG)
    manager.startup()
    _fill(manager)
    manager.get_log("orders-eu", 1).delete_records(13)
    manager.shutdown()
    again = LogManager([tmp_path], CONFIG)
    again.startup()
    assert again.get_log("orders-eu", 1).log_start_offset == 13
    assert again.get_log("orders-eu", 0).log_start_offset == 0
    again.shutdown()


def test_delete_log_removes_the_partition_after_reads_in_flight(tmp_path):
    manager = LogManager([tmp_path], CONFIG)
    manager.startup()
    _fill(manager)
    in_flight = manager.get_log("orders-eu", 2).read(0, 1 << 20).slice
    manager.delete_log("orders-eu", 2, now=1_000)
    assert manager.get_log("orders-eu", 2) is None
    assert not (tmp_path / "orders-eu-2").exists()
    assert in_flight.read()  # renamed, not yet closed: the read in flight completes
    manager.cleanup(now=1_000 + CONFIG.file_delete_delay_ms - 1)
    assert [p for p in tmp_path.iterdir() if p.name.endswith("-delete")]
    manager.cleanup(now=1_000 + CONFIG.file_delete_delay_ms)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith("-delete")]
    manager.shutdown()


def test_a_partition_deleted_before_a_crash_is_gone_after_restart(tmp_path):
    manager = LogManager([tmp_path], CONFIG)
    manager.startup()
    _fill(manager)
    manager.delete_log("orders-eu", 1)
    for fd in manager._locks:  # crash: the lock goes with the process
        import os

        os.close(fd)
    again = LogManager([tmp_path], CONFIG)
    again.startup()
    assert again.get_log("orders-eu", 1) is None
    assert not [p for p in tmp_path.iterdir() if p.name.endswith("-delete")]
    again.shutdown()


def test_a_corrupt_checkpoint_means_a_full_scan_not_a_failure(tmp_path):
    manager = LogManager([tmp_path], CONFIG)
    manager.startup()
    _fill(manager)
    manager.shutdown()
    (tmp_path / RECOVERY_POINT_CHECKPOINT).write_text("garbage\n")
    again = LogManager([tmp_path], CONFIG)
    again.startup()
    assert all(lg.log_end_offset == 30 for lg in again.all_logs())
    again.shutdown()


def test_flush_due_and_cleanup_run_over_every_log(tmp_path):
    import dataclasses

    manager = LogManager([tmp_path], dataclasses.replace(CONFIG, flush_ms=0, retention_bytes=0))
    manager.startup()
    _fill(manager)
    assert manager.flush_due() == 3
    assert all(lg.recovery_point == 30 for lg in manager.all_logs())
    assert manager.cleanup() > 0
    assert all(lg.log_start_offset > 0 for lg in manager.all_logs())
    manager.shutdown()


def test_compact_runs_over_compacted_topics_only(tmp_path):
    import dataclasses

    from riverlog.client.records import build_batch

    manager = LogManager([tmp_path], CONFIG)
    manager.startup()
    manager.update_config("state", dataclasses.replace(CONFIG, cleanup_policy=("compact",), segment_bytes=300))
    compacted = manager.get_or_create_log("state", 0)
    plain = manager.get_or_create_log("events", 0)
    for i in range(20):
        batch = build_batch([(b"k", b"v%d" % i + b"." * 40, 1_700_000_000_000 + i, ())])
        compacted.append_as_leader(batch, leader_epoch=0)
        plain.append_as_leader(batch, leader_epoch=0)
    assert manager.compact(now=1_700_000_100_000) > 0
    assert len(read_all(compacted)) < 20 and len(read_all(plain)) == 20
    # Nothing written since: the next pass leaves the log alone (min.cleanable.dirty.ratio).
    assert manager.compact(now=1_700_000_100_000) == 0
    for i in range(40):  # more than the cleaned log again: dirty enough for a pass
        batch = build_batch([(b"k", b"w%d" % i + b"." * 40, 1_700_000_000_100 + i, ())])
        compacted.append_as_leader(batch, leader_epoch=0)
    assert manager.compact(now=1_700_000_100_000) > 0
    manager.shutdown()


def test_bytes_in_the_active_segment_at_a_pass_are_not_counted_as_clean(tmp_path):
    """The issue's condition: a pass ran while most of the log was one big
    batch in the active segment; those bytes were then taken as clean, so
    later appends smaller than them never made the log dirty enough again and
    the big batch, once rolled, was never compacted."""
    import dataclasses

    from riverlog.client.records import build_batch

    ts = 1_700_000_000_000
    manager = LogManager([tmp_path], CONFIG)
    manager.startup()
    manager.update_config("state", dataclasses.replace(CONFIG, cleanup_policy=("compact",), segment_bytes=2048))
    lg = manager.get_or_create_log("state", 0)
    lg.append_as_leader(build_batch([(b"k%d" % i, b"a" * 20, ts, ()) for i in range(5)]), leader_epoch=0)
    # One batch of 200 updates of the same 5 keys, larger than a segment: it
    # fills the active segment on its own.
    big = build_batch([(b"k%d" % (i % 5), b"b%d" % i + b"." * 20, ts + 1, ()) for i in range(200)])
    lg.append_as_leader(big, leader_epoch=0)
    manager.compact(now=ts + 10_000)
    # A smaller append rolls the big batch out of the active segment.
    lg.append_as_leader(build_batch([(b"other", b"c" * 100, ts + 2, ())]), leader_epoch=0)
    assert manager.compact(now=ts + 20_000) > 0
    keys = [r.key for r in read_all(lg) if r.offset < lg.active.base_offset]
    assert sorted(keys) == sorted({b"k%d" % i for i in range(5)})  # one record per key below the active segment
    manager.shutdown()


def test_a_kept_tombstone_goes_once_delete_retention_ms_has_passed_without_further_writes(tmp_path, caplog):
    import dataclasses
    import logging

    from riverlog.client.records import build_batch

    ts = 1_700_000_000_000
    manager = LogManager([tmp_path], CONFIG)
    manager.startup()
    config = dataclasses.replace(CONFIG, cleanup_policy=("compact",), segment_bytes=400, delete_retention_ms=1000)
    manager.update_config("state", config)
    lg = manager.get_or_create_log("state", 0)
    for i in range(10):
        lg.append_as_leader(build_batch([(b"k%d" % (i % 3), b"v%d" % i + b"." * 40, ts + i, ())]), leader_epoch=0)
    lg.append_as_leader(build_batch([(b"k0", None, ts + 10, ())]), leader_epoch=0)
    for i in range(10):
        lg.append_as_leader(build_batch([(b"f%d" % i, b"." * 60, ts + 11, ())]), leader_epoch=0)
    with caplog.at_level(logging.INFO, logger="riverlog.broker.storage.log_manager"):
        assert manager.compact(now=ts + 500) > 0  # the tombstone is younger than delete.retention.ms
    assert (b"k0", None) in [(r.key, r.value) for r in read_all(lg)]
    line = next(r.getMessage() for r in caplog.records if "cleaned log state-0" in r.getMessage())
    assert "bytes" in line and " ms" in line and "1 tombstones kept" in line
    assert manager.compact(now=ts + 900) == 0  # not due yet, nothing dirty
    assert manager.compact(now=ts + 1_100) > 0  # due: no append needed
    assert b"k0" not in [r.key for r in read_all(lg)]
    assert lg.tombstones_due_ms is None
    manager.shutdown()


@pytest.mark.parametrize("topic_chars", [214, 249])  # 249: Kafka's longest legal topic name
def test_a_partition_of_the_longest_topic_names_is_deleted_and_restarted(tmp_path, topic_chars):
    topic = ("long-topic." + "x" * 249)[:topic_chars]
    manager = LogManager([tmp_path], CONFIG)
    manager.startup()
    manager.get_or_create_log(topic, 9999).append_as_leader(make_batch(3), leader_epoch=0)
    manager.checkpoint()  # checkpoints name the topic in their entries, not in a file name
    in_flight = manager.get_log(topic, 9999).read(0, 1 << 20).slice
    manager.delete_log(topic, 9999, now=1_000)
    doomed = [p.name for p in tmp_path.iterdir() if p.name.endswith("-delete")]
    # Kafka's name for it: the topic cut short so the whole fits 255 bytes.
    assert len(doomed) == 1 and len(doomed[0].encode()) <= 255 and doomed[0].startswith(topic[:100])
    assert "-9999." in doomed[0]
    assert in_flight.read()
    for fd in manager._locks:  # a crash before the delayed removal
        os.close(fd)
    again = LogManager([tmp_path], CONFIG)
    again.startup()  # the loader knows the cut-short directory for a deleted one, and removes it
    assert again.get_log(topic, 9999) is None
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == []
    again.get_or_create_log(topic, 9999).append_as_leader(make_batch(1), leader_epoch=0)
    again.delete_log(topic, 9999, now=1_000)
    again.cleanup(now=1_000 + CONFIG.file_delete_delay_ms)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == []
    again.shutdown()


@pytest.mark.parametrize("topic", ["__cluster_metadata-0", "__cluster_metadata-x"])
def test_a_topic_named_like_the_metadata_log_is_loaded_at_start(tmp_path, topic):
    # Legal names whose directory starts like the metadata log's (__cluster_metadata-0):
    # only that one directory is not a topic's.
    manager = LogManager([tmp_path], CONFIG)
    manager.startup()
    manager.get_or_create_log(topic, 0).append_as_leader(make_batch(2), leader_epoch=0)
    manager.shutdown()
    again = LogManager([tmp_path], CONFIG)
    again.startup()
    assert again.get_log(topic, 0) is not None and again.get_log(topic, 0).log_end_offset == 2
    again.shutdown()
