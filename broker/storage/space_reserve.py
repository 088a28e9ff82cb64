"""Disk space held back for the metadata log, given up when its disk fills.

The metadata log must write to start (a new leader epoch, the quorum state)
and to create a topic; a broker whose one disk was filled by producing could
then neither start nor create a topic. So the broker keeps a preallocated file
of ``size_bytes`` next to the metadata log: it is released (deleted) at every
start, before the quorum writes anything, and whenever a data directory on
the same filesystem goes offline for want of space; it is taken again once
that filesystem has room for it besides what a data directory needs to come
back. Space filled by something other than the broker's own logs is not
covered: then the metadata log fails and the broker stops, as Kafka does.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from riverlog.broker.storage import faults
from riverlog.broker.storage.errors import TooManyOpenFilesError
from riverlog.broker.storage.open_files import opened

log = logging.getLogger(__name__)

FILE_NAME = ".riverlog_metadata_reserve"
RESERVE_BYTES = 1024 * 1024


def allocate(path: Path, size_bytes: int) -> None:
    """Make ``path`` a file of ``size_bytes`` backed by disk space
    (posix_fallocate); if that fails, it is removed again and the error raised."""
    try:
        with opened(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC) as fd:
            faults.fire("allocate", path)
            os.posix_fallocate(fd, 0, size_bytes)
    except BaseException:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
        raise


class SpaceReserve:
    def __init__(self, directory: Path, size_bytes: int = RESERVE_BYTES) -> None:
        self.path = directory / FILE_NAME
        self.size_bytes = size_bytes
        self.held = False
        self._said_missing = False

    def release(self, why: str) -> None:
        try:
            self.path.unlink()
            if self.held:
                log.warning("released the metadata log's reserve of %d bytes in %s: %s",
                            self.size_bytes, self.path.parent, why)  # fmt: skip
        except FileNotFoundError:
            pass
        except OSError as e:
            log.error("could not release the metadata log's reserve %s: %s", self.path, e)
            return
        self.held = False

    def take(self) -> bool:
        """Allocate the reserve; False (and nothing left behind) when the disk lacks the room."""
        try:
            allocate(self.path, self.size_bytes)
        except (OSError, TooManyOpenFilesError) as e:
            if not self._said_missing:
                log.warning("the metadata log has no reserve of %d bytes in %s: %s",
                            self.size_bytes, self.path.parent, e)  # fmt: skip
                self._said_missing = True
            return False
        self.held = True
        self._said_missing = False
        return True

    def shares_filesystem_with(self, data_dir: Path) -> bool:
        try:
            return os.stat(data_dir).st_dev == os.stat(self.path.parent).st_dev
        except OSError:
            return False
