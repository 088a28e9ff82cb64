"""RaftStore: what write() persisted is what load() returns, across crashes.

A "crash" is dropping the store without close() and opening a new one on
the same directory; files are damaged the way a torn write or bit rot would.
"""

from __future__ import annotations

import json
import os

import pytest

from riverlog.broker.controller.raft.messages import Entry, HardState, Ready, Snapshot, SnapshotId
from riverlog.broker.controller.raft_store import (
    METADATA_DIR,
    QUORUM_STATE_FILE,
    RAFT_LOG_CONFIG,
    RaftStore,
    snapshot_file_name,
)
from riverlog.broker.storage.errors import StorageError
from riverlog.broker.storage.log_config import LogConfig
from riverlog.client.records import iter_batches


def entries(start: int, count: int, epoch: int, *, control: bool = False) -> list[Entry]:
    return [Entry(o, epoch, f"e{o}@{epoch}".encode(), control) for o in range(start, start + count)]


def reopen(tmp_path, **kw) -> RaftStore:
    return RaftStore(tmp_path, **kw)


def segment_files(tmp_path) -> list:
    return sorted((tmp_path / METADATA_DIR).glob("*.log"))


SMALL_SEGMENTS = LogConfig(retention_ms=-1, retention_bytes=-1, file_delete_delay_ms=0, segment_bytes=150)  # about one write per segment


def test_a_fresh_store_loads_empty(tmp_path):
    store = RaftStore(tmp_path)
    assert store.load() == (HardState(), None, [])
    assert (store.end_offset, store.log_start_offset) == (0, 0)
    assert (tmp_path / METADATA_DIR).is_dir()


def test_entries_and_hard_state_written_are_loaded_after_a_crash(tmp_path):
    store = RaftStore(tmp_path)
    written = entries(0, 3, 1) + entries(3, 2, 2)
    store.write(Ready(hard_state=HardState(2, 1, 1), entries=written[:3]))
    store.write(Ready(entries=written[3:]))
    assert store.end_offset == 5
    hard, snap, got = reopen(tmp_path).load()
    assert (hard, snap, got) == (HardState(2, 1, 1), None, written)


def test_quorum_state_is_kafka_json(tmp_path):
    RaftStore(tmp_path).write(Ready(hard_state=HardState(epoch=7, voted_for=2, leader_id=3)))
    doc = json.loads((tmp_path / METADATA_DIR / QUORUM_STATE_FILE).read_text())
    assert doc == {"leaderId": 3, "leaderEpoch": 7, "votedId": 2, "data_version": 0}


def test_each_entry_is_one_batch_stamped_with_its_epoch(tmp_path):
    # One batch per entry, so a truncation never has to cut a batch and
    # rewrite a durable prefix (see the module docstring).
    store = RaftStore(tmp_path)
    store.write(Ready(entries=entries(0, 2, 1) + entries(2, 1, 2, control=True) + entries(3, 3, 2)))
    data = store.log.read(0, 1 << 20).slice.read()
    shape = [(b.base_offset, b.last_offset, b.partition_leader_epoch, b.is_control) for b in iter_batches(data)]
    assert shape == [(0, 0, 1, False), (1, 1, 1, False), (2, 2, 2, True), (3, 3, 2, False), (4, 4, 2, False),
                     (5, 5, 2, False)]  # fmt: skip


def test_control_entries_stay_control_with_their_epochs(tmp_path):
    store = RaftStore(tmp_path)
    written = entries(0, 1, 1, control=True) + entries(1, 2, 1) + entries(3, 1, 4, control=True) + entries(4, 1, 4)
    store.write(Ready(entries=written))
    assert reopen(tmp_path).load()[2] == written


def test_truncation_then_append_replaces_the_divergent_tail(tmp_path):
    store = RaftStore(tmp_path)
    store.write(Ready(entries=entries(0, 3, 1) + entries(3, 3, 2)))
    store.write(Ready(truncate_to=3, entries=entries(3, 2, 3)))
    expected = entries(0, 3, 1) + entries(3, 2, 3)
    assert store.load()[2] == expected
    assert reopen(tmp_path).load()[2] == expected
    assert store.log.epoch_cache.entries() == [(1, 0), (3, 3)]


