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

A storage error on a directory takes it offline (log_dir_failure.py): loading
it at start, a log's operation, a checkpoint. Its partitions stay registered
to it (so none is made again elsewhere) and answer KAFKA_STORAGE_ERROR; the
periodic work skips it; a clean shutdown leaves no marker in it, so its logs
are recovered at the next start. ``retry_offline_dirs`` brings back those that
failed for want of space.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import uuid
from pathlib import Path

from riverlog.broker.clock import wall_ms
from riverlog.broker.storage.cleaner import clean_log, log_facts
from riverlog.broker.storage.cleaner_choice import logs_to_clean
from riverlog.broker.storage.checkpoint import CorruptCheckpointError, fsync_dir, read_offsets, write_offsets
from riverlog.broker.storage.errors import StorageError, TooManyOpenFilesError, is_out_of_descriptors
from riverlog.broker.storage.log import MAX_FILE_NAME_BYTES, Log, parse_partition_dir
from riverlog.broker.storage.log_config import LogConfig
from riverlog.broker.storage.log_dir_failure import LogDirFailures, errno_of
from riverlog.broker.storage.log_dir_retry import LogDirRetry
from riverlog.broker.storage.space_reserve import SpaceReserve
from riverlog.broker.throttled_log import ThrottledLog

log = logging.getLogger(__name__)

RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_CHECKPOINT = "log-start-offset-checkpoint"
CLEAN_SHUTDOWN_FILE = ".riverlog_cleanshutdown"
LOCK_FILE = ".lock"
DELETE_DIR_SUFFIX = "-delete"
METADATA_TOPIC = "__cluster_metadata"  # its partition 0 directory is the metadata log's


def delete_dir_name(topic: str, partition: int) -> str:
    """``<topic>-<partition>.<uuid>-delete``, the topic cut short so the name
    fits a file name (as Kafka's LocalLog.logDeleteDirName): a 249-character
    topic plus the suffix would not, and a rename that fails would leave the
    partition behind for every later start."""
    suffix = f"-{partition}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}"
    return topic[: max(0, MAX_FILE_NAME_BYTES - len(suffix))] + suffix


