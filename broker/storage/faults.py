"""Fault points of the storage layer, for tests: each does nothing unless a test installs a fault.

A point is named for what the storage does there::

    allocate   disk space for an index's pages (posix_fallocate), or the room probe
    write      bytes appended to a segment's .log file
    replace    a checkpoint or metadata file written and renamed into place

``with injected("write", errno.ENOSPC):`` makes every write under it fail as a
full disk would, until the block ends (``when`` narrows it to some paths).
The broker never installs one; a test that needs a real full disk mounts one
(tests/integration/test_full_disk.py).
"""

from __future__ import annotations

import errno as errnos
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

installed: dict[str, Callable[[Path], None]] = {}  # point -> raises for a path, or not


def fire(point: str, path: Path | str) -> None:
    """Raise the fault installed at ``point`` for ``path``, if any. Callers on
    a hot path test ``installed`` first: empty, nothing is called."""
    fault = installed.get(point)
    if fault is not None:
        fault(Path(path))


@contextmanager
def injected(point: str, error: int = errnos.ENOSPC, when: Callable[[Path], bool] = lambda path: True):
    """Fail ``point`` with OSError(``error``) for paths ``when`` accepts, inside the block."""

    def fault(path: Path) -> None:
        if when(path):
            raise OSError(error, os.strerror(error), str(path))

    installed[point] = fault
    try:
        yield
    finally:
        installed.pop(point, None)
