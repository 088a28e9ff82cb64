"""Crash consistency: whatever a crash leaves, recovery yields a valid prefix."""

from __future__ import annotations

import shutil

import pytest

from riverlog.broker.storage.log import Log
from riverlog.broker.storage.log_config import LogConfig

from .conftest import make_batch, read_all

CONFIG = LogConfig(segment_bytes=1500, index_interval_bytes=64, segment_index_bytes=1200)


def _written_log(path, batches: int = 30) -> tuple[list[tuple[int, int, int]], Log]:
    """A closed log; returns (end byte in active .log, first offset, last offset) per batch of the active segment."""
    log = Log(path, CONFIG)
    for i in range(batches):
        log.append_as_leader(make_batch(1 + i % 3, start=i * 3), leader_epoch=1 + i // 10)
    active = log.active
    bounds = []
    for header in active.walk(0):
        bounds.append((header.position + header.length, header.base_offset, header.last_offset))
    log.close()
    return bounds, log


def _crash_copy(src, dst, cut: int | None = None, flip: int | None = None) -> None:
    """Copy a log directory as a crash would leave it: the active .log cut at
    ``cut`` bytes (or one bit flipped at ``flip``), stale index files kept."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    active = sorted(dst.glob("*.log"))[-1]
    data = bytearray(active.read_bytes())
    if cut is not None:
        data = data[:cut]
    if flip is not None:
        data[flip] ^= 0x10
    active.write_bytes(bytes(data))


def test_every_cut_of_the_tail_recovers_to_the_whole_batches_before_it(tmp_path):
    src = tmp_path / "src-0"
    bounds, _ = _written_log(src)
    assert len(bounds) >= 4
    first_pos = bounds[-5][0]  # the last four batches of the active segment, byte by byte
    prior_end = {end: last for end, _, last in bounds}
    active_base = sorted(src.glob("*.log"))[-1].name
    base = int(active_base.split(".")[0])
    for cut in range(first_pos, bounds[-1][0] + 1):
        dst = tmp_path / "crash-0"
        _crash_copy(src, dst, cut=cut)
        log = Log(dst, CONFIG, recovery_point=base)
        whole = [end for end, _, _ in bounds if end <= cut]
        expected_end = prior_end[whole[-1]] + 1 if whole else base
        assert log.log_end_offset == expected_end, f"cut at byte {cut}"
        assert log.active.size == (whole[-1] if whole else 0)
        records = read_all(log)
        assert [r.offset for r in records] == list(range(expected_end)), f"cut at byte {cut}"
        assert log.append_as_leader(make_batch(2), leader_epoch=9).first_offset == expected_end
        assert read_all(log)[-1].offset == expected_end + 1
        for seg in log.segments:
            seg.close()


def test_a_cut_across_segments_recovers_from_the_recovery_point(tmp_path):
    src = tmp_path / "src-0"
    _written_log(src, batches=60)
    segments = sorted(src.glob("*.log"))
    assert len(segments) >= 3
    # Crash with the last segment missing entirely and the one before cut mid-batch.
    dst = tmp_path / "crash-0"
    shutil.copytree(src, dst)
    for ext in ("log", "index", "timeindex"):
        (dst / segments[-1].name.replace(".log", f".{ext}")).unlink()
    prev = dst / segments[-2].name
    prev.write_bytes(prev.read_bytes()[:-7])
    log = Log(dst, CONFIG, recovery_point=0)
    records = read_all(log)
    assert [r.offset for r in records] == list(range(log.log_end_offset))
    assert log.log_end_offset < int(segments[-1].name.split(".")[0])


@pytest.mark.parametrize("which", [-1, -2])
def test_a_flipped_bit_in_a_batch_is_detected_and_never_served(tmp_path, which):
    src = tmp_path / "src-0"
    bounds, _ = _written_log(src)
    end, first, _last = bounds[which]
    start = bounds[which - 1][0]
    base = int(sorted(src.glob("*.log"))[-1].name.split(".")[0])
    # Every byte covered by the length, magic or CRC. baseOffset and
    # partitionLeaderEpoch (bytes 0-7, 12-15) lie outside Kafka's CRC by design.
    covered = list(range(start + 8, start + 12)) + list(range(start + 16, end))
    for pos in covered:
        dst = tmp_path / "crash-0"
        _crash_copy(src, dst, flip=pos)
        log = Log(dst, CONFIG, recovery_point=base)
        assert log.log_end_offset == first, f"flip at byte {pos - start} of the batch"
        assert [r.offset for r in read_all(log)] == list(range(first))
        for seg in log.segments:
            seg.close()


def test_missing_or_corrupt_index_files_are_rebuilt(tmp_path):
    src = tmp_path / "src-0"
    _written_log(src, batches=60)
    reference = Log(src, CONFIG, clean_shutdown=True, recovery_point=10**9)
    expected = [(r.offset, r.key) for r in read_all(reference)]
    lookups = {s.base_offset: [s.offset_index.entry(i) for i in range(s.offset_index.entries)] for s in reference.segments}
    reference.close()
    dst = tmp_path / "broken-0"
    shutil.copytree(src, dst)
    indexes = sorted(dst.glob("*.index"))
    indexes[0].unlink()
    indexes[1].write_bytes(b"\x00" * 24)  # zeros: entries that do not increase
    indexes[2].write_bytes(indexes[2].read_bytes()[:-3])  # torn: not whole entries
    log = Log(dst, CONFIG, clean_shutdown=True, recovery_point=10**9)
    assert [(r.offset, r.key) for r in read_all(log)] == expected
    for seg in log.segments[:3]:
        got = [seg.offset_index.entry(i) for i in range(seg.offset_index.entries)]
        assert got == lookups[seg.base_offset]


def test_leftover_cleaned_and_swap_files_are_resolved_on_load(tmp_path):
    src = tmp_path / "src-0"
    _written_log(src, batches=30)
    first = sorted(src.glob("*.log"))[0]
    # A cleaning that crashed before its swap leaves .cleaned files: dropped.
    (src / (first.name + ".cleaned")).write_bytes(b"junk")
    log = Log(src, CONFIG, recovery_point=0)
    assert not list(src.glob("*.cleaned"))
    assert [r.offset for r in read_all(log)] == list(range(log.log_end_offset))
