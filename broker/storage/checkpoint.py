"""Checkpoint files in Kafka's text format, written atomically.

Layout (as Kafka's ``CheckpointFile``)::

    0                  <- format version
    2                  <- number of entries
    orders 0 1200      <- one entry per line, fields separated by a space
    orders 1 877

Used for ``recovery-point-offset-checkpoint`` and
``log-start-offset-checkpoint`` (entries ``topic partition offset``) in each
data directory, and ``leader-epoch-checkpoint`` (entries ``epoch
start_offset``) in each partition directory. A write goes to ``<name>.tmp``,
is fsynced, renamed over the old file, and the directory is fsynced, so a
crash leaves either the old or the new checkpoint, never a mix. Files are
opened through open_files: out of descriptors, it gives back cached
ones and tries again before raising TooManyOpenFilesError (the log directory
stays online: log_dir_failure.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from riverlog.broker.storage import faults
from riverlog.broker.storage.open_files import opened

VERSION = 0


class CorruptCheckpointError(ValueError):
    pass


def write_checkpoint(path: Path, entries: list[tuple[object, ...]], *, fsync: bool = True) -> None:
    lines = [str(VERSION), str(len(entries))]
    lines += [" ".join(str(field) for field in entry) for entry in entries]
    write_atomically(path, ("\n".join(lines) + "\n").encode(), fsync=fsync)


def write_atomically(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, fsync the
    directory, so a crash leaves the old file or the new one, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    if faults.installed:
        faults.fire("replace", path)
    with opened(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC) as fd:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    os.replace(tmp, path)
    if fsync:
        fsync_dir(path.parent)


def read_checkpoint(path: Path, fields: int) -> list[list[str]]:
    """The entries of a checkpoint, each a list of ``fields`` strings; [] if absent."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    lines = text.splitlines()
    try:
        if int(lines[0]) != VERSION:
            raise CorruptCheckpointError(f"{path}: unknown checkpoint version {lines[0]!r}")
        count = int(lines[1])
    except (IndexError, ValueError):
        raise CorruptCheckpointError(f"{path}: malformed checkpoint header") from None
    entries = [line.split(" ") for line in lines[2:] if line]
    if len(entries) != count or any(len(e) != fields for e in entries):
        raise CorruptCheckpointError(f"{path}: expected {count} entries of {fields} fields")
    return entries


def read_offsets(path: Path) -> dict[tuple[str, int], int]:
    """A ``topic partition offset`` checkpoint as {(topic, partition): offset}."""
    try:
        return {(t, int(p)): int(o) for t, p, o in read_checkpoint(path, 3)}
    except ValueError as e:
        raise CorruptCheckpointError(f"{path}: {e}") from None


def write_offsets(path: Path, offsets: dict[tuple[str, int], int]) -> None:
    write_checkpoint(path, [(t, p, o) for (t, p), o in sorted(offsets.items())])


def fsync_dir(path: Path) -> None:
    with opened(path, os.O_RDONLY) as fd:
        os.fsync(fd)
