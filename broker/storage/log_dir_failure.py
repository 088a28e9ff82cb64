"""Log-directory failure: the one place where a storage OSError becomes an offline directory.

As Kafka's LogDirFailureChannel: an I/O error (ENOSPC, EIO, EROFS, EDQUOT, ...)
on a data directory takes that directory offline. Its partitions answer
KAFKA_STORAGE_ERROR to every request until it is back, the broker keeps
serving the other directories, and the failure is logged once at ERROR.

When it comes back differs from Kafka on purpose. Kafka keeps a failed
directory offline until the broker restarts. Here a directory that failed for
want of space (ENOSPC, EDQUOT) is retried (LogManager.retry_offline_dirs):
once it can allocate room for a few batches of ``message.max.bytes`` again
(and for the metadata log's reserve on that disk, space_reserve.py), with a
backoff when it keeps filling again, its logs are
reloaded from disk as at a restart (recovery from the recovery point, so no half-done write survives) and
it serves again, as a produce answered KAFKA_STORAGE_ERROR and then took writes
once space was freed. Any other error (a failing disk, a read-only remount)
keeps it offline until the broker restarts, as Kafka.

Running out of file descriptors (EMFILE, ENFILE) is no fault of the disk:
it is raised as TooManyOpenFilesError, a per-request KAFKA_STORAGE_ERROR, and
the directory stays online (open_files.py). ``raise_for`` is the one place
that tells the two apart, for the guard and for every Log method alike.
"""

from __future__ import annotations

import errno
import functools
import logging
from pathlib import Path
from typing import NoReturn

from riverlog.broker.storage.errors import OUT_OF_DESCRIPTORS_ERRNOS, StorageError, TooManyOpenFilesError

log = logging.getLogger(__name__)

NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def errno_of(error: BaseException) -> int | None:
    """The errno behind a storage error (an OSError, or a StorageError raised from one)."""
    while error is not None:
        if isinstance(error, OSError):
            return error.errno
        error = error.__cause__
    return None


class LogDirFailures:
    """Which data directories are offline, and why."""

    def __init__(self) -> None:
        # Why each is offline: (errno, message), not the exception itself, whose
        # traceback would keep the failed call's frames alive, and with them
        # the descriptors of files (open_files.OpenFile) that must close for a
        # deleted topic to give its space back.
        self.offline: dict[Path, tuple[int | None, str]] = {}
        self.on_offline = None  # called with a directory as it goes offline

    def is_offline(self, data_dir: Path | None) -> bool:
        return data_dir in self.offline

    def error_for(self, data_dir: Path) -> StorageError:
        reason = self.offline.get(data_dir, (None, "unknown"))[1]
        return StorageError(f"log directory {data_dir} is offline: {reason}")

    def fail(self, data_dir: Path, error: BaseException, what: str, *, exc_info: bool = False) -> StorageError:
        """Take ``data_dir`` offline (logged once); the StorageError to raise.

        A directory offline for want of space that fails otherwise meanwhile
        (reloading it, say) is offline until the broker restarts from then on."""
        known = self.offline.get(data_dir)
        code = errno_of(error)
        if known is None or (known[0] in NO_SPACE_ERRNOS and code not in NO_SPACE_ERRNOS):
            self.offline[data_dir] = (code, str(error))
            until = "space is freed" if self.waits_for_space(data_dir) else "the broker restarts"
            log.error(
                "log directory %s is offline: %s failed: %s; its partitions answer KAFKA_STORAGE_ERROR until %s",
                data_dir, what, error, until, exc_info=exc_info,
            )  # fmt: skip
            if known is None and self.on_offline is not None:
                self.on_offline(data_dir)
        return self.error_for(data_dir)

    def raise_for(self, error: BaseException, data_dir: Path, what: str) -> NoReturn:
        """Raise what ``error``, met doing ``what`` in ``data_dir``, stands for.

        Out of descriptors (EMFILE, ENFILE, raw or already converted, or a
        StorageError made of one) is a shortage of the process: it is raised as
        TooManyOpenFilesError and the directory stays online. Any other OSError
        or StorageError takes the directory offline (StorageError). Anything
        else is raised as it is."""
        if isinstance(error, TooManyOpenFilesError) or not isinstance(error, (OSError, StorageError)):
            raise error
        if errno_of(error) in OUT_OF_DESCRIPTORS_ERRNOS:
            raise TooManyOpenFilesError(f"{what} in {data_dir}: out of file descriptors: {error}") from error
        raise self.fail(data_dir, error, what) from error

    def waits_for_space(self, data_dir: Path) -> bool:
        """Offline for want of space (retried), rather than until a restart."""
        return self.offline[data_dir][0] in NO_SPACE_ERRNOS

    def recovered(self, data_dir: Path) -> None:
        if self.offline.pop(data_dir, None) is not None:
            log.warning("log directory %s is back online: its logs were reloaded from disk", data_dir)

    def guard(self, data_dir: Path, what: str):
        """A context manager: an error inside is raised as ``raise_for`` says, and
        nothing runs in a directory that is offline."""
        return _Guard(self, data_dir, what)


class _Guard:
    __slots__ = ("failures", "data_dir", "what")

    def __init__(self, failures: LogDirFailures, data_dir: Path, what: str) -> None:
        self.failures, self.data_dir, self.what = failures, data_dir, what

    def __enter__(self) -> None:
        if self.data_dir in self.failures.offline:
            raise self.failures.error_for(self.data_dir)

    def __exit__(self, kind, error, tb) -> bool:
        if isinstance(error, (OSError, StorageError)):
            self.failures.raise_for(error, self.data_dir, self.what)
        return False


def io_guarded(method):
    """Run a Log's ``method`` under its log-directory failure guard: an error is
    raised as LogDirFailures.raise_for says (a storage fault takes the data
    directory offline, running out of descriptors does not), and nothing runs
    on a directory that is offline. A Log without ``failures`` (the metadata
    log's) gets its errors as they are."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        failures = self.failures
        if failures is None:
            return method(self, *args, **kwargs)
        if failures.offline and self.data_dir in failures.offline:
            raise failures.error_for(self.data_dir)
        try:  # no context manager: this is on every append and read
            return method(self, *args, **kwargs)
        except (OSError, StorageError) as e:
            failures.raise_for(e, self.data_dir, f"{method.__name__} on {self.name}")

    return guarded


def raise_io_failure(owner, error: BaseException, what: str) -> NoReturn:
    """The guard's answer to ``error``, for the methods that write it out (hot paths)."""
    if owner.failures is None:
        raise error
    owner.failures.raise_for(error, owner.data_dir, f"{what} on {owner.name}")
