"""The cache of open segment files and its fast path (CachedFile): the bound
on open descriptors holds whatever the fast path skips, and an eviction
other than by LRU (giving descriptors back when out of them) is seen at once."""

from __future__ import annotations

import os
import weakref

import pytest

from riverlog.broker.storage import open_files
from riverlog.broker.storage.batches import validate_batches
from riverlog.broker.storage.log_config import LogConfig
from riverlog.broker.storage.log_segment import LogSegment

from .conftest import make_batch


@pytest.fixture
def small_cache():
    before = open_files.CACHE.max_open_files
    open_files.CACHE.set_max_open_files(6)
    yield open_files.CACHE
    open_files.CACHE.set_max_open_files(before)


def _open_log_files(directory) -> int:
    """Descriptors of this process open on a .log under ``directory``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)) and target.endswith(".log"):
            count += 1
    return count


def _append(seg: LogSegment, offset: int) -> None:
    batch = bytearray(make_batch(1))
    batch[:8] = offset.to_bytes(8, "big")
    seg.append([batch], validate_batches(batch, 2**20), len(batch))


def test_the_bound_holds_and_a_segment_in_steady_use_keeps_its_descriptor(tmp_path, small_cache):
    config = LogConfig()
    hot = LogSegment(tmp_path, 0, config)
    cold = [LogSegment(tmp_path, 1000 * (i + 1), config) for i in range(20)]
    for seg in [hot, *cold]:
        seg.make_active()
    first = hot._file()
    for round_ in range(3):
        for i, seg in enumerate(cold):
            _append(seg, seg.base_offset + round_)
            _append(hot, 3 * i + 60 * round_)  # used between every other open: never evicted
            assert len(small_cache) <= 6
            assert _open_log_files(tmp_path) <= 6
    assert hot._file() is first
    for seg in [hot, *cold]:
        seg.close()


def test_giving_descriptors_back_is_seen_by_the_fast_path(tmp_path, small_cache):
    seg = LogSegment(tmp_path, 0, LogConfig())
    seg.make_active()
    held = seg._file()  # as a FileSlice being sent holds it
    small_cache.shrink(0)
    again = seg._file()
    assert again is not held  # through the cache again: opened anew and counted
    assert len(small_cache) == 1
    gone = weakref.ref(again)
    del again, held
    small_cache.shrink(0)
    assert gone() is None  # nothing holds the descriptor the cache let go of: closed
    _append(seg, 0)  # opens it again
    assert _open_log_files(tmp_path) == 1
    seg.close()
    assert _open_log_files(tmp_path) == 0
