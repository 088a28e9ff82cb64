"""Types and constants shared by the compiled functions and their twins."""

from __future__ import annotations

from typing import NamedTuple

# Why scan_batches stopped walking.
SCAN_OK = 0  # reached the end of the buffer exactly, or max_batches
SCAN_TRUNCATED = 1  # the bytes left hold only part of a batch (torn tail)
SCAN_BAD_MAGIC = 2  # the batch at `end` is not magic 2
SCAN_BAD_LENGTH = 3  # the batch at `end` declares a length below the v2 header or above the limit

# What check_records found in a records area (the first fault).
RECORDS_OK = 0
RECORDS_MALFORMED = 1  # a varint, length or field that does not fit its record
RECORDS_BAD_OFFSET_DELTA = 2  # record i's offset delta is not i
RECORDS_BAD_HEADER_KEY = 3  # a null header key, or one that is not UTF-8
RECORDS_TOO_FEW = 4  # the area ends before the batch's count of records
RECORDS_TOO_MANY = 5  # bytes are left after the batch's count of records


class BatchInfo(NamedTuple):
    """Header facts about one batch, as found by scan_batches."""

    position: int  # byte position of the batch in the scanned buffer
    length: int  # whole batch size in bytes, batchLength + 12
    base_offset: int
    last_offset_delta: int
    records_count: int
    max_timestamp: int
    partition_leader_epoch: int


class RecordDecodeError(ValueError):
    """A records area that does not decode: bad varint, length or count."""
