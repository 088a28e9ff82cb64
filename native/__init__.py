"""Byte-crunching paths of riverlog: compiled C through cffi, or pure-Python twins.

Every function here exists twice with the same signature and behaviour: in C
(``native._native``, built out of line at install time by
``native/build_native.py``) and in pure Python (``native.twin``). This facade
picks the compiled one when it imports, and the twin when it does not or when
``RIVERLOG_NO_NATIVE=1`` is set. Tests call both and compare.

Functions (see ``native.twin`` for the reference semantics):

``scan_batches(buf, max_batches, max_batch_bytes) -> (infos, end, status)``
    Walk record batches v2 laid end to end in ``buf`` from position 0.
    ``infos`` is a list of :class:`BatchInfo`; ``end`` the position just past
    the last whole, well-formed batch; ``status`` one of the ``SCAN_*``
    constants saying why the walk stopped. CRCs are *not* checked here.

``offset_index_lookup(buf, entries, target) -> slot``
    ``buf`` holds ``entries`` 8-byte entries (u32 relative offset, u32
    position, big-endian) with strictly increasing offsets. Returns the
    largest slot whose offset is <= ``target``, or -1.

``time_index_lookup(buf, entries, target) -> slot``
    ``buf`` holds ``entries`` 12-byte entries (i64 timestamp, u32 relative
    offset, big-endian) with non-decreasing timestamps. Returns the largest
    slot whose timestamp is <= ``target``, or -1.

``pin_buffer(buf) -> pinned`` / ``unpin_buffer(pinned)``
    A handle on a buffer that the two lookups accept in place of it and use
    without per-call setup (the index files pin their mmap once). Unpin
    before the buffer is closed or resized.

``encode_records(timestamp_deltas, keys, values, headers) -> bytes``
    The records area of a batch (uncompressed), record i at offset delta i.

``decode_records(buf, count) -> list[(offset_delta, timestamp_delta, key, value, headers)]``
    Inverse of ``encode_records``; raises :class:`RecordDecodeError` on any
    malformed input, never reads outside ``buf``.

``check_records(buf, count) -> (status, record index)``
    Walks a whole records area (uncompressed) of ``count`` records keeping
    nothing, for the broker's check of every batch it accepts: one of the
    ``RECORDS_*`` constants (the first fault) and the index of the record
    where it was found.
"""

from __future__ import annotations

import os

from riverlog.native.common import (  # noqa: F401  (re-exported)
    RECORDS_BAD_HEADER_KEY,
    RECORDS_BAD_OFFSET_DELTA,
    RECORDS_MALFORMED,
    RECORDS_OK,
    RECORDS_TOO_FEW,
    RECORDS_TOO_MANY,
    SCAN_BAD_LENGTH,
    SCAN_BAD_MAGIC,
    SCAN_OK,
    SCAN_TRUNCATED,
    BatchInfo,
    RecordDecodeError,
)
from riverlog.native import twin

_forced_twin = os.environ.get("RIVERLOG_NO_NATIVE", "") not in ("", "0")

_impl = twin
NATIVE = False
if not _forced_twin:
    try:
        from riverlog.native import compiled as _compiled
    except ImportError:  # not built: the twins keep riverlog working, only slower
        pass
    else:
        _impl = _compiled
        NATIVE = True

scan_batches = _impl.scan_batches
offset_index_lookup = _impl.offset_index_lookup
time_index_lookup = _impl.time_index_lookup
pin_buffer = _impl.pin_buffer
unpin_buffer = _impl.unpin_buffer
encode_records = _impl.encode_records
decode_records = _impl.decode_records
check_records = _impl.check_records
# Records made from and into Python objects in C, or None (compiled only;
# native/py_records.c): the consumer's records, a producer batch's records area.
consumer_records = _compiled.consumer_records if NATIVE else None
plain_records = _compiled.plain_records if NATIVE else None