def test_truncation_keeps_the_entries_below_the_cut(tmp_path):
    store = RaftStore(tmp_path)
    store.write(Ready(entries=entries(0, 6, 1)))
    store.write(Ready(truncate_to=4))
    assert store.end_offset == 4
    assert reopen(tmp_path).load()[2] == entries(0, 4, 1)


def test_truncation_across_segments_does_not_come_back(tmp_path):
    store = RaftStore(tmp_path, config=SMALL_SEGMENTS)
    for i in range(6):
        store.write(Ready(entries=entries(i * 3, 3, 1)))
    assert len(segment_files(tmp_path)) > 2
    store.write(Ready(truncate_to=4))
    assert reopen(tmp_path, config=SMALL_SEGMENTS).load()[2] == entries(0, 4, 1)


def test_truncation_just_after_the_snapshot_end(tmp_path):
    store = RaftStore(tmp_path)
    store.write(Ready(entries=entries(0, 8, 1)))
    snap = Snapshot(SnapshotId(4, 1), b"s")
    store.save_snapshot(snap)
    store.write(Ready(truncate_to=6, entries=entries(6, 1, 2)))
    assert store.load()[2] == entries(4, 2, 1) + entries(6, 1, 2)
    store.write(Ready(truncate_to=4, entries=entries(4, 1, 3)))
    assert (store.log_start_offset, store.end_offset) == (4, 5)
    assert reopen(tmp_path).load() == (HardState(), snap, entries(4, 1, 3))


def test_entries_must_start_at_the_log_end(tmp_path):
    store = RaftStore(tmp_path)
    store.write(Ready(entries=entries(0, 2, 1)))
    with pytest.raises(AssertionError):
        store.write(Ready(entries=entries(3, 1, 1)))


def test_a_torn_log_tail_is_cut_and_earlier_entries_survive(tmp_path):
    store = RaftStore(tmp_path)
    store.write(Ready(entries=entries(0, 3, 1)))
    store.write(Ready(entries=entries(3, 3, 1)))
    (seg,) = segment_files(tmp_path)
    os.truncate(seg, seg.stat().st_size - 5)  # into the last entry's batch
    again = reopen(tmp_path)
    assert again.load()[2] == entries(0, 3, 1) + entries(3, 2, 1)
    assert again.end_offset == 5
    again.write(Ready(entries=entries(5, 1, 2)))  # appends go on from the cut
    assert reopen(tmp_path).load()[2] == entries(0, 3, 1) + entries(3, 2, 1) + entries(5, 1, 2)


def test_a_corrupt_log_tail_is_cut(tmp_path):
    store = RaftStore(tmp_path)
    store.write(Ready(entries=entries(0, 2, 1)))
    store.write(Ready(entries=entries(2, 2, 1)))
    (seg,) = segment_files(tmp_path)
    raw = bytearray(seg.read_bytes())
    raw[-3] ^= 0xFF  # inside the last batch's records: its CRC fails
    seg.write_bytes(bytes(raw))
    assert reopen(tmp_path).load()[2] == entries(0, 2, 1) + entries(2, 1, 1)


def test_snapshot_in_a_ready_replaces_the_whole_log(tmp_path):
    store = RaftStore(tmp_path)
    store.write(Ready(entries=entries(0, 5, 1)))
    snap = Snapshot(SnapshotId(10, 2), b"state@10")
    store.write(Ready(snapshot=snap, entries=entries(10, 2, 2)))
    assert (store.log_start_offset, store.end_offset) == (10, 12)
    assert reopen(tmp_path).load() == (HardState(), snap, entries(10, 2, 2))


def test_an_installed_snapshot_below_the_log_end_drops_the_log_after_it_too(tmp_path):
    store = RaftStore(tmp_path)
    store.write(Ready(entries=entries(0, 8, 1)))
    snap = Snapshot(SnapshotId(4, 3), b"leader state")
    store.write(Ready(snapshot=snap))
    assert reopen(tmp_path).load() == (HardState(), snap, [])


def test_snapshot_round_trip_with_later_entries(tmp_path):
    store = RaftStore(tmp_path)
    store.write(Ready(hard_state=HardState(1, 0, 0), entries=entries(0, 6, 1)))
    snap = Snapshot(SnapshotId(4, 1), bytes(range(256)) * 10)
    store.save_snapshot(snap)
    assert store.log_start_offset == 4
    assert reopen(tmp_path).load() == (HardState(1, 0, 0), snap, entries(4, 2, 1))


