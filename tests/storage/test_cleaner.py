"""Compaction keeps the latest record per key and never changes offsets."""

from __future__ import annotations

import dataclasses

from riverlog.broker.storage.cleaner import clean_log
from riverlog.broker.storage.log import Log
from riverlog.broker.storage.log_config import LogConfig
from riverlog.client.records import Compression, build_batch, iter_batches

from .conftest import BASE_TS, read_all

CONFIG = LogConfig(
    segment_bytes=600, index_interval_bytes=64, cleanup_policy=("compact",), retention_ms=-1,
    delete_retention_ms=60_000,
)


def _put(log: Log, pairs, ts: int = BASE_TS, compression=Compression.NONE):
    batch = build_batch([(k, v, ts + i, ()) for i, (k, v) in enumerate(pairs)], compression=compression)
    return log.append_as_leader(batch, leader_epoch=0)


def test_compaction_keeps_the_latest_value_per_key_at_its_original_offset(tmp_path):
    log = Log(tmp_path / "state-0", CONFIG)
    expected: dict[bytes, tuple[int, bytes]] = {}
    for round_ in range(12):
        for codec in (Compression.NONE, Compression.ZSTD):
            pairs = [(b"key-%d" % (i % 5), b"v%d-%d" % (round_, i)) for i in range(3)]
            info = _put(log, pairs, compression=codec)
            for i, (k, v) in enumerate(pairs):
                expected[k] = (info.first_offset + i, v)
    end = log.log_end_offset
    active_base = log.active.base_offset
    stats = clean_log(log, now=BASE_TS + 1000)
    assert stats.segments_cleaned > 0 and stats.records_removed > 0
    assert log.log_end_offset == end
    records = read_all(log)
    offsets = [r.offset for r in records]
    assert offsets == sorted(offsets)
    # Below the active segment each key appears once, with its latest value.
    cleaned = [r for r in records if r.offset < active_base]
    for r in cleaned:
        latest_offset, _ = expected[r.key]
        assert r.offset == latest_offset or latest_offset >= active_base
    assert len({r.key for r in cleaned}) == len(cleaned)
    # The latest value of every key is still readable at its offset.
    by_offset = {r.offset: r.value for r in records}
    for key, (offset, value) in expected.items():
        assert by_offset[offset] == value
    # Batches stay valid and keep their codec.
    for seg in log.segments:
        for batch in iter_batches(seg.read(seg.base_offset, 1 << 20).read() if seg.size else b""):
            assert batch.is_valid_crc()


def test_the_active_segment_is_never_touched(tmp_path):
    log = Log(tmp_path / "state-0", dataclasses.replace(CONFIG, segment_bytes=1 << 20))
    for i in range(10):
        _put(log, [(b"same", b"v%d" % i)])
    before = log.active.log_path.read_bytes()
    stats = clean_log(log, now=BASE_TS + 1000)
    assert stats.segments_cleaned == 0
    assert log.active.log_path.read_bytes() == before


def test_tombstones_are_removed_only_after_delete_retention_ms(tmp_path):
    log = Log(tmp_path / "state-0", CONFIG)
    _put(log, [(b"gone", b"x"), (b"kept", b"y")])
    _put(log, [(b"gone", None)])  # tombstone
    for i in range(20):
        _put(log, [(b"filler-%d" % i, b"." * 40)], ts=BASE_TS + 10)
    clean_log(log, now=BASE_TS + 1000)
    keys = [(r.key, r.value) for r in read_all(log)]
    assert (b"gone", None) in keys and (b"gone", b"x") not in keys and (b"kept", b"y") in keys
    clean_log(log, now=BASE_TS + 60_000 + 1000)
    keys = [(r.key, r.value) for r in read_all(log)]
    assert all(k != b"gone" for k, _ in keys) and (b"kept", b"y") in keys


def test_min_compaction_lag_protects_recent_segments(tmp_path):
    log = Log(tmp_path / "state-0", dataclasses.replace(CONFIG, min_compaction_lag_ms=10_000))
    for i in range(20):
        _put(log, [(b"k", b"v%d" % i + b"." * 30)])
    assert clean_log(log, now=BASE_TS + 5_000).segments_cleaned == 0
    assert clean_log(log, now=BASE_TS + 20_000).segments_cleaned > 0


def test_a_delete_policy_log_is_not_compacted(tmp_path):
    log = Log(tmp_path / "plain-0", dataclasses.replace(CONFIG, cleanup_policy=("delete",)))
    for i in range(20):
        _put(log, [(b"k", b"v%d" % i + b"." * 30)])
    assert clean_log(log, now=BASE_TS + 1000).segments_cleaned == 0
    assert len(read_all(log)) == 20