class LogManager(LogDirRetry):
    """The logs of every data directory. Bringing back a directory that went
    offline for want of space is in log_dir_retry.py."""

    def __init__(self, data_dirs: list[Path], default_config: LogConfig | None = None) -> None:
        if not data_dirs:
            raise ValueError("at least one data directory is needed")
        self.data_dirs = [Path(d) for d in data_dirs]
        self.default_config = default_config or LogConfig()
        self.topic_configs: dict[str, LogConfig] = {}
        self._logs: dict[tuple[str, int], Log] = {}
        self._log_dir_of: dict[tuple[str, int], Path] = {}
        self._locks: list[int] = []
        self._locked_dirs: set[Path] = set()
        self._deleting: list[tuple[int, Log, Path]] = []  # (remove at ms, log, renamed dir)
        self.uncleanable: set[tuple[str, int]] = set()  # logs whose compaction failed
        self.had_clean_shutdown: dict[Path, bool] = {}
        self.failures = LogDirFailures()
        self.failures.on_offline = self._on_offline
        self.metadata_reserve: SpaceReserve | None = None  # the broker sets it (space_reserve.py)
        self.clock_ms = wall_ms  # for the retry backoff; tests give their own
        # Of a directory offline: the recovery points and log start offsets its
        # logs had in memory, kept until a reload succeeds. Its checkpoints on
        # disk are older (an offline directory is not checkpointed): a log
        # start offset read back from them would bring deleted records back.
        self._offsets_while_offline: dict[Path, tuple[dict, dict]] = {}
        self._came_back_ms: dict[Path, int] = {}  # when each directory last came back online
        self._retry_backoff_ms: dict[Path, int] = {}
        self._next_retry_ms: dict[Path, int] = {}  # no reload attempt before then
        self._reload_put_off = ThrottledLog(log)  # retried every second while out of descriptors

    # -- lifecycle -------------------------------------------------------------

    def startup(self) -> None:
        for data_dir in self.data_dirs:
            try:
                data_dir.mkdir(parents=True, exist_ok=True)
                self._lock(data_dir)
            except OSError as e:
                self.failures.fail(data_dir, e, "opening the directory")
        for data_dir in self.data_dirs:
            if not self.failures.is_offline(data_dir):
                self._load_dir_or_fail(data_dir)

    def _load_dir_or_fail(self, data_dir: Path, recovery_points=None, log_starts=None) -> bool:
        """Load ``data_dir``'s logs; on a storage error take it offline with
        every partition found in it registered there. Returns whether it loaded.

        Any other error (a broken layout: a partition in two directories) stops
        a start. Reloading a directory that is offline (retry_offline_dirs, on
        the timer of a broker that serves) it keeps the directory offline until
        a restart instead, and out of descriptors it is tried again later."""
        reloading = self.failures.is_offline(data_dir)
        try:
            self._load_dir(data_dir, recovery_points, log_starts)
            return True
        except Exception as e:
            if reloading and is_out_of_descriptors(e):
                self._reload_put_off.warning("reloading log directory %s put off: %s", data_dir, e)
            elif isinstance(e, (OSError, StorageError, TooManyOpenFilesError)) and errno_of(e) is not None:
                self.failures.fail(data_dir, e, "loading its logs")
            elif reloading:  # the broker serves on; this directory waits for a restart
                self.failures.fail(data_dir, e, "reloading its logs", exc_info=True)
            else:
                raise
        try:
            entries = os.listdir(data_dir)
        except OSError:
            entries = []
        for entry in entries:
            try:
                tp = parse_partition_dir(entry)
            except ValueError:
                continue
            if tp[0] != METADATA_TOPIC and not entry.endswith(DELETE_DIR_SUFFIX):
                self._log_dir_of.setdefault(tp, data_dir)
        return False

    def _lock(self, data_dir: Path) -> None:
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageError(f"{data_dir} is in use by another broker (could not lock {LOCK_FILE})") from None
        self._locks.append(fd)
        self._locked_dirs.add(data_dir)

    def _load_dir(self, data_dir: Path, known_recovery_points=None, known_log_starts=None) -> None:
        """Open the logs of ``data_dir``; ``known_*`` (a reload) override its checkpoints."""
        marker = data_dir / CLEAN_SHUTDOWN_FILE
        clean = marker.exists()
        self.had_clean_shutdown.setdefault(data_dir, clean)
        recovery_points = self._read_offsets_or_empty(data_dir / RECOVERY_POINT_CHECKPOINT)
        log_starts = self._read_offsets_or_empty(data_dir / LOG_START_CHECKPOINT)
        if known_recovery_points:
            recovery_points = {**(recovery_points or {}), **known_recovery_points}
            log_starts = {**(log_starts or {}), **(known_log_starts or {})}
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
            if self._log_dir_of.get(tp, data_dir) != data_dir:
                raise StorageError(f"partition {entry} is in both {self._log_dir_of[tp]} and {data_dir}")
            self._log_dir_of[tp] = data_dir
            self._logs[tp] = Log(
                path,
                self.config_for(tp[0]),
                recovery_point=(recovery_points or {}).get(tp, 0),
                log_start_offset=(log_starts or {}).get(tp, 0),
                clean_shutdown=clean and recovery_points is not None,
                failures=self.failures,
            )
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
        """Clean shutdown: flush and close every log, checkpoint, leave the
        marker; in the directories that are online and stay so."""
        for tp, log_ in self._logs.items():
            data_dir = self._log_dir_of[tp]
            if self.failures.is_offline(data_dir):
                self._close_quietly(log_)
                continue
            try:
                log_.close()
            except (OSError, StorageError, TooManyOpenFilesError) as e:
                self.failures.fail(data_dir, e, f"closing {log_.name}")
                self._close_quietly(log_)
        self._remove_deleted(None)
        unwritten = self.checkpoint()
        for data_dir in self.data_dirs:
            if self.failures.is_offline(data_dir) or data_dir in unwritten:
                continue  # no marker: its logs are recovered at the next start
            try:
                (data_dir / CLEAN_SHUTDOWN_FILE).touch()
                fsync_dir(data_dir)
            except (OSError, TooManyOpenFilesError) as e:  # no marker: its logs are recovered at the next start
                self.failures.fail(data_dir, e, "writing the clean shutdown marker")
        for fd in self._locks:
            os.close(fd)
        self._locks.clear()
        self._locked_dirs.clear()
        self._logs.clear()

    # -- logs --------------------------------------------------------------------

    def config_for(self, topic: str) -> LogConfig:
        return self.topic_configs.get(topic, self.default_config)

    def get_log(self, topic: str, partition: int) -> Log | None:
        return self._logs.get((topic, partition))

    def log_dir_of(self, topic: str, partition: int) -> Path | None:
        """The data directory holding the partition, if it has one here."""
        return self._log_dir_of.get((topic, partition))

    def is_offline(self, topic: str, partition: int) -> bool:
        """The partition is in an offline directory (its log loaded or not)."""
        return self.failures.is_offline(self._log_dir_of.get((topic, partition)))

    @staticmethod
    def _close_quietly(log_: Log) -> None:
        """Close the files of a log in a failed directory: nothing more is written."""
        try:
            log_.close(flush=False)
        except (OSError, StorageError, TooManyOpenFilesError) as e:
            log.warning("%s: closing after its directory failed: %s", log_.name, e)

    def all_logs(self) -> list[Log]:
        return list(self._logs.values())

    def get_or_create_log(self, topic: str, partition: int, config: LogConfig | None = None) -> Log:
        tp = (topic, partition)
        if tp in self._logs:
            return self._logs[tp]
        if config is not None:
            self.topic_configs[topic] = config
        data_dir = self._log_dir_of.get(tp)
        if data_dir is None:
            # The online directory with the fewest partitions takes the new one
            # (as Kafka); with none online, it waits in one for it to come back.
            counts = {d: 0 for d in self.data_dirs}
            for d in self._log_dir_of.values():
                counts[d] += 1
            online = [d for d in self.data_dirs if not self.failures.is_offline(d)] or self.data_dirs
            data_dir = min(online, key=lambda d: counts[d])
            self._log_dir_of[tp] = data_dir
        with self.failures.guard(data_dir, f"creating the log of {topic}-{partition}"):
            new = Log(data_dir / f"{topic}-{partition}", self.config_for(topic), failures=self.failures)
        self._logs[tp] = new
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
        files after ``file.delete.delay.ms`` so reads in flight stay valid.

        In an offline directory the files go at once, as far as the disk lets
        them (no read is served there): deleting a topic is how space is freed
        on a full disk. What stays is dropped as stale when the directory loads."""
        tp = (topic, partition)
        log_ = self._logs.pop(tp, None)
        data_dir = self._log_dir_of.pop(tp, None)
        if data_dir is None:
            return
        for offsets in self._offsets_while_offline.get(data_dir, ()):
            offsets.pop(tp, None)
        if log_ is None:  # never loaded: its directory failed
            shutil.rmtree(data_dir / f"{topic}-{partition}", ignore_errors=True)
            return
        doomed = log_.dir.with_name(delete_dir_name(topic, partition))
        try:
            with self.failures.guard(data_dir, f"deleting {log_.name}"):
                os.rename(log_.dir, doomed)
                log_.move_to(doomed)
                fsync_dir(doomed.parent)
        except StorageError:
            self._close_quietly(log_)
            shutil.rmtree(log_.dir, ignore_errors=True)  # where it is: renamed, unless that is what failed
            return
        except TooManyOpenFilesError as e:
            # Renamed, the rename not yet fsynced: removed after the delay all the
            # same. A crash first may bring the old name back; the next start drops
            # it as stale (the metadata no longer gives it to this broker).
            log.warning("%s: deleting: %s", log_.name, e)
        now = wall_ms() if now is None else now
        self._deleting.append((now + log_.config.file_delete_delay_ms, log_, doomed))

    def _remove_deleted(self, now: int | None) -> int:
        """Close and remove deleted partitions whose delay is over (all if ``now`` is None)."""
        due = [(log_, path) for at, log_, path in self._deleting if now is None or at <= now]
        self._deleting = [entry for entry in self._deleting if now is not None and entry[0] > now]
        for log_, path in due:
            self._close_quietly(log_)
            shutil.rmtree(path, ignore_errors=True)
        return len(due)

    # -- periodic work -------------------------------------------------------

    def checkpoint(self) -> list[Path]:
        """Write recovery points and log start offsets of every data directory;
        returns those put off for want of file descriptors."""
        unwritten = []
        for data_dir in self.data_dirs:
            if self.failures.is_offline(data_dir):
                continue
            mine = {tp: lg for tp, lg in self._logs.items() if self._log_dir_of[tp] == data_dir}
            try:
                with self.failures.guard(data_dir, "writing its checkpoints"):
                    write_offsets(data_dir / RECOVERY_POINT_CHECKPOINT,
                                  {tp: lg.recovery_point for tp, lg in mine.items()})  # fmt: skip
                    write_offsets(data_dir / LOG_START_CHECKPOINT, {tp: lg.log_start_offset for tp, lg in mine.items()})
            except StorageError:
                pass  # the directory is offline now; the others go on
            except TooManyOpenFilesError as e:
                log.warning("checkpoints of %s put off: %s", data_dir, e)
                unwritten.append(data_dir)
        return unwritten

    def _online_logs(self):
        """(tp, log) of the directories that are online."""
        offline = self.failures.offline
        return [(tp, lg) for tp, lg in self._logs.items() if not offline or self._log_dir_of[tp] not in offline]

    def flush_due(self, now: int | None = None) -> int:
        now = wall_ms() if now is None else now
        flushed = 0
        for _, lg in self._online_logs():
            try:
                flushed += lg.flush_if_due(now)
            except StorageError:
                pass  # its directory is offline now (logged once); the others go on
        return flushed

    def cleanup(self, now: int | None = None, high_watermarks: dict[tuple[str, int], int] | None = None) -> int:
        """Retention and delayed deletion of every log; returns segments deleted."""
        now = wall_ms() if now is None else now
        deleted = 0
        for tp, lg in self._online_logs():
            hw = (high_watermarks or {}).get(tp)
            try:
                deleted += lg.delete_old_segments(now, hw)
                lg.delete_expired_files(now)
            except StorageError:
                pass  # its directory is offline now (logged once); the others go on
        self._remove_deleted(now)
        return deleted

    def compact(self, now: int | None = None, high_watermarks: dict[tuple[str, int], int] | None = None) -> int:
        """Compaction passes over the logs due for one (cleaner_choice.py: dirty
        ratio over the cleanable part, max.compaction.lag.ms, tombstones due),
        filthiest first; returns segments cleaned. Each pass is logged at INFO.

        A log whose pass fails (say, a batch whose records do not decode) is
        logged and marked uncleanable, as Kafka does, and the others go on; one
        that meets a shortage of file descriptors is only put off to the next.
        """
        now = wall_ms() if now is None else now
        hws = high_watermarks or {}
        candidates = {
            lg.name: (tp, lg)
            for tp, lg in self._online_logs()
            if lg.config.compact and tp not in self.uncleanable
        }
        facts = []
        skipped = []  # for want of file descriptors: tried again at the next pass
        for tp, lg in candidates.values():
            try:
                with self.failures.guard(self._log_dir_of[tp], f"reading {lg.name} for compaction"):
                    facts.append(log_facts(lg, hws.get(tp)))
            except StorageError:
                pass  # its directory is offline now (logged once): not the log's fault
            except TooManyOpenFilesError:
                skipped.append(lg.name)  # a shortage of the process, not the log's fault either
            except Exception:
                self._mark_uncleanable(tp, lg)
        cleaned = 0
        for chosen in logs_to_clean(facts, now):
            tp, lg = candidates[chosen.name]
            try:
                with self.failures.guard(self._log_dir_of[tp], f"compacting {lg.name}"):
                    stats = clean_log(lg, now, high_watermark=hws.get(tp))
            except StorageError:
                continue  # its directory is offline now (logged once): not the log's fault
            except TooManyOpenFilesError:
                skipped.append(lg.name)
                continue
            except Exception:
                self._mark_uncleanable(tp, lg)
                continue
            cleaned += stats.segments_cleaned
            log.info(
                "cleaned log %s (due to %s; dirty ratio %.2f): dirty offsets [%d, %d), %d segments, "
                "%d -> %d bytes, %d of %d records removed, %d tombstones kept, in %.1f ms",
                lg.name, chosen.reason, chosen.dirty_ratio, stats.first_dirty_offset, stats.end_offset,
                stats.segments_cleaned, stats.bytes_before, stats.bytes_after, stats.records_removed,
                stats.records_read, stats.tombstones_kept, stats.duration_ms,
            )  # fmt: skip
        if skipped:
            # Marked uncleanable, __consumer_offsets would grow until a restart.
            log.warning("compaction of %s put off to the next pass: out of file descriptors", ", ".join(skipped))
        return cleaned

    def _mark_uncleanable(self, tp: tuple[str, int], lg: Log) -> None:
        log.exception("%s: compaction failed; the partition is marked uncleanable", lg.name)
        self.uncleanable.add(tp)