def test_save_snapshot_deletes_the_covered_prefix_yet_load_returns_snapshot_and_later_entries(tmp_path):
    store = RaftStore(tmp_path, config=SMALL_SEGMENTS)
    for i in range(8):
        store.write(Ready(entries=entries(i * 3, 3, 1)))
    before = segment_files(tmp_path)
    snap = Snapshot(SnapshotId(17, 1), b"state@17")
    store.save_snapshot(snap)
    after = segment_files(tmp_path)
    assert len(after) < len(before)
    assert int(after[0].name.split(".")[0]) <= 17 and not [p for p in after if p.name.endswith(".deleted")]
    hard, got_snap, got = reopen(tmp_path, config=SMALL_SEGMENTS).load()
    assert (got_snap, got) == (snap, entries(17, 7, 1))


def test_a_snapshot_whose_epoch_disagrees_with_the_log_is_refused(tmp_path):
    store = RaftStore(tmp_path)
    store.write(Ready(entries=entries(0, 3, 1) + entries(3, 3, 2)))
    with pytest.raises(AssertionError):
        store.save_snapshot(Snapshot(SnapshotId(3, 2), b"epoch 2 starts at 3, entry 2 is epoch 1"))
    store.save_snapshot(Snapshot(SnapshotId(3, 1), b"ok"))


def test_save_snapshot_deletes_older_snapshot_files(tmp_path):
    store = RaftStore(tmp_path)
    store.write(Ready(entries=entries(0, 6, 1)))
    store.save_snapshot(Snapshot(SnapshotId(2, 1), b"a"))
    store.save_snapshot(Snapshot(SnapshotId(5, 1), b"b"))
    names = sorted(p.name for p in (tmp_path / METADATA_DIR).glob("*.checkpoint"))
    assert names == [snapshot_file_name(SnapshotId(5, 1))] == ["00000000000000000005-0000000001.checkpoint"]


def test_a_corrupt_snapshot_falls_back_to_the_older_one(tmp_path):
    store = RaftStore(tmp_path)
    store.write(Ready(entries=entries(0, 6, 1)))
    old = Snapshot(SnapshotId(2, 1), b"state@2")
    store.save_snapshot(old)
    old_path = tmp_path / METADATA_DIR / snapshot_file_name(old.id)
    old_bytes = old_path.read_bytes()
    new = Snapshot(SnapshotId(5, 1), b"state@5")
    store.save_snapshot(new)
    old_path.write_bytes(old_bytes)  # as if the older one had not been deleted yet
    new_path = tmp_path / METADATA_DIR / snapshot_file_name(new.id)
    raw = bytearray(new_path.read_bytes())
    raw[-6] ^= 0x01  # a bit flipped in the data: the CRC-32C catches it
    new_path.write_bytes(bytes(raw))
    _, snap, got = reopen(tmp_path).load()
    assert (snap, got) == (old, entries(2, 4, 1))


def test_a_torn_snapshot_is_ignored(tmp_path):
    store = RaftStore(tmp_path)
    store.write(Ready(entries=entries(0, 6, 1)))
    path = tmp_path / METADATA_DIR / snapshot_file_name(SnapshotId(3, 1))
    store.save_snapshot(Snapshot(SnapshotId(3, 1), b"x" * 100))
    os.truncate(path, 40)
    store.close()
    # No valid snapshot, and the one segment still starts at 0: all comes back from the log.
    assert reopen(tmp_path).load() == (HardState(), None, entries(0, 6, 1))
    assert (tmp_path / METADATA_DIR / (path.name + ".corrupt")).exists()


def test_a_lost_snapshot_with_its_log_prefix_gone_is_a_storage_error(tmp_path):
    store = RaftStore(tmp_path, config=SMALL_SEGMENTS)
    for i in range(8):
        store.write(Ready(entries=entries(i * 3, 3, 1)))
    store.save_snapshot(Snapshot(SnapshotId(20, 1), b"s"))
    (tmp_path / METADATA_DIR / snapshot_file_name(SnapshotId(20, 1))).write_bytes(b"garbage")
    with pytest.raises(StorageError):
        reopen(tmp_path, config=SMALL_SEGMENTS)


