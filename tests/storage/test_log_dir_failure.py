"""A storage error takes its log directory offline, never the broker: the
storage layer's fault points stand for a full or failing disk here (the real
full filesystem is in tests/integration/test_full_disk.py)."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from riverlog.broker.storage.errors import STORAGE_FAULTS, StorageError
from riverlog.broker.storage.faults import injected
from riverlog.broker.storage.log_config import LogConfig
from riverlog.broker.storage.log_manager import CLEAN_SHUTDOWN_FILE, LogManager
from riverlog.broker.storage.space_reserve import SpaceReserve

from .conftest import make_batch, read_all

# Small segments, an index entry per batch: appends roll and index often.
CONFIG = LogConfig(segment_bytes=4096, index_interval_bytes=1, retention_ms=-1)


def _in(data_dir):
    return lambda path: data_dir in path.parents


@pytest.fixture
def manager(tmp_path):
    manager = LogManager([tmp_path / "a", tmp_path / "b"], CONFIG)
    manager.startup()
    yield manager
    manager.shutdown()


def _two_logs(manager):
    """A log in each directory, a few batches each."""
    first = manager.get_or_create_log("t", 0)
    second = manager.get_or_create_log("t", 1)
    assert first.dir.parent != second.dir.parent
    for lg in (first, second):
        for i in range(3):
            lg.append_as_leader(make_batch(2, start=2 * i), leader_epoch=0)
    return first, second


def _errors(caplog):
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("point", ["write", "allocate"])
def test_a_full_disk_takes_the_directory_offline_once_and_leaves_the_others(manager, caplog, point):
    first, second = _two_logs(manager)
    full = first.dir.parent
    with injected(point, errno.ENOSPC, when=_in(full)):
        with pytest.raises(StorageError):  # within a few appends an index page or the .log needs space
            for _ in range(10_000):
                end = first.log_end_offset
                first.append_as_leader(make_batch(2, start=100), leader_epoch=0)
        # Offline: refused without touching the disk, every operation, said once.
        with pytest.raises(StorageError, match="offline"):
            first.append_as_leader(make_batch(1), leader_epoch=0)
        with pytest.raises(StorageError, match="offline"):
            first.read(0, 1000)
        with pytest.raises(StorageError, match="offline"):
            first.delete_records(1)
        assert manager.is_offline("t", 0) and not manager.is_offline("t", 1)
        second.append_as_leader(make_batch(1), leader_epoch=0)
        assert second.log_end_offset == 7
        manager.flush_due(2**62)
        manager.cleanup()
        manager.checkpoint()
        errors = _errors(caplog)
        assert len(errors) == 1 and str(full) in errors[0].getMessage() and "until space is freed" in errors[0].getMessage()
    # All or nothing: the failed append left no byte behind (read back after a reload from disk).
    assert manager.retry_offline_dirs() == [full]
    assert [r.offset for r in read_all(manager.get_log("t", 0))] == list(range(end))


def test_a_directory_out_of_space_comes_back_with_its_logs_when_there_is_room(manager, caplog):
    first, _ = _two_logs(manager)
    full = first.dir.parent
    with injected("write", errno.ENOSPC, when=_in(full)):
        with pytest.raises(StorageError):
            first.append_as_leader(make_batch(1), leader_epoch=0)
        with injected("allocate", errno.ENOSPC, when=_in(full)):
            assert manager.retry_offline_dirs() == []  # no room yet
        assert manager.is_offline("t", 0)
    assert manager.retry_offline_dirs() == [full]
    assert not manager.is_offline("t", 0)
    reloaded = manager.get_log("t", 0)
    assert reloaded is not first  # read again from disk, as at a restart
    assert [r.offset for r in read_all(reloaded)] == list(range(6))
    assert reloaded.append_as_leader(make_batch(1), leader_epoch=0).first_offset == 6
    assert any("back online" in r.getMessage() for r in caplog.records)


def test_an_io_error_keeps_the_directory_offline_until_a_restart(manager):
    first, _ = _two_logs(manager)
    with injected("write", errno.EIO, when=_in(first.dir.parent)):
        with pytest.raises(StorageError):
            first.append_as_leader(make_batch(1), leader_epoch=0)
    assert manager.retry_offline_dirs() == []
    assert manager.is_offline("t", 0)


def test_new_partitions_go_to_an_online_directory_and_wait_when_none_is(manager):
    first, second = _two_logs(manager)
    with injected("write", errno.ENOSPC, when=_in(first.dir.parent)):
        with pytest.raises(StorageError):
            first.append_as_leader(make_batch(1), leader_epoch=0)
    new = manager.get_or_create_log("u", 0)
    assert new.dir.parent == second.dir.parent  # not the offline one, though it has fewer partitions
    with injected("write", errno.ENOSPC, when=_in(second.dir.parent)):
        with pytest.raises(StorageError):
            second.append_as_leader(make_batch(1), leader_epoch=0)
    with pytest.raises(StorageError, match="offline"):
        manager.get_or_create_log("v", 0)
    assert manager.is_offline("v", 0) and manager.get_log("v", 0) is None
    assert manager.retry_offline_dirs() == [first.dir.parent, second.dir.parent]
    assert manager.get_or_create_log("v", 0).log_end_offset == 0


def test_a_directory_that_cannot_load_is_offline_and_the_broker_starts(tmp_path, caplog):
    dirs = [tmp_path / "a", tmp_path / "b"]
    manager = LogManager(dirs, CONFIG)
    manager.startup()
    _two_logs(manager)
    for fd in manager._locks:  # a crash: the next start recovers, and a recovery writes checkpoints
        os.close(fd)
    again = LogManager(dirs, CONFIG)
    with injected("allocate", errno.ENOSPC, when=_in(dirs[0])):  # the recovery rebuilds indexes
        again.startup()
    assert again.is_offline("t", 0) and again.get_log("t", 0) is None  # registered there, not made elsewhere
    with pytest.raises(StorageError, match="offline"):
        again.get_or_create_log("t", 0)
    assert [r.offset for r in read_all(again.get_log("t", 1))] == list(range(6))
    assert len(_errors(caplog)) == 1
    again.shutdown()
    # No clean-shutdown marker in the offline directory: it is recovered next time.
    assert not (dirs[0] / CLEAN_SHUTDOWN_FILE).exists() and (dirs[1] / CLEAN_SHUTDOWN_FILE).exists()
    third = LogManager(dirs, CONFIG)
    third.startup()
    assert [r.offset for r in read_all(third.get_log("t", 0))] == list(range(6))
    third.shutdown()


def test_a_failed_checkpoint_takes_only_its_directory_offline(manager):
    first, second = _two_logs(manager)
    with injected("replace", errno.EROFS, when=_in(first.dir.parent)):
        manager.checkpoint()
    assert manager.is_offline("t", 0) and not manager.is_offline("t", 1)


def test_deleting_a_partition_in_an_offline_directory_frees_its_space_at_once(manager):
    first, _ = _two_logs(manager)
    with injected("write", errno.ENOSPC, when=_in(first.dir.parent)):
        with pytest.raises(StorageError):
            first.append_as_leader(make_batch(1), leader_epoch=0)
    manager.delete_log("t", 0)
    assert not first.dir.exists() and manager.get_log("t", 0) is None
    assert not any(p.name.startswith("t-0") for p in first.dir.parent.iterdir())


def test_the_metadata_logs_reserve_is_given_up_when_a_data_directory_on_its_disk_fills(manager, tmp_path, caplog):
    first, _ = _two_logs(manager)
    reserve = SpaceReserve(tmp_path)
    assert reserve.take() and os.path.getsize(reserve.path) == reserve.size_bytes
    manager.metadata_reserve = reserve
    with injected("write", errno.ENOSPC, when=_in(first.dir.parent)):
        with pytest.raises(StorageError):
            first.append_as_leader(make_batch(1), leader_epoch=0)
    assert not reserve.held and not reserve.path.exists()  # the metadata log's room now
    assert any("released the metadata log's reserve" in r.getMessage() for r in caplog.records)
    # Back only with room for the reserve besides a batch; the reserve is taken first.
    with injected("allocate", errno.ENOSPC, when=lambda path: path == reserve.path):
        assert manager.retry_offline_dirs() == []
    assert manager.retry_offline_dirs() == [first.dir.parent]
    assert reserve.held and os.path.getsize(reserve.path) == reserve.size_bytes


def test_delete_records_on_a_full_disk_is_a_storage_error_not_a_fault(manager):
    """DeleteRecords rewrites the leader-epoch checkpoint: on a full disk that
    was an OSError out of the handler, which cost the client its connection."""
    first, _ = _two_logs(manager)
    with injected("replace", errno.ENOSPC, when=_in(first.dir.parent)):
        with pytest.raises(StorageError):
            first.delete_records(2)
    assert manager.is_offline("t", 0)


def test_a_directory_that_could_not_be_made_at_start_comes_back_locked(tmp_path, monkeypatch):
    dirs = [tmp_path / "a", tmp_path / "b"]
    manager = LogManager(dirs, CONFIG)
    real_mkdir = Path.mkdir

    def full_mkdir(self, *args, **kwargs):
        if self == dirs[1]:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", full_mkdir)
    manager.startup()
    monkeypatch.undo()
    assert manager.failures.is_offline(dirs[1])
    assert manager.retry_offline_dirs() == [dirs[1]]
    with pytest.raises(StorageError, match="in use"):
        LogManager([dirs[1]], CONFIG).startup()  # locked by the first, now that it is back
    manager.shutdown()


def _fill(manager, full):
    """An append to the log in ``full`` fails for want of space: the directory goes offline."""
    with injected("write", errno.ENOSPC, when=_in(full)):
        with pytest.raises(StorageError):
            manager.get_log("t", 0).append_as_leader(make_batch(1), leader_epoch=0)
    assert manager.failures.is_offline(full)


def test_records_deleted_before_a_failed_reload_stay_deleted_when_the_next_one_succeeds(manager):
    """The log start offset lives in memory until the next checkpoint, and an
    offline directory is not checkpointed: a reload that fails must not lose
    it, or the one after reads the older checkpoint and DeleteRecords is undone."""
    first, _ = _two_logs(manager)
    full = first.dir.parent
    now = [0]
    manager.clock_ms = lambda: now[0]
    manager.checkpoint()  # on disk: log start 0
    assert first.delete_records(4) == 4
    _fill(manager, full)
    with injected("allocate", errno.ENOSPC, when=lambda p: full in p.parents and p.suffix in (".index", ".timeindex")):
        assert manager.retry_offline_dirs() == []  # room for the probe, not for the indexes
    now[0] += 60_000  # past the backoff
    assert manager.retry_offline_dirs() == [full]
    reloaded = manager.get_log("t", 0)
    assert reloaded.log_start_offset == 4
    assert [r.offset for r in read_all(reloaded)] == [4, 5]


def test_a_directory_comes_back_only_with_room_for_a_few_batches(manager, monkeypatch):
    """Room for one batch of message.max.bytes was not enough: the next
    produce filled it again, and it went offline and back every second."""
    first, _ = _two_logs(manager)
    full = first.dir.parent
    _fill(manager, full)
    batch = CONFIG.max_message_bytes
    free = [2 * batch]
    real_fallocate = os.posix_fallocate

    def fallocate(fd, offset, length):  # a disk with ``free`` bytes left
        if offset + length > free[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fallocate(fd, offset, length)

    monkeypatch.setattr(os, "posix_fallocate", fallocate)
    assert manager.retry_offline_dirs() == []
    free[0] = 4 * batch + 4096
    assert manager.retry_offline_dirs() == [full]


def test_a_directory_that_fills_again_soon_after_coming_back_waits_longer_each_time(manager, caplog):
    first, _ = _two_logs(manager)
    full = first.dir.parent
    now = [1_000_000]
    manager.clock_ms = lambda: now[0]
    _fill(manager, full)
    now[0] += 1000
    assert manager.retry_offline_dirs() == [full]  # the first time: at once
    waits = []
    for _ in range(8):
        now[0] += 5000  # full again 5 s after coming back
        _fill(manager, full)
        went_offline = now[0]
        for _ in range(100):
            if manager.retry_offline_dirs() == [full]:
                break
            now[0] += 1000  # the broker tries every second
        waits.append((now[0] - went_offline) // 1000)
    assert waits == [2, 4, 8, 16, 32, 60, 60, 60]
    # Online a minute: forgotten, the next time it comes back at once.
    now[0] += 60_000
    _fill(manager, full)
    now[0] += 1000
    assert manager.retry_offline_dirs() == [full]
    assert any("the next attempt to bring it back is in 60 s" in r.getMessage() for r in caplog.records)


def test_a_log_closed_under_a_reader_answers_storage_error_and_its_directory_stays_online(manager):
    """A reader that held a log across a wait (the group loader, say) while
    its directory was reloaded meets a closed log: KAFKA_STORAGE_ERROR for
    that request (before: a ValueError that nobody caught), and the
    directory, which is fine, is not taken offline for it."""
    first, _ = _two_logs(manager)
    full = first.dir.parent
    _fill(manager, full)
    assert manager.retry_offline_dirs() == [full]
    assert manager.get_log("t", 0) is not first  # first is closed
    with pytest.raises(Exception) as caught:
        first.read(0, 1000)
    assert isinstance(caught.value, STORAGE_FAULTS), repr(caught.value)
    assert not manager.is_offline("t", 0)


def test_a_directory_that_fails_to_reload_stays_offline_and_the_retry_goes_on(manager, caplog):
    """The retry runs on a timer of a broker that serves: an error there that
    is not the disk's (here a partition found in two directories) left
    retry_offline_dirs and stopped the broker. Now the directory stays offline,
    until a restart (which refuses the layout, as at any start)."""
    first, second = _two_logs(manager)
    full = first.dir.parent
    with injected("write", errno.ENOSPC, when=_in(full)):
        with pytest.raises(StorageError):
            first.append_as_leader(make_batch(1), leader_epoch=0)
    (full / second.dir.name).mkdir()  # t-1 lives in the other directory
    assert manager.retry_offline_dirs() == []
    assert manager.failures.is_offline(full) and not manager.failures.waits_for_space(full)
    assert "is in both" in caplog.text
    assert manager.retry_offline_dirs() == []  # no longer retried
    assert not manager.is_offline("t", 1)
    second.append_as_leader(make_batch(1), leader_epoch=0)


def test_a_deleted_partition_whose_rename_cannot_be_synced_is_removed_where_it_is(manager, monkeypatch):
    """The rename to -delete succeeded, its fsync failed: the directory was
    looked for under its old name and the -delete one stayed."""
    import riverlog.broker.storage.log_manager as log_manager

    first, _ = _two_logs(manager)
    data_dir = first.dir.parent

    def failing_fsync_dir(path):
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))

    monkeypatch.setattr(log_manager, "fsync_dir", failing_fsync_dir)
    manager.delete_log("t", 0)
    monkeypatch.undo()
    assert manager.failures.is_offline(data_dir)
    assert not any(p.name.startswith("t-0") for p in data_dir.iterdir())
