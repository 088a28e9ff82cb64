"""The native functions backed by C (``native/riverlog_native.c``) via cffi.

Same signatures and behaviour as ``native.twin``, which stays the reference;
argument checks are the twin's own helpers so both sides raise alike. The C
side only sees flat arrays and buffers whose sizes Python has already bounded.
Importing this module raises ImportError when the extension is not built.
"""

from __future__ import annotations

import operator
import threading
from itertools import chain
from collections.abc import Sequence

from riverlog.client.records.layout import BATCH_HEADER_BYTES
from riverlog.native import twin
from riverlog.native._native_api import CData, ffi, lib
from riverlog.native.common import BatchInfo, RecordDecodeError
from riverlog.native.twin import INT64_MAX, INT64_MIN, Buffer, Record

# Output arrays are fully written by C before Python reads them: skip zeroing.
_new_uninit = ffi.new_allocator(should_clear_after_alloc=False)

# Bytes one record takes at least: length, attributes, timestamp delta, offset
# delta, key length, value length, header count, one byte each.
_MIN_RECORD_BYTES = 7
# And a header: key length and value length.
_MIN_HEADER_BYTES = 2
# Worst case of the fixed fields: length 5, attributes 1, timestamp delta 10,
# offset delta 5, key and value lengths 5 + 5, header count 5; per header 5 + 5.
_RECORD_OVERHEAD_MAX = 36
_HEADER_OVERHEAD_MAX = 10


# Small scans (a produce request holds one batch) reuse per-thread output
# arrays: on the append path the allocations cost more than the scan.
_SCRATCH_BATCHES = 16
_new_info = tuple.__new__  # builds a BatchInfo without its Python-level __new__
_scratch = threading.local()


def _scratch_arrays() -> tuple[CData, CData, CData]:
    """(batch infos, [count, end], &end) for this thread, made once."""
    arrays = getattr(_scratch, "arrays", None)
    if arrays is None:
        counts = ffi.new("size_t[2]")
        arrays = _scratch.arrays = (_new_uninit("rl_batch_info[]", _SCRATCH_BATCHES), counts, counts + 1)
    return arrays


def scan_batches(buf: Buffer, max_batches: int, max_batch_bytes: int) -> tuple[list[BatchInfo], int, int]:
    if not (type(max_batches) is int and type(max_batch_bytes) is int and max_batches >= 0 <= max_batch_bytes):
        max_batches, max_batch_bytes = twin.check_scan_args(max_batches, max_batch_bytes)
    cbuf = ffi.from_buffer("uint8_t[]", buf)  # released when it goes out of scope, on return
    size = len(cbuf)
    # At most size // 61 batches fit; one slot more keeps "stopped at
    # max_batches" unreachable unless max_batches is the real limit.
    cap = size // BATCH_HEADER_BYTES + 1
    if max_batches < cap:
        cap = max_batches
    limit = max_batch_bytes if max_batch_bytes <= INT64_MAX else INT64_MAX
    out, counts, end = _scratch_arrays()
    status = lib.rl_scan_batches(cbuf, size, limit, out, cap if cap < _SCRATCH_BATCHES else _SCRATCH_BATCHES, counts, end)
    if cap > _SCRATCH_BATCHES and counts[0] == _SCRATCH_BATCHES:
        # The scratch filled up before the scan ended: scan again with room.
        out, counts = _new_uninit("rl_batch_info[]", cap), ffi.new("size_t[2]")
        status = lib.rl_scan_batches(cbuf, size, limit, out, cap, counts, counts + 1)
    n = counts[0]
    if n == 1:  # the common case (a produce request): skip the comprehension
        b = out[0]
        infos = [_new_info(BatchInfo, (b.position, b.length, b.base_offset, b.last_offset_delta,
                                       b.records_count, b.max_timestamp, b.partition_leader_epoch))]  # fmt: skip
    else:
        infos = [
            _new_info(BatchInfo, (b.position, b.length, b.base_offset, b.last_offset_delta,
                                  b.records_count, b.max_timestamp, b.partition_leader_epoch))  # fmt: skip
            for b in out[0:n]
        ]
    return infos, counts[1], status


# The lookups run on every fetch and ListOffsets, and there the cffi call
# overhead, not the search, is the cost: a lookup on a pinned buffer is one C
# call that checks the bounds itself, with only type checks in Python.


def pin_buffer(buf: Buffer) -> tuple[CData, CData]:
    """``buf`` pinned for many lookups: an ``rl_pinned`` (pointer and length)
    and the cffi view that keeps the buffer exported, so neither from_buffer
    nor a bounds check in Python is paid per lookup. An mmap cannot close or
    resize until ``unpin_buffer``."""
    view = ffi.from_buffer("uint8_t[]", buf)
    pinned = ffi.new("rl_pinned *")
    pinned.data = view
    pinned.len = len(view)
    return pinned, view


def unpin_buffer(pinned: tuple[CData, CData]) -> None:
    pinned[0].data = ffi.NULL
    pinned[0].len = 0
    ffi.release(pinned[1])


