"""Index pages are backed by disk space before they are written: a full disk
is an OSError at allocation, never a SIGBUS at the first touch of a page."""

from __future__ import annotations

import errno
import os

import pytest

from broker.storage.faults import injected
from broker.storage.index_file import ALLOCATION_STEP_BYTES
from broker.storage.offset_index import OffsetIndex


def test_index_pages_are_allocated_before_they_are_written(tmp_path):
    index = OffsetIndex(tmp_path / "0.index", 0, 1 << 20)
    index.make_writable()
    assert os.stat(index.path).st_blocks == 0  # preallocated sparse, as Kafka
    with injected("allocate", errno.ENOSPC):
        with pytest.raises(OSError):
            index.append(1, 100)  # an OSError, where writing into a hole of a full disk is SIGBUS
    assert index.entries == 0
    index.append(1, 100)
    assert 0 < os.stat(index.path).st_blocks * 512 <= 2 * ALLOCATION_STEP_BYTES
    index.close()


def test_a_preallocated_index_left_by_a_crash_counts_only_its_written_prefix(tmp_path):
    path = tmp_path / "0.index"
    index = OffsetIndex(path, 0, 1 << 20)
    index.make_writable()
    for i in range(3):
        index.append(i + 1, 100 * (i + 1))
    index.flush()
    # A crash: the file stays at its preallocated length, holes after the entries.
    assert os.path.getsize(path) == 1 << 20
    reopened = OffsetIndex(path, 0, 1 << 20, writable=False)
    # Never past the first hole: the rest of the file is no entry, and touching
    # a page of it could be a SIGBUS on a full disk.
    assert 3 <= reopened.entries <= ALLOCATION_STEP_BYTES // 8
