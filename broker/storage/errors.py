"""Storage faults, each carrying the Kafka error code a handler answers with."""

from __future__ import annotations

import errno


class StorageError(Exception):
    """A disk fault (full, unreadable, ...): KAFKA_STORAGE_ERROR."""

    error_code = 56


class OffsetOutOfRangeError(Exception):
    error_code = 1


class CorruptRecordError(Exception):
    """A batch whose length, magic or CRC is wrong: CORRUPT_MESSAGE."""

    error_code = 2


class RecordTooLargeError(Exception):
    """A batch larger than max.message.bytes: MESSAGE_TOO_LARGE."""

    error_code = 10


class InvalidRecordError(Exception):
    """A well-formed batch the log refuses (offsets going back, ...): INVALID_RECORD."""

    error_code = 87


class TooManyOpenFilesError(Exception):
    """Out of file descriptors (EMFILE, ENFILE): KAFKA_STORAGE_ERROR for the
    request at hand. Not a StorageError: the disk is fine and the log
    directory stays online; the next request may well succeed."""

    error_code = 56


class SegmentClosedError(Exception):
    """A read or write on a segment of a log that was closed under it: its
    directory was reloaded (retry_offline_dirs makes new logs) or the
    partition deleted, while the caller held the old log across a wait.
    KAFKA_STORAGE_ERROR for the request at hand, which finds the new log
    when retried. Not a StorageError: nothing is wrong with the directory,
    which must not go offline for it."""

    error_code = 56


class InvariantError(Exception):
    """A storage invariant does not hold: a bug of the broker, never bad input
    nor a failing disk. Each invariant is checked where it is stated, before
    anything is written (as TigerBeetle does; a named error, not ``assert``,
    which ``python -O`` drops), so a broken one stops the operation and
    leaves the log on disk as it was. Not a storage fault either: its
    directory stays online, and the request fails loudly as a handler fault
    (logged at ERROR with its traceback, the asking connection closed)
    instead of answering KAFKA_STORAGE_ERROR."""


OUT_OF_DESCRIPTORS_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE})


def is_out_of_descriptors(exc: BaseException) -> bool:
    """EMFILE/ENFILE, raw or as TooManyOpenFilesError: a shortage, not a disk fault."""
    if isinstance(exc, TooManyOpenFilesError):
        return True
    return isinstance(exc, OSError) and exc.errno in OUT_OF_DESCRIPTORS_ERRNOS


# What a request answers with KAFKA_STORAGE_ERROR for its partition: its log
# directory went offline (log_dir_failure.py), the process is out of file
# descriptors (open_files.py), or the log was closed under the caller. A Log
# method raises each as one of these (LogDirFailures.raise_for), never as a
# bare OSError.
STORAGE_FAULTS = (StorageError, TooManyOpenFilesError, SegmentClosedError)