def offset_index_lookup(buf: Buffer, entries: int, target: int) -> int:
    # Written out, not shared with time_index_lookup: on this path a helper
    # call costs as much as the search.
    if type(buf) is tuple and type(entries) is int and type(target) is int:
        try:
            slot = _offset_pinned(buf[0], entries, target)
        except OverflowError:
            pass  # an argument beyond int64: the general path below sorts it out
        else:
            if slot == lib.RL_INDEX_BAD_ENTRIES:
                raise ValueError(f"{entries} entries of 8 bytes do not fit the index buffer")
            return slot
    cbuf = buf[1] if type(buf) is tuple else ffi.from_buffer("uint8_t[]", buf)
    entries = operator.index(entries)
    if entries < 0 or entries * 8 > len(cbuf):
        raise ValueError(f"{entries} entries of 8 bytes do not fit the index buffer")
    target = operator.index(target)
    # C compares keys as int64: clamping a target beyond int64 keeps every outcome.
    return _offset_lookup(cbuf, entries, max(INT64_MIN, min(target, INT64_MAX)))


def time_index_lookup(buf: Buffer, entries: int, target: int) -> int:
    if type(buf) is tuple and type(entries) is int and type(target) is int:
        try:
            slot = _time_pinned(buf[0], entries, target)
        except OverflowError:
            pass
        else:
            if slot == lib.RL_INDEX_BAD_ENTRIES:
                raise ValueError(f"{entries} entries of 12 bytes do not fit the index buffer")
            return slot
    cbuf = buf[1] if type(buf) is tuple else ffi.from_buffer("uint8_t[]", buf)
    entries = operator.index(entries)
    if entries < 0 or entries * 12 > len(cbuf):
        raise ValueError(f"{entries} entries of 12 bytes do not fit the index buffer")
    target = operator.index(target)
    return _time_lookup(cbuf, entries, max(INT64_MIN, min(target, INT64_MAX)))


_offset_lookup = lib.rl_offset_index_lookup
_time_lookup = lib.rl_time_index_lookup
_offset_pinned = lib.rl_offset_index_lookup_pinned
_time_pinned = lib.rl_time_index_lookup_pinned


def _field_len(parts: list[bytes], data: bytes | None) -> int:
    if data is None:
        return -1
    parts.append(data)
    return len(data)


def encode_records(
    timestamp_deltas: Sequence[int],
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    headers: Sequence[Sequence[tuple[str | bytes, bytes | None]]],
) -> bytes:
    fast = _encode_plain_records(timestamp_deltas, keys, values, headers)
    if fast is not None:
        return fast
    records = twin.prepare_records(timestamp_deltas, keys, values, headers)
    parts: list[bytes] = []  # the blob, in the order C consumes it
    key_lens, value_lens, header_counts, hkey_lens, hvalue_lens = [], [], [], [], []
    for _, key, value, hdrs in records:
        key_lens.append(_field_len(parts, key))
        value_lens.append(_field_len(parts, value))
        header_counts.append(len(hdrs))
        for hkey, hvalue in hdrs:
            hkey_lens.append(_field_len(parts, hkey))
            hvalue_lens.append(_field_len(parts, hvalue))
    blob = b"".join(parts)
    cap = _RECORD_OVERHEAD_MAX * len(records) + _HEADER_OVERHEAD_MAX * len(hkey_lens) + len(blob)
    out = _new_uninit("uint8_t[]", cap)
    with ffi.from_buffer("uint8_t[]", blob) as cblob:
        written = lib.rl_encode_records(
            len(records),
            ffi.new("int64_t[]", [ts for ts, _, _, _ in records]),
            ffi.new("int64_t[]", key_lens),
            ffi.new("int64_t[]", value_lens),
            ffi.new("int64_t[]", header_counts),
            ffi.new("int64_t[]", hkey_lens),
            ffi.new("int64_t[]", hvalue_lens),
            len(hkey_lens),
            cblob,
            len(blob),
            out,
            cap,
        )
    if written == lib.RL_ENCODE_TOO_LARGE:
        raise ValueError("a record is over 2**31 - 1 bytes")
    if written < 0:  # NO_ROOM or BAD_ARGS: the arrays above are wrong
        raise AssertionError(f"rl_encode_records failed with {written}")
    return ffi.buffer(out, written)[:]


_PLAIN = frozenset({bytes, type(None)})


def _lengths(fields: Sequence[bytes | None]) -> list[int]:
    nulls = fields.count(None)  # type: ignore[attr-defined]
    if nulls == len(fields):
        return [-1] * nulls
    if not nulls:
        return list(map(len, fields))
    return [-1 if f is None else len(f) for f in fields]


