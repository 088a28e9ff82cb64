"""RaftStore: the durable state of one Raft node, in ``<data dir>/__cluster_metadata-0/``.

The driver restarts a node from ``load()`` and persists each ``Ready`` with
``write()`` before it sends anything (see ``raft/messages.py``). Files:

- The log: a storage :class:`~broker.storage.log.Log` (segments, indexes,
  crash recovery, leader-epoch-checkpoint), never deleted by retention.
  ``write()`` fsyncs the ``.log`` file it wrote (and the directory when a
  segment was created or dropped), not the indexes: the log is always
  opened as after a crash, every batch checked and the indexes rebuilt, so
  a torn tail is always cut. Each entry is one record batch v2 of one record,
  uncompressed: base offset = the entry's offset, partitionLeaderEpoch =
  its epoch, key null, value = ``entry.data``; a control entry goes in
  a control batch (attribute bit 5 of Kafka's record batch). Batches carry their offsets,
  so entries land at exactly their offsets (append_as_follower).
- Snapshots: ``<20-digit end offset>-<10-digit epoch>.checkpoint`` (Kafka's
  names), holding ``magic "RLSN", int64 end offset, int32 epoch, int64
  length`` (big endian), the data, then the CRC-32C of all that before it. A
  file that fails its checks is renamed ``.corrupt`` and an older one used.
  The newest valid snapshot fixes the log start offset: the log is not
  trusted to remember it, so a crash mid-way through ``save_snapshot`` or an
  installed snapshot is finished on the next open.
- ``quorum-state``: JSON as Kafka's (leaderId, leaderEpoch, votedId,
  data_version). Snapshots and quorum-state are written to ``<name>.tmp``,
  fsynced, renamed, and the directory fsynced; a stray ``.tmp`` is removed.

Truncation: each entry is its own batch, so a divergence point is always a
batch boundary and truncating never rewrites an entry that was durable (a
kept prefix re-appended after cutting its batch could be lost by a crash
before the fsync, though this node may have acknowledged it: that is how a
committed entry loses a copy). About 70 bytes per entry buys that.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
from pathlib import Path

from crc32c import crc32c

from riverlog.broker.clock import wall_ms
from riverlog.broker.controller.raft.messages import Entry, HardState, Ready, Snapshot, SnapshotId
from riverlog.broker.storage.checkpoint import fsync_dir, write_atomically
from riverlog.broker.storage.errors import StorageError
from riverlog.broker.storage.log import Log
from riverlog.broker.storage.log_config import LogConfig
from riverlog.client.records import iter_batches
from riverlog.client.records.layout import ATTR_CONTROL, CRC_START, HEAD_STRUCT, LOG_OVERHEAD, MAGIC, TAIL_STRUCT

log = logging.getLogger(__name__)

METADATA_DIR = "__cluster_metadata-0"
QUORUM_STATE_FILE = "quorum-state"
# No retention, no fsync by count: write() fsyncs once per call, after all of its appends.
RAFT_LOG_CONFIG = LogConfig(retention_ms=-1, retention_bytes=-1, file_delete_delay_ms=0)
_SNAPSHOT_FILE = re.compile(r"^(\d{20})-(\d{10})\.checkpoint$")
_SNAPSHOT_HEADER = struct.Struct(">4sqiq")  # magic, end offset, epoch, data length
_SNAPSHOT_MAGIC = b"RLSN"
_CRC = struct.Struct(">I")
_READ_BYTES = 1 << 20



def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def one_record_batch(offset: int, epoch: int, value: bytes, control: bool, timestamp: int) -> bytes:
    """A record batch v2 holding one record (key null, no headers): what
    ``build_batch`` makes for it, byte for byte, without its per-batch
    generality (a tenth of the time; the store writes one per entry)."""
    # record: attributes 0, timestamp delta 0, offset delta 0, key length -1 (zigzag 1), value, 0 headers
    body = b"\x00\x00\x00\x01" + _uvarint(len(value) << 1) + value + b"\x00"
    record = _uvarint(len(body) << 1) + body
    tail = TAIL_STRUCT.pack(ATTR_CONTROL if control else 0, 0, timestamp, timestamp, -1, -1, -1, 1) + record
    return HEAD_STRUCT.pack(offset, CRC_START + len(tail) - LOG_OVERHEAD, epoch, MAGIC, crc32c(tail)) + tail


def snapshot_file_name(snapshot_id: SnapshotId) -> str:
    return f"{snapshot_id.end_offset:020d}-{snapshot_id.epoch:010d}.checkpoint"




class RaftStore:
    def __init__(self, data_dir: Path, *, config: LogConfig = RAFT_LOG_CONFIG) -> None:
        assert config.retention_ms == -1 and config.retention_bytes == -1, "the Raft log deletes only below snapshots"
        self.dir = Path(data_dir) / METADATA_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self._snapshot = self._newest_valid_snapshot()
        self._hard_state = self._read_hard_state()
        # keep_open: the metadata log holds its .log files open (few: it is one
        # partition), so appends, reads and fsyncs need no descriptor. Making a
        # segment (at a roll: its .log, its indexes and their maps) still opens
        # files: out of descriptors then, persisting fails and the node stops,
        # as on any write it cannot make (raft_driver.py).
        self.log = Log(self.dir, config, recovery_point=0, log_start_offset=0, clean_shutdown=False, keep_open=True)
        self._align_log_with_snapshot()

    # -- opening -----------------------------------------------------------------

    def _newest_valid_snapshot(self) -> Snapshot | None:
        ids = []
        for name in os.listdir(self.dir):
            m = _SNAPSHOT_FILE.match(name)
            if m:
                ids.append(SnapshotId(int(m.group(1)), int(m.group(2))))
        for sid in sorted(ids, key=lambda s: (s.end_offset, s.epoch), reverse=True):
            path = self.dir / snapshot_file_name(sid)
            data = _read_snapshot(path, sid)
            if data is not None:
                return Snapshot(sid, data)
            log.warning("%s: snapshot fails its checks; renamed to .corrupt, trying an older one", path)
            os.replace(path, path.with_name(path.name + ".corrupt"))
        return None

    def _align_log_with_snapshot(self) -> None:
        """Make the log start at the snapshot's end offset, finishing what a crash cut short.

        The log's entries after the snapshot are kept only if the entry just
        before the snapshot's end has the snapshot's epoch (Raft's
        InstallSnapshot rule); otherwise they predate an installed snapshot.
        """
        start = self._snapshot.id.end_offset if self._snapshot else 0
        if self.log.log_start_offset > start:
            raise StorageError(
                f"{self.dir}: the log starts at {self.log.log_start_offset} but the newest valid snapshot "
                f"ends at {start}: entries in between are lost"
            )
        if self.log.log_end_offset < start or not self._log_matches(self._snapshot.id if self._snapshot else None):
            self.log.truncate_fully_and_start_at(start)
            self._finish_deletes()
        elif start > self.log.log_start_offset:
            self.log.delete_records(start)
            self._finish_deletes()

    def _log_matches(self, snapshot_id: SnapshotId | None) -> bool:
        """Whether the log's entry just before the snapshot's end has its epoch
        (vacuously true when the log does not hold that entry)."""
        if snapshot_id is None or snapshot_id.end_offset <= self.log.log_start_offset:
            return True
        data = self.log.read(snapshot_id.end_offset - 1, 1)
        assert data.slice is not None, f"no batch holds offset {snapshot_id.end_offset - 1}"
        return next(iter_batches(data.slice.read())).partition_leader_epoch == snapshot_id.epoch

    def _read_hard_state(self) -> HardState:
        try:
            raw = (self.dir / QUORUM_STATE_FILE).read_bytes()
        except FileNotFoundError:
            return HardState()
        try:
            obj = json.loads(raw)
            return HardState(epoch=obj["leaderEpoch"], voted_for=obj["votedId"], leader_id=obj["leaderId"])
        except (ValueError, KeyError, TypeError) as e:
            # Written atomically, so never torn: damage here is not a crash's doing.
            raise StorageError(f"{self.dir / QUORUM_STATE_FILE} is unreadable: {e}") from e

    # -- the API -----------------------------------------------------------------

    @property
    def end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    def load(self) -> tuple[HardState, Snapshot | None, list[Entry]]:
        """What was durable: the quorum state, the newest valid snapshot, the entries after it."""
        return self._hard_state, self._snapshot, self._read_entries(self.log.log_start_offset)

    def write(self, ready: Ready) -> None:
        """Persist steps 1-5 of ``ready``; everything is durable when this returns."""
        if ready.snapshot is not None:
            self._install_snapshot(ready.snapshot)  # durable on its own
        active_before = self.log.active
        written_from = None  # the lowest offset whose segment this write changed
        if ready.truncate_to is not None and ready.truncate_to < self.log.log_end_offset:
            written_from = self._truncate(ready.truncate_to)
        if ready.entries:
            self._append(ready.entries)
            written_from = ready.entries[0].offset if written_from is None else written_from
        if ready.hard_state is not None and ready.hard_state != self._hard_state:
            self._write_hard_state(ready.hard_state)
        if written_from is not None:
            self._sync_segments_from(written_from)
            if self.log.active is not active_before:
                # A roll created a segment file, or a truncation renamed some to .deleted.
                self._finish_deletes()

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store a snapshot of this node's state machine, then drop what it covers."""
        end = snapshot.id.end_offset
        assert self._snapshot is None or end >= self._snapshot.id.end_offset, "snapshots only move forward"
        assert self.log.log_start_offset <= end <= self.log.log_end_offset, (
            f"snapshot end {end} outside the log [{self.log.log_start_offset}, {self.log.log_end_offset}]"
        )
        # Else the next open would take the log after it for another leader's and drop it.
        assert self._log_matches(snapshot.id), f"snapshot {snapshot.id} disagrees with the log's epoch at {end - 1}"
        self._store_snapshot_file(snapshot)
        self.log.delete_records(end)
        self._delete_snapshots_except(snapshot.id)
        self._finish_deletes()

    def close(self) -> None:
        self.log.close(flush=True)

    # -- writing -----------------------------------------------------------------

    def _install_snapshot(self, snapshot: Snapshot) -> None:
        """A snapshot from the leader replaces the whole log: it restarts at its end offset."""
        self._store_snapshot_file(snapshot)
        self.log.truncate_fully_and_start_at(snapshot.id.end_offset)
        self._delete_snapshots_except(snapshot.id)
        self._finish_deletes()

    def _store_snapshot_file(self, snapshot: Snapshot) -> None:
        sid = snapshot.id
        body = _SNAPSHOT_HEADER.pack(_SNAPSHOT_MAGIC, sid.end_offset, sid.epoch, len(snapshot.data)) + snapshot.data
        write_atomically(self.dir / snapshot_file_name(sid), body + _CRC.pack(crc32c(body)))
        self._snapshot = snapshot

    def _delete_snapshots_except(self, newest: SnapshotId) -> None:
        """Older snapshots are superseded; a newer one cannot exist (asserted by
        save_snapshot, and an installed snapshot replaces the whole log)."""
        keep = snapshot_file_name(newest)
        for name in os.listdir(self.dir):
            if name != keep and _SNAPSHOT_FILE.match(name):
                (self.dir / name).unlink()

    def _truncate(self, offset: int) -> int:
        """Cut the log to end exactly at ``offset``; Log cuts whole batches, so a
        batch straddling ``offset`` loses its head too, which is appended again.
        Returns the lowest offset rewritten."""
        assert offset >= self.log.log_start_offset, f"truncation to {offset} below the log start"
        first = next(iter_batches(self.log.read(offset, 1).slice.read()))
        kept = [e for e in self._decode(first) if e.offset < offset] if first.base_offset < offset else []
        self.log.truncate_to(offset)
        if kept:
            self._append(kept)
        assert self.log.log_end_offset == offset, (self.log.log_end_offset, offset)
        return kept[0].offset if kept else offset

    def _sync_segments_from(self, offset: int) -> None:
        """fsync the .log files holding ``offset`` and after: one file in the usual
        write. Indexes are not synced: every open rebuilds them from the batches."""
        segments = self.log.segments
        for i, seg in enumerate(segments):
            if i + 1 == len(segments) or segments[i + 1].base_offset > offset:
                try:
                    os.fsync(seg.fd)
                except OSError as e:
                    raise StorageError(f"fsync of {seg.log_path} failed: {e}") from e

    def _append(self, entries: list[Entry]) -> None:
        assert entries[0].offset == self.log.log_end_offset, (
            f"entries start at {entries[0].offset}, the log ends at {self.log.log_end_offset}"
        )
        now = wall_ms()
        # one batch each: see "Truncation" in the module docstring
        batches = [one_record_batch(e.offset, e.epoch, e.data, e.control, now) for e in entries]
        info = self.log.append_as_follower(b"".join(batches))
        assert info.last_offset == entries[-1].offset, "entries must be contiguous"

    def _write_hard_state(self, state: HardState) -> None:
        doc = {"leaderId": state.leader_id, "leaderEpoch": state.epoch, "votedId": state.voted_for, "data_version": 0}
        write_atomically(self.dir / QUORUM_STATE_FILE, json.dumps(doc).encode())
        self._hard_state = state

    def _finish_deletes(self) -> None:
        """Make dropped segments' renames durable, then remove their files."""
        fsync_dir(self.dir)
        self.log.delete_expired_files(wall_ms() + 1)

    # -- reading -----------------------------------------------------------------

    def _read_entries(self, start: int) -> list[Entry]:
        out: list[Entry] = []
        offset = start
        while offset < self.log.log_end_offset:
            data = self.log.read(offset, _READ_BYTES)
            assert data.slice is not None, f"no batch readable at offset {offset}"
            for batch in iter_batches(data.slice.read()):
                out += (e for e in self._decode(batch) if e.offset >= offset)
                offset = batch.next_offset
        return out

    @staticmethod
    def _decode(batch) -> list[Entry]:
        epoch, control = batch.partition_leader_epoch, batch.is_control
        return [Entry(r.offset, epoch, bytes(r.value or b""), control) for r in batch.records()]


def _read_snapshot(path: Path, sid: SnapshotId) -> bytes | None:
    """The snapshot's data, or None if the file is torn, corrupt, or not what its name says."""
    raw = path.read_bytes()
    if len(raw) < _SNAPSHOT_HEADER.size + _CRC.size:
        return None
    body, (crc,) = raw[: -_CRC.size], _CRC.unpack_from(raw, len(raw) - _CRC.size)
    magic, end, epoch, length = _SNAPSHOT_HEADER.unpack_from(body)
    if magic != _SNAPSHOT_MAGIC or (end, epoch) != (sid.end_offset, sid.epoch) or crc32c(body) != crc:
        return None
    if length != len(body) - _SNAPSHOT_HEADER.size:
        return None
    return body[_SNAPSHOT_HEADER.size :]