def test_compacted_log_reopens_after_a_crash_and_after_a_clean_close(tmp_path):
    log = Log(tmp_path / "state-0", CONFIG)
    for i in range(30):
        _put(log, [(b"k%d" % (i % 4), b"v%d" % i + b"." * 20)])
    clean_log(log, now=BASE_TS + 1000)
    want = [(r.offset, r.key, r.value) for r in read_all(log)]
    for seg in log.segments:  # crash: no close, indexes untrimmed
        seg.offset_index.flush()
    crashed = Log(tmp_path / "state-0", CONFIG, recovery_point=0)
    assert [(r.offset, r.key, r.value) for r in read_all(crashed)] == want
    crashed.close()
    clean = Log(tmp_path / "state-0", CONFIG, recovery_point=10**9, clean_shutdown=True)
    assert [(r.offset, r.key, r.value) for r in read_all(clean)] == want
    assert clean.append_as_leader(build_batch([(b"k", b"z", BASE_TS, ())]), leader_epoch=0).first_offset == 30


def test_an_interrupted_swap_is_completed_on_load(tmp_path):
    log = Log(tmp_path / "state-0", CONFIG)
    for i in range(30):
        _put(log, [(b"k%d" % (i % 4), b"v%d" % i + b"." * 20)])
    clean_log(log, now=BASE_TS + 1000)
    want = [(r.offset, r.key, r.value) for r in read_all(log)]
    log.close()
    # Simulate a crash between ".cleaned -> .swap" and the old segment's removal:
    # the first segment exists both live and as .swap.
    first = sorted((tmp_path / "state-0").glob("*.log"))[0]
    for ext in ("log", "index", "timeindex"):
        src = first.with_suffix(f".{ext}")
        (src.parent / (src.name + ".swap")).write_bytes(src.read_bytes())
    again = Log(tmp_path / "state-0", CONFIG, recovery_point=0)
    assert [(r.offset, r.key, r.value) for r in read_all(again)] == want
    assert not list((tmp_path / "state-0").glob("*.swap"))


def test_a_tombstone_outlives_the_pass_that_first_cleans_past_it(tmp_path):
    # Written long ago and first seen now: a reader from the start still gets
    # delete.retention.ms to see the delete after the older value went.
    log = Log(tmp_path / "state-0", CONFIG)
    _put(log, [(b"gone", b"x"), (b"kept", b"y")])
    _put(log, [(b"gone", None)])
    for i in range(20):
        _put(log, [(b"filler-%d" % i, b"." * 40)])
    late = BASE_TS + 10 * CONFIG.delete_retention_ms
    clean_log(log, now=late)
    keys = [(r.key, r.value) for r in read_all(log)]
    assert (b"gone", None) in keys and (b"gone", b"x") not in keys
    assert log.tombstones_due_ms is not None and log.tombstones_due_ms <= late
    clean_log(log, now=late + 1)
    assert b"gone" not in [r.key for r in read_all(log)]


def test_later_passes_clean_the_clean_part_against_the_new_dirty_records(tmp_path):
    log = Log(tmp_path / "state-0", CONFIG)
    for i in range(30):
        _put(log, [(b"k%d" % (i % 4), b"a%d" % i + b"." * 20)])
    first = clean_log(log, now=BASE_TS + 1000)
    assert first.first_dirty_offset == 0 and first.end_offset == log.first_dirty_offset > 0
    for i in range(30):
        _put(log, [(b"k%d" % (i % 4), b"b%d" % i + b"." * 20)])
    second = clean_log(log, now=BASE_TS + 2000)
    assert second.first_dirty_offset == first.end_offset and second.end_offset > first.end_offset
    below = [r for r in read_all(log) if r.offset < log.first_dirty_offset]
    assert len({r.key for r in below}) == len(below)  # one record per key in the clean part
    assert all(r.value.startswith(b"b") for r in below)


def test_a_full_offset_map_ends_the_pass_early_and_the_next_pass_goes_on_from_there(tmp_path):
    log = Log(tmp_path / "state-0", CONFIG)
    for i in range(60):
        _put(log, [(b"k%d" % i, b"v%d" % i + b"." * 30)])
    for i in range(60):
        _put(log, [(b"k%d" % i, b"w%d" % i + b"." * 30)])
    first = clean_log(log, now=BASE_TS + 1000, max_map_entries=10)
    assert 0 < first.end_offset < log.active.base_offset
    while log.first_dirty_offset < log.active.base_offset:
        clean_log(log, now=BASE_TS + 1000, max_map_entries=10)
    below = [r for r in read_all(log) if r.offset < log.active.base_offset]
    assert len({r.key for r in below}) == len(below)