def _encode_plain_records(
    timestamp_deltas: Sequence[int],
    keys: Sequence[bytes | None],
    values: Sequence[bytes | None],
    headers: Sequence[Sequence[tuple[str | bytes, bytes | None]]],
) -> bytes | None:
    """What a producer sends most: no headers, keys and values of type bytes
    or None, int deltas. Every check and the blob run at C speed (map, set,
    join) instead of a Python loop per record; anything else returns None
    and takes the general path, which raises for bad input."""
    count = len(timestamp_deltas)
    if (
        not count
        or not len(keys) == len(values) == len(headers) == count
        or any(headers)
        or not set(map(type, keys)) <= _PLAIN
        or not set(map(type, values)) <= _PLAIN
        or set(map(type, timestamp_deltas)) != {int}
        or min(timestamp_deltas) < INT64_MIN
        or max(timestamp_deltas) > INT64_MAX
    ):
        return None
    if keys.count(None) == count:  # the usual: no keys at all
        blob = b"".join(values if None not in values else filter(None, values))
    else:
        blob = b"".join(filter(None, chain.from_iterable(zip(keys, values))))
    key_lens, value_lens = _lengths(keys), _lengths(values)
    cap = _RECORD_OVERHEAD_MAX * count + len(blob)
    out = _new_uninit("uint8_t[]", cap)
    zeros = ffi.new("int64_t[]", count)
    written = lib.rl_encode_records(
        count,
        ffi.new("int64_t[]", timestamp_deltas),
        ffi.new("int64_t[]", key_lens),
        ffi.new("int64_t[]", value_lens),
        zeros, zeros, zeros, 0,
        blob, len(blob), out, cap,
    )  # fmt: skip
    if written == lib.RL_ENCODE_TOO_LARGE:
        raise ValueError("a record is over 2**31 - 1 bytes")
    if written < 0:
        raise AssertionError(f"rl_encode_records failed with {written}")
    return ffi.buffer(out, written)[:]


def _bytes_or_none(raw: CData, pos: int, length: int) -> bytes | None:
    return None if length < 0 else raw[pos : pos + length]


def decode_records(buf: Buffer, count: int) -> list[Record]:
    count = operator.index(count)
    if count < 0:
        raise RecordDecodeError(f"negative record count {count}")
    with ffi.from_buffer("uint8_t[]", buf) as cbuf:
        size = len(cbuf)
        # Bound the allocations by what the buffer can hold, whatever count says.
        if count > size // _MIN_RECORD_BYTES:
            raise RecordDecodeError(f"{count} records cannot fit in {size} bytes")
        records = _new_uninit("rl_record_view[]", count)
        header_cap_max = size // _MIN_HEADER_BYTES  # always enough
        header_cap = min(header_cap_max, 4 * count)
        while True:
            headers = _new_uninit("rl_header_view[]", header_cap)
            rc = lib.rl_decode_records(cbuf, size, count, records, headers, header_cap)
            if rc != lib.RL_DECODE_MORE_HEADERS:
                break
            assert header_cap < header_cap_max
            header_cap = header_cap_max
        if rc != lib.RL_DECODE_OK:
            raise RecordDecodeError(f"malformed records area ({count} records, {size} bytes)")
        raw = ffi.buffer(cbuf)
        decoded: list[Record] = []
        for r in records[0:count]:
            record_headers = []
            for h in headers[r.first_header : r.first_header + r.header_count]:
                try:
                    name = raw[h.key_pos : h.key_pos + h.key_len].decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise RecordDecodeError(f"header key is not UTF-8: {exc}") from None
                record_headers.append((name, _bytes_or_none(raw, h.value_pos, h.value_len)))
            decoded.append(
                (
                    r.offset_delta,
                    r.timestamp_delta,
                    _bytes_or_none(raw, r.key_pos, r.key_len),
                    _bytes_or_none(raw, r.value_pos, r.value_len),
                    record_headers,
                )
            )
    return decoded


_check_records = lib.rl_check_records


def _check_scratch() -> CData:
    at = getattr(_scratch, "at", None)
    if at is None:
        at = _scratch.at = ffi.new("size_t *")
    return at


def check_records(buf: Buffer, count: int) -> tuple[int, int]:
    # Called once per batch the broker accepts: one C call, no Python per record.
    if type(count) is not int or count < 0:
        count = twin.check_records_count(count)
    cbuf = ffi.from_buffer("uint8_t[]", buf)  # released when it goes out of scope, on return
    size = len(cbuf)
    # Every record takes 2 bytes at least, so a count past size + 1 ends the
    # same way as size + 1 does; this keeps any Python int within size_t.
    at = _check_scratch()
    status = _check_records(cbuf, size, count if count <= size else size + 1, at)
    return status, (count if status == 0 else at[0])


def _attach_python_functions() -> tuple:
    """(consumer_records, plain_records) from native/py_records.c, or Nones
    if the extension could not add them."""
    import riverlog.native._native as module

    if lib.rl_attach_python_functions() != 0:
        return None, None
    return getattr(module, "consumer_records", None), getattr(module, "plain_records", None)


# Only the client's hot paths use them: the consumer with the views of
# rl_decode_records, the producer's batches through client/records/builder.py.
# They have no twins: without them, the same work is done in Python.
consumer_records, plain_records = _attach_python_functions()
