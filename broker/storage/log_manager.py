"""LogManager: every partition log under one or more data directories.

Each data directory holds, besides the ``<topic>-<partition>/`` directories::

    recovery-point-offset-checkpoint   topic partition offset: flushed up to here
    log-start-offset-checkpoint        topic partition offset: log start offsets
    .riverlog_cleanshutdown            present only after a clean shutdown
    .lock                              flock'ed while a broker owns the directory

On start, logs of a directory with the clean-shutdown marker are opened
without scanning; otherwise every segment past the recovery point is scanned
and cut at the first bad batch. The marker is removed once loading is done,
so a crash from then on is seen as one. Periodic work (flush.ms, checkpoints,
retention, compaction, delayed file deletion) is exposed as plain methods
taking the current time; the broker's Trio driver calls them on timers.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import uuid
from pathlib import Path

from broker.storage.cleaner import clean_log
from broker.storage.checkpoint import CorruptCheckpointError, fsync_dir, read_offsets, write_offsets
from broker.storage.errors import StorageError
from broker.storage.log import Log, now_ms, parse_partition_dir
from broker.storage.log_config import LogConfig

log = logging.getLogger(__name__)

RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_CHECKPOINT = "log-start-offset-checkpoint"
CLEAN_SHUTDOWN_FILE = ".riverlog_cleanshutdown"
LOCK_FILE = ".lock"
DELETE_DIR_SUFFIX = "-delete"
MAX_FILE_NAME_BYTES = 255  # NAME_MAX of Linux file systems; topic names are ASCII
METADATA_TOPIC = "__cluster_metadata"  # its partition 0 directory is the metadata log's


MIN_CLEANABLE_DIRTY_RATIO = 0.5  # Kafka's default min.cleanable.dirty.ratio


def delete_dir_name(topic: str, partition: int) -> str:
    """``<topic>-<partition>.<uuid>-delete``, the topic cut short so the name
    fits a file name (as Kafka's LocalLog.logDeleteDirName): a 249-character
    topic plus the suffix would not, and a rename that fails would leave the
    partition behind for every later start."""
    suffix = f"-{partition}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}"
    return topic[: max(0, MAX_FILE_NAME_BYTES - len(suffix))] + suffix


class LogManager:
    def __init__(self, data_dirs: list[Path], default_config: LogConfig | None = None) -> None:
        if not data_dirs:
            raise ValueError("at least one data directory is needed")
        self.data_dirs = [Path(d) for d in data_dirs]
        self.default_config = default_config or LogConfig()
        self.topic_configs: dict[str, LogConfig] = {}
        self._logs: dict[tuple[str, int], Log] = {}
        self._log_dir_of: dict[tuple[str, int], Path] = {}
        self._locks: list[int] = []
        self._deleting: list[tuple[int, Log, Path]] = []  # (remove at ms, log, renamed dir)
        self.uncleanable: set[tuple[str, int]] = set()  # logs whose compaction failed
        self._clean_sizes: dict[tuple[str, int], int] = {}  # a log's size after its last pass
        self.had_clean_shutdown: dict[Path, bool] = {}

    # -- lifecycle -------------------------------------------------------------

    def startup(self) -> None:
        for data_dir in self.data_dirs:
            data_dir.mkdir(parents=True, exist_ok=True)
            self._lock(data_dir)
        for data_dir in self.data_dirs:
            self._load_dir(data_dir)

    def _lock(self, data_dir: Path) -> None:
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageError(f"{data_dir} is in use by another broker (could not lock {LOCK_FILE})") from None
        self._locks.append(fd)

    def _load_dir(self, data_dir: Path) -> None:
        marker = data_dir / CLEAN_SHUTDOWN_FILE
        clean = marker.exists()
        self.had_clean_shutdown[data_dir] = clean
        recovery_points = self._read_offsets_or_empty(data_dir / RECOVERY_POINT_CHECKPOINT)
        log_starts = self._read_offsets_or_empty(data_dir / LOG_START_CHECKPOINT)
        for entry in sorted(os.listdir(data_dir)):
            path = data_dir / entry
            if not path.is_dir():
                continue
            if entry.endswith(DELETE_DIR_SUFFIX):
                shutil.rmtree(path)  # a topic deletion that a crash interrupted
                continue
            try:
                tp = parse_partition_dir(entry)
            except ValueError:
                log.warning("ignoring %s: not a partition directory", path)
                continue
            if tp[0] == METADATA_TOPIC:
                # The metadata log lives here too, but is not a topic (as Kafka).
                # Only that name: "__cluster_metadata-x" is a legal topic's.
                continue
            if tp in self._logs:
                raise StorageError(f"partition {entry} is in both {self._log_dir_of[tp]} and {data_dir}")
            self._logs[tp] = Log(
                path,
                self.config_for(tp[0]),
                recovery_point=(recovery_points or {}).get(tp, 0),
                log_start_offset=(log_starts or {}).get(tp, 0),
                clean_shutdown=clean and recovery_points is not None,
            )
            self._log_dir_of[tp] = data_dir
        if clean:
            marker.unlink()
            fsync_dir(data_dir)

    @staticmethod
    def _read_offsets_or_empty(path: Path) -> dict[tuple[str, int], int] | None:
        try:
            return read_offsets(path)
        except CorruptCheckpointError as e:
            # Without it every log is scanned from its start: slower, never wrong.
            log.warning("%s; scanning all logs in full", e)
            return None

    def shutdown(self) -> None:
        """Clean shutdown: flush and close every log, checkpoint, leave the marker."""
        for log_ in self._logs.values():
            log_.close()
        self._remove_deleted(None)
        self.checkpoint()
        for data_dir in self.data_dirs:
            (data_dir / CLEAN_SHUTDOWN_FILE).touch()
            fsync_dir(data_dir)
        for fd in self._locks:
            os.close(fd)
        self._locks.clear()
        self._logs.clear()

    # -- logs --------------------------------------------------------------------

    def config_for(self, topic: str) -> LogConfig:
        return self.topic_configs.get(topic, self.default_config)

    def get_log(self, topic: str, partition: int) -> Log | None:
        return self._logs.get((topic, partition))

    def all_logs(self) -> list[Log]:
        return list(self._logs.values())

    def get_or_create_log(self, topic: str, partition: int, config: LogConfig | None = None) -> Log:
        tp = (topic, partition)
        if tp in self._logs:
            return self._logs[tp]
        if config is not None:
            self.topic_configs[topic] = config
        # The directory with the fewest partitions takes the new one (as Kafka).
        counts = {d: 0 for d in self.data_dirs}
        for d in self._log_dir_of.values():
            counts[d] += 1
        data_dir = min(self.data_dirs, key=lambda d: counts[d])
        new = Log(data_dir / f"{topic}-{partition}", self.config_for(topic))
        self._logs[tp] = new
        self._log_dir_of[tp] = data_dir
        return new

    def update_config(self, topic: str, config: LogConfig) -> None:
        self.topic_configs[topic] = config
        for (t, _), log_ in self._logs.items():
            if t == topic:
                log_.config = config
                for seg in log_.segments:
                    seg.config = config

    def delete_log(self, topic: str, partition: int, now: int | None = None) -> None:
        """Remove a partition: its directory is renamed to ``*-delete`` at once
        (gone for the broker, and for a restart), and removed with its open
        files after ``file.delete.delay.ms`` so reads in flight stay valid."""
        tp = (topic, partition)
        log_ = self._logs.pop(tp, None)
        if log_ is None:
            return
        self._log_dir_of.pop(tp)
        doomed = log_.dir.with_name(delete_dir_name(topic, partition))
        os.rename(log_.dir, doomed)
        log_.move_to(doomed)
        fsync_dir(doomed.parent)
        now = now_ms() if now is None else now
        self._deleting.append((now + log_.config.file_delete_delay_ms, log_, doomed))

    def _remove_deleted(self, now: int | None) -> int:
        """Close and remove deleted partitions whose delay is over (all if ``now`` is None)."""
        due = [(log_, path) for at, log_, path in self._deleting if now is None or at <= now]
        self._deleting = [entry for entry in self._deleting if now is not None and entry[0] > now]
        for log_, path in due:
            log_.close(flush=False)
            shutil.rmtree(path, ignore_errors=True)
        return len(due)

    # -- periodic work -------------------------------------------------------

    def checkpoint(self) -> None:
        """Write recovery points and log start offsets of every data directory."""
        for data_dir in self.data_dirs:
            mine = {tp: lg for tp, lg in self._logs.items() if self._log_dir_of[tp] == data_dir}
            write_offsets(data_dir / RECOVERY_POINT_CHECKPOINT, {tp: lg.recovery_point for tp, lg in mine.items()})
            write_offsets(data_dir / LOG_START_CHECKPOINT, {tp: lg.log_start_offset for tp, lg in mine.items()})

    def flush_due(self, now: int | None = None) -> int:
        now = now_ms() if now is None else now
        return sum(lg.flush_if_due(now) for lg in self._logs.values())

    def cleanup(self, now: int | None = None, high_watermarks: dict[tuple[str, int], int] | None = None) -> int:
        """Retention and delayed deletion of every log; returns segments deleted."""
        now = now_ms() if now is None else now
        deleted = 0
        for tp, lg in self._logs.items():
            hw = (high_watermarks or {}).get(tp)
            deleted += lg.delete_old_segments(now, hw)
            lg.delete_expired_files(now)
        self._remove_deleted(now)
        return deleted

    def compact(self, now: int | None = None, high_watermarks: dict[tuple[str, int], int] | None = None) -> int:
        """One compaction pass over every log with cleanup.policy compact; returns segments cleaned.

        A log whose pass fails (say, a batch whose records do not decode) is
        logged and marked uncleanable, as Kafka does, and the others go on.
        """
        now = now_ms() if now is None else now
        cleaned = 0
        for tp, lg in self._logs.items():
            if not lg.config.compact or tp in self.uncleanable:
                continue
            # Kafka's min.cleanable.dirty.ratio (0.5): a pass only once at least
            # half the log was written since the last one, so a compacted log
            # is not rewritten over and over for nothing.
            size = lg.size_bytes
            if size - self._clean_sizes.get(tp, 0) < MIN_CLEANABLE_DIRTY_RATIO * size:
                continue
            try:
                cleaned += clean_log(lg, now, high_watermark=(high_watermarks or {}).get(tp)).segments_cleaned
                self._clean_sizes[tp] = lg.size_bytes
            except Exception:
                log.exception("%s: compaction failed; the partition is marked uncleanable", lg.name)
                self.uncleanable.add(tp)
        return cleaned
