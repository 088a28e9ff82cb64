"""Bringing back a data directory that went offline for want of space (part of LogManager).

Split from log_manager.py along its seam. Kafka keeps a failed directory
offline until a restart; here one that failed with ENOSPC or EDQUOT is
retried (log_dir_failure.py says why): once it can allocate room again, its
logs are reloaded from disk as at a restart, with a backoff when it keeps
filling up again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from riverlog.broker.storage.errors import StorageError, TooManyOpenFilesError
from riverlog.broker.storage.space_reserve import SpaceReserve, allocate

log = logging.getLogger("riverlog.broker.storage.log_manager")  # the manager's own lines, as before the split

SPACE_PROBE_FILE = ".riverlog_space_probe"
# A directory offline for want of space comes back once it can take this
# many batches of message.max.bytes (besides the metadata log's reserve). One
# batch was too little: the next produce filled it again, and it cycled
# offline and back (a reload of every partition each time) about once a
# second. Batches, not a fraction of the filesystem: 1% of a 4 TB disk would
# keep it offline after an operator freed 30 GB; by default this is 4 MiB.
RETRY_HEADROOM_BATCHES = 4
# A directory that fails again within RETRY_STABLE_MS of coming back (or
# whose reload fails) waits before the next attempt, twice as long each time
# from RETRY_BACKOFF_MIN_MS up to RETRY_BACKOFF_MAX_MS; a minute online
# forgets that.
RETRY_BACKOFF_MIN_MS = 2_000
RETRY_BACKOFF_MAX_MS = 60_000
RETRY_STABLE_MS = 60_000


class LogDirRetry:
    """LogManager's retry of offline directories (mixed into LogManager, whose state it uses)."""

    def retry_offline_dirs(self, now: int | None = None) -> list[Path]:
        """Bring back the directories that failed for want of space and have
        room again (RETRY_HEADROOM_BATCHES batches of message.max.bytes), once
        their backoff is over: their logs are reloaded from disk as at a
        restart. Returns those that came back."""
        now = self.clock_ms() if now is None else now
        back = []
        for data_dir in [d for d in self.failures.offline if self.failures.waits_for_space(d)]:
            if now < self._next_retry_ms.get(data_dir, now) or not self._has_room(data_dir):
                continue
            if data_dir not in self._locked_dirs:  # it failed before it was locked
                try:
                    self._lock(data_dir)
                except (OSError, StorageError):
                    continue
            reserve = self._reserve_missing_on(data_dir)
            if reserve is not None and not reserve.take():
                continue
            known_points, known_starts = self._offsets_while_offline.setdefault(data_dir, ({}, {}))
            for tp, lg in list(self._logs.items()):
                if self._log_dir_of[tp] == data_dir:
                    known_points[tp], known_starts[tp] = lg.recovery_point, lg.log_start_offset
                    self._close_quietly(lg)
                    del self._logs[tp]
            # Still offline while loading: a failure now is not logged again.
            if self._load_dir_or_fail(data_dir, dict(known_points), dict(known_starts)):
                del self._offsets_while_offline[data_dir]
                self.failures.recovered(data_dir)
                self._came_back_ms[data_dir] = now
                back.append(data_dir)
            else:
                self._back_off(data_dir, now, "its reload failed")
        return back

    def _back_off(self, data_dir: Path, now: int, why: str) -> None:
        backoff = min(max(2 * self._retry_backoff_ms.get(data_dir, 0), RETRY_BACKOFF_MIN_MS), RETRY_BACKOFF_MAX_MS)
        self._retry_backoff_ms[data_dir] = backoff
        self._next_retry_ms[data_dir] = now + backoff
        log.warning("log directory %s: %s; the next attempt to bring it back is in %.0f s",
                    data_dir, why, backoff / 1000)  # fmt: skip

    def _on_offline(self, data_dir: Path) -> None:
        """A data directory full: the metadata log's reserve on that disk is its
        room now. Back soon after its last return: the next return waits."""
        if self.failures.waits_for_space(data_dir):
            now = self.clock_ms()
            came_back = self._came_back_ms.get(data_dir)
            if came_back is not None and now - came_back < RETRY_STABLE_MS:
                self._back_off(data_dir, now, f"full again {(now - came_back) / 1000:.0f} s after it came back")
            else:
                self._retry_backoff_ms.pop(data_dir, None)
                self._next_retry_ms.pop(data_dir, None)
        reserve = self.metadata_reserve
        if reserve is not None and self.failures.waits_for_space(data_dir) and reserve.shares_filesystem_with(data_dir):
            reserve.release(f"{data_dir} is full")

    def _reserve_missing_on(self, data_dir: Path) -> SpaceReserve | None:
        reserve = self.metadata_reserve
        if reserve is not None and not reserve.held and reserve.shares_filesystem_with(data_dir):
            return reserve
        return None

    def _has_room(self, data_dir: Path) -> bool:
        """Room for RETRY_HEADROOM_BATCHES batches of message.max.bytes, and
        for the metadata log's reserve if it was given up on this disk (taken
        back first)."""
        reserve = self._reserve_missing_on(data_dir)
        need = RETRY_HEADROOM_BATCHES * self.default_config.max_message_bytes
        need += reserve.size_bytes if reserve is not None else 0
        probe = data_dir / SPACE_PROBE_FILE
        try:
            data_dir.mkdir(parents=True, exist_ok=True)  # if making it was what failed
            allocate(probe, need)
            probe.unlink()
        except (OSError, TooManyOpenFilesError):
            return False  # out of descriptors too: tried again at the next retry
        return True
