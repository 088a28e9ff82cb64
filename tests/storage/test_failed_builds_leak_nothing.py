"""A log or segment that fails to build (a full disk during a reload, out of
descriptors while creating a partition), a roll that fails halfway, and the
retries after them hold no memory map and no descriptor: on a full disk,
deleting the topic must give its space back, and a retry every second must
not grow the process. What the process holds is read from /proc/self."""

from __future__ import annotations

import errno
import gc
import os
import shutil

import pytest

from riverlog.broker.storage import log_segment
from riverlog.broker.storage.errors import StorageError, TooManyOpenFilesError
from riverlog.broker.storage.faults import injected
from riverlog.broker.storage.log import Log
from riverlog.broker.storage.log_config import LogConfig
from riverlog.broker.storage.log_manager import LogManager

from .conftest import make_batch, read_all

CONFIG = LogConfig(segment_bytes=1024, index_interval_bytes=1, retention_ms=-1)


def _held(under) -> tuple[list[str], list[str]]:
    """(mappings, descriptors) this process holds of files under ``under``, deleted ones too."""
    gc.collect()  # what only a cycle keeps alive is not held
    with open("/proc/self/maps") as f:
        maps = [line.split(None, 5)[-1].strip() for line in f if str(under) in line]
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own descriptor, closed by now
        if str(under) in target:
            fds.append(target)
    return sorted(maps), sorted(fds)


def _log_of_segments(path, n: int = 3) -> Log:
    lg = Log(path, CONFIG)
    i = 0
    while len(lg.segments) < n:
        lg.append_as_leader(make_batch(3, start=3 * i), leader_epoch=0)
        i += 1
    return lg


def _index_files(path) -> bool:
    return path.suffix in (".index", ".timeindex")


def test_a_log_that_fails_to_load_on_a_full_disk_holds_nothing_once_its_directory_is_removed(tmp_path):
    directory = tmp_path / "t-0"
    _log_of_segments(directory).close(flush=False)  # as a crash: the next load recovers
    with injected("allocate", errno.ENOSPC):  # the recovery rebuilds the indexes: no room
        with pytest.raises(OSError):
            Log(directory, CONFIG)
    shutil.rmtree(directory)  # as deleting the topic does
    assert _held(tmp_path) == ([], [])


def test_a_roll_that_fails_after_making_the_new_segment_leaves_nothing_of_it(tmp_path, monkeypatch):
    lg = _log_of_segments(tmp_path / "t-0", n=1)
    lg.append_as_leader(make_batch(3, start=100), leader_epoch=0)
    end = lg.log_end_offset
    new_files = f"{end:020d}."

    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(log_segment.LogSegment, "on_become_inactive", full)
    with pytest.raises(OSError):
        lg.roll()
    monkeypatch.undo()
    assert [s.base_offset for s in lg.segments] == [0]  # the old one is still the active one
    assert not [p.name for p in lg.dir.iterdir() if p.name.startswith(new_files)]
    maps, fds = _held(lg.dir)
    assert not [m for m in maps if new_files in m] and not [f for f in fds if new_files in f]
    assert lg.append_as_leader(make_batch(1), leader_epoch=0).first_offset == end  # still writable
    lg.close()


def test_failed_reloads_of_an_offline_directory_leak_nothing(tmp_path):
    full = tmp_path / "a"
    manager = LogManager([full], CONFIG)
    manager.startup()
    now = [0]
    manager.clock_ms = lambda: now[0]
    lg = manager.get_or_create_log("t", 0)
    while len(lg.segments) < 3:
        lg.append_as_leader(make_batch(3), leader_epoch=0)
    with injected("write", errno.ENOSPC):
        with pytest.raises(StorageError):
            lg.append_as_leader(make_batch(1), leader_epoch=0)
    counts = []
    with injected("allocate", errno.ENOSPC, when=_index_files):  # room for the probe, none for the indexes
        for _ in range(12):
            now[0] += 3_600_000  # past any backoff: each is an attempt
            assert manager.retry_offline_dirs() == []
            maps, fds = _held(full)
            counts.append((len(maps), len(fds)))
    assert len(set(counts)) == 1, counts  # flat, not one more mapping per attempt
    now[0] += 3_600_000
    assert manager.retry_offline_dirs() == [full]
    assert len(read_all(manager.get_log("t", 0))) == lg.log_end_offset
    manager.shutdown()


def test_failed_log_creations_leak_nothing(tmp_path):
    """Out of descriptors, creating a partition's log fails; the broker tries
    again every second (Broker._retry_offline_logs)."""
    manager = LogManager([tmp_path / "a"], CONFIG)
    manager.startup()
    baseline = _held(tmp_path)
    with injected("allocate", errno.EMFILE):
        for _ in range(12):
            with pytest.raises(TooManyOpenFilesError):  # a shortage, not the disk's fault
                manager.get_or_create_log("u", 0)
            assert _held(tmp_path) == baseline
    assert manager.get_or_create_log("u", 0).log_end_offset == 0
    manager.shutdown()


def test_a_map_never_closed_is_unmapped_once_nothing_reads_it_and_never_before(tmp_path):
    """The finalizer behind the two leaks above, and its one hazard: a pinned
    view (what index lookups hold) keeps the memory mapped until it is let go."""
    from riverlog import native
    from riverlog.broker.storage.file_map import FileMap

    path = tmp_path / "f"
    path.write_bytes(b"\1" * 4096)
    fmap = FileMap(path, 4096)
    pinned = native.pin_buffer(fmap.view)
    del fmap
    assert len(_held(tmp_path)[0]) == 1  # still mapped: the pin reads it
    assert native.offset_index_lookup(pinned, 1, 2**40) == 0  # and it can: the one entry
    native.unpin_buffer(pinned)
    del pinned
    assert _held(tmp_path) == ([], [])