def test_a_crash_after_installing_a_snapshot_before_cutting_the_log_is_finished_on_load(tmp_path):
    store = RaftStore(tmp_path)
    store.write(Ready(entries=entries(0, 8, 1)))
    store.close()
    # The snapshot file is durable but the old log (whose epoch at offset 5 disagrees) is still there.
    other = tmp_path / "other"
    snap = Snapshot(SnapshotId(6, 3), b"leader")
    RaftStore(other).write(Ready(snapshot=snap))
    name = snapshot_file_name(snap.id)
    (tmp_path / METADATA_DIR / name).write_bytes((other / METADATA_DIR / name).read_bytes())
    again = reopen(tmp_path)
    assert again.load() == (HardState(), snap, [])
    assert (again.log_start_offset, again.end_offset) == (6, 6)


def test_a_crash_after_saving_a_snapshot_before_deleting_the_prefix_is_finished_on_load(tmp_path):
    store = RaftStore(tmp_path, config=SMALL_SEGMENTS)
    for i in range(8):
        store.write(Ready(entries=entries(i * 3, 3, 1)))
    store.close()
    before = segment_files(tmp_path)
    snap = Snapshot(SnapshotId(17, 1), b"state@17")
    other = tmp_path / "other"
    RaftStore(other).write(Ready(snapshot=snap))
    name = snapshot_file_name(snap.id)
    (tmp_path / METADATA_DIR / name).write_bytes((other / METADATA_DIR / name).read_bytes())
    again = reopen(tmp_path, config=SMALL_SEGMENTS)
    assert again.load() == (HardState(), snap, entries(17, 7, 1))
    assert again.log_start_offset == 17 and len(segment_files(tmp_path)) < len(before)


def test_hard_state_survives_a_crash_mid_write(tmp_path):
    store = RaftStore(tmp_path)
    store.write(Ready(hard_state=HardState(3, 2, -1)))
    tmp = tmp_path / METADATA_DIR / (QUORUM_STATE_FILE + ".tmp")
    tmp.write_bytes(b'{"leaderId": 9, "leader')  # the next write, torn before its rename
    assert reopen(tmp_path).load()[0] == HardState(3, 2, -1)
    assert not tmp.exists()


def test_a_stray_snapshot_temp_file_is_ignored_and_removed(tmp_path):
    store = RaftStore(tmp_path)
    store.write(Ready(entries=entries(0, 3, 1)))
    tmp = tmp_path / METADATA_DIR / (snapshot_file_name(SnapshotId(2, 1)) + ".tmp")
    tmp.write_bytes(b"half a snapsh")
    assert reopen(tmp_path).load() == (HardState(), None, entries(0, 3, 1))
    assert not tmp.exists()


def test_an_append_fsyncs_only_the_segment_it_wrote(tmp_path, monkeypatch):
    store = RaftStore(tmp_path)
    store.write(Ready(entries=entries(0, 1, 1)))
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd))[1])
    store.write(Ready(entries=entries(1, 3, 1)))
    assert [os.path.basename(p) for p in synced] == ["00000000000000000000.log"]


def test_a_ready_with_nothing_durable_does_not_fsync(tmp_path, monkeypatch):
    store = RaftStore(tmp_path)
    store.write(Ready(hard_state=HardState(1, 1, -1), entries=entries(0, 1, 1)))
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    store.write(Ready(committed=entries(0, 1, 1)))
    store.write(Ready(hard_state=HardState(1, 1, -1)))  # unchanged: nothing to write
    store.write(Ready(truncate_to=5))  # at or past the log end: nothing to cut
    assert calls == []
    store.write(Ready(entries=entries(1, 1, 1)))
    assert calls


def test_default_config_never_deletes_by_retention():
    assert RAFT_LOG_CONFIG.retention_ms == -1 and RAFT_LOG_CONFIG.retention_bytes == -1


@pytest.mark.parametrize("size", [0, 1, 63, 64, 127, 128, 16383, 16384, 100_000])
@pytest.mark.parametrize("control", [False, True])
def test_the_store_s_one_record_batch_is_byte_for_byte_what_build_batch_makes(size, control):
    from riverlog.broker.controller.raft_store import one_record_batch
    from riverlog.client.records import NewRecord, build_batch

    value = bytes(range(256)) * (size // 256) + bytes(size % 256)
    expected = build_batch([NewRecord(None, value, 1_700_000_000_123)], base_offset=2**40 + 5,
                           partition_leader_epoch=9, is_control=control)  # fmt: skip
    assert one_record_batch(2**40 + 5, 9, value, control, 1_700_000_000_123) == expected
