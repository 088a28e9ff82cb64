"""Out of file descriptors (EMFILE), the storage answers the call at hand with
TooManyOpenFilesError and its log directory stays online: a shortage of the
process, not a fault of the disk. The descriptors are really used up here
(tests/descriptors.py), or an EMFILE injected where they cannot be."""

from __future__ import annotations

import errno
import logging
import os

import pytest

from riverlog.broker.storage import open_files
from riverlog.broker.storage.checkpoint import fsync_dir, write_atomically
from riverlog.broker.storage.errors import StorageError, TooManyOpenFilesError
from riverlog.broker.storage.faults import injected
from riverlog.broker.storage.log_config import LogConfig
from riverlog.broker.storage.log_manager import LogManager
from riverlog.broker.storage.log_segment import LogSegment
from riverlog.client.records import build_batch

from ..descriptors import no_descriptors_left
from .conftest import BASE_TS, make_batch, read_all

CONFIG = LogConfig(segment_bytes=4096, index_interval_bytes=1, retention_ms=-1)
COMPACT = LogConfig(segment_bytes=300, index_interval_bytes=64, cleanup_policy=("compact",), retention_ms=-1)


@pytest.fixture
def manager(tmp_path):
    manager = LogManager([tmp_path / "a", tmp_path / "b"], CONFIG)
    manager.startup()
    yield manager
    manager.shutdown()


def _filled(manager, topic: str = "t"):
    lg = manager.get_or_create_log(topic, 0)
    for i in range(3):
        lg.append_as_leader(make_batch(2, start=2 * i), leader_epoch=0)
    return lg


def test_out_of_descriptors_rewriting_the_leader_epoch_checkpoint_keeps_the_directory_online(manager):
    """DeleteRecords rewrites leader-epoch-checkpoint: out of descriptors, that
    took the directory offline until a restart (EMFILE is never retried)."""
    lg = _filled(manager)
    open_files.CACHE.shrink(0)  # nothing cached to give back
    with no_descriptors_left():
        with pytest.raises(TooManyOpenFilesError):
            lg.delete_records(2)
    assert not manager.failures.offline
    assert lg.delete_records(4) == 4  # descriptors back: served
    assert [r.offset for r in read_all(lg)] == [4, 5]


def test_an_emfile_from_any_log_operation_keeps_the_directory_online(manager):
    """Whatever opened the file (os.open, os.listdir, a library), an EMFILE
    under a Log method is the process's shortage, as under the guard."""
    lg = _filled(manager)
    with injected("replace", errno.EMFILE):
        with pytest.raises(TooManyOpenFilesError):
            lg.delete_records(2)
    assert not manager.failures.offline
    with injected("replace", errno.EIO):  # a disk's fault still takes it offline
        with pytest.raises(StorageError):
            lg.delete_records(4)
    assert manager.is_offline("t", 0)


def test_checkpoints_out_of_descriptors_give_back_cached_segment_files_first(manager, tmp_path):
    for topic in ("t", "u", "v", "w"):
        lg = _filled(manager, topic)
        read_all(lg)  # its .log in the cache
    assert len(open_files.CACHE) >= 2
    target = tmp_path / "a" / "some-checkpoint"
    with no_descriptors_left():
        write_atomically(target, b"0\n0\n")
        fsync_dir(tmp_path / "a")
    assert target.read_bytes() == b"0\n0\n"


def test_compaction_out_of_descriptors_is_put_off_not_given_up(tmp_path, caplog):
    """Marked uncleanable, a log would never be compacted again until a
    restart (__consumer_offsets would grow without bound)."""
    manager = LogManager([tmp_path], COMPACT)
    manager.startup()
    lg = manager.get_or_create_log("s", 0)
    for i in range(20):
        lg.append_as_leader(build_batch([(b"k", b"v%d" % i + b"." * 40, BASE_TS + i, ())]), leader_epoch=0)
    open_files.CACHE.shrink(0)
    with no_descriptors_left():
        assert manager.compact(now=BASE_TS + 10**6) == 0
    assert not manager.uncleanable
    assert "out of file descriptors" in caplog.text
    assert manager.compact(now=BASE_TS + 10**6) > 0  # the next pass does it
    assert len(read_all(lg)) < 20
    manager.shutdown()


def test_deleting_a_partition_out_of_descriptors_still_removes_it(manager):
    """The directory is renamed, its fsync cannot open it: before, the error
    left delete_log (and the caller acting on the metadata) with the renamed
    directory known to nobody, kept until a restart."""
    lg = _filled(manager)
    data_dir = lg.dir.parent
    open_files.CACHE.shrink(0)
    with no_descriptors_left():
        manager.delete_log("t", 0, now=0)
    assert manager.get_log("t", 0) is None
    manager.cleanup(now=10**12)  # past file.delete.delay.ms
    assert not any(p.name.startswith("t-0") for p in data_dir.iterdir())
    assert not manager.failures.offline


def test_out_of_descriptors_is_warned_once_in_a_while_not_at_every_open(tmp_path, caplog):
    open_files.CACHE.shrink(0)
    with caplog.at_level(logging.WARNING, logger="riverlog.broker.storage.open_files"):
        with no_descriptors_left():
            for _ in range(20):  # as many requests, each opening a file
                with pytest.raises(TooManyOpenFilesError):
                    open_files.open_fd(tmp_path / "x", os.O_RDWR | os.O_CREAT)
    lines = [r for r in caplog.records if "out of file descriptors" in r.getMessage()]
    assert len(lines) <= 1  # one per 10 s (none if another test warned just before)


def test_a_segment_hands_out_only_a_descriptor_it_holds(tmp_path):
    """A descriptor from the cache of open files is no one's to keep: once
    evicted it is closed and its number may be another file's."""
    config = LogConfig()
    shared = LogSegment(tmp_path, 0, config)
    with pytest.raises(ValueError):
        shared.fd
    own = LogSegment(tmp_path, 100, config, keep_open=True)
    fd = own.fd
    open_files.CACHE.shrink(0)
    assert os.fstat(fd).st_ino == os.stat(own.log_path).st_ino
    shared.close()
    own.close()
