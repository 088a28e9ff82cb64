"""Index pages are backed by disk space before they are written: a full disk
is an OSError at allocation, never a SIGBUS at the first touch of a page."""

from __future__ import annotations

import errno
import os

import pytest

from riverlog.broker.storage.faults import injected
from riverlog.broker.storage.index_file import ALLOCATION_STEP_BYTES
from riverlog.broker.storage.offset_index import OffsetIndex
from riverlog.broker.storage.time_index import TimeIndex


def test_index_pages_are_allocated_before_they_are_written(tmp_path):
    with injected("allocate", errno.ENOSPC):
        with pytest.raises(OSError):  # where writing into a hole of a full disk would be SIGBUS
            OffsetIndex(tmp_path / "0.index", 0, 1 << 20)
    index = OffsetIndex(tmp_path / "0.index", 0, 1 << 20)
    # Preallocated sparse, as Kafka's: only the first step is backed.
    assert os.path.getsize(index.path) == 1 << 20
    assert os.stat(index.path).st_blocks * 512 <= ALLOCATION_STEP_BYTES
    per_step = ALLOCATION_STEP_BYTES // 8
    for i in range(per_step - 1):
        index.append(i + 1, 100 * (i + 1))
    with injected("allocate", errno.ENOSPC):
        with pytest.raises(OSError):
            index.append(per_step, 100 * per_step)  # its next slot would start a new step
    assert index.entries == per_step - 1
    index.append(per_step, 100 * per_step)
    assert os.stat(index.path).st_blocks * 512 <= 2 * ALLOCATION_STEP_BYTES
    index.close()


def test_the_final_time_index_entry_needs_no_new_space(tmp_path):
    """At a roll or a clean close a segment writes its final time-index entry:
    into the slot every entry keeps backed after it, so a full disk cannot fail it."""
    index = TimeIndex(tmp_path / "0.timeindex", 0, 1 << 20)
    per_step = ALLOCATION_STEP_BYTES // 12
    for i in range(per_step - 1):
        index.maybe_append(1000 + i, i)
    with injected("allocate", errno.ENOSPC):
        with pytest.raises(OSError):
            index.maybe_append(10**6, per_step)  # an ordinary entry keeps the slot after it backed
        index.maybe_append(10**6, per_step, final=True)
    assert index.last_entry == (10**6, per_step)
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
