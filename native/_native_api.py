"""Typed access to the cffi module ``native._native``.

cffi's ``lib`` is a dynamic object; :class:`NativeLib` states what
``riverlog_native.h`` declares so that type checkers see the calls
``native.compiled`` makes. Importing this module raises ImportError when the
extension is not built, which the facade turns into the twin fallback.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from riverlog.native._native import ffi  # noqa: F401  (re-exported; ImportError propagates)
from riverlog.native._native import lib as _lib

CData = Any  # a cffi pointer or array


class NativeLib(Protocol):
    RL_SCAN_OK: int
    RL_SCAN_TRUNCATED: int
    RL_SCAN_BAD_MAGIC: int
    RL_SCAN_BAD_LENGTH: int
    RL_ENCODE_NO_ROOM: int
    RL_ENCODE_TOO_LARGE: int
    RL_ENCODE_BAD_ARGS: int
    RL_DECODE_OK: int
    RL_DECODE_MALFORMED: int
    RL_DECODE_MORE_HEADERS: int
    RL_RECORDS_OK: int

    def rl_scan_batches(
        self,
        buf: CData,
        length: int,
        max_batch_bytes: int,
        out: CData,
        out_cap: int,
        out_count: CData,
        end: CData,
    ) -> int: ...

    def rl_offset_index_lookup(self, buf: CData, entries: int, target: int) -> int: ...

    def rl_time_index_lookup(self, buf: CData, entries: int, target: int) -> int: ...

    def rl_encode_records(
        self,
        count: int,
        timestamp_deltas: CData,
        key_lens: CData,
        value_lens: CData,
        header_counts: CData,
        header_key_lens: CData,
        header_value_lens: CData,
        header_total: int,
        blob: CData,
        blob_len: int,
        out: CData,
        out_cap: int,
    ) -> int: ...

    def rl_decode_records(
        self,
        buf: CData,
        length: int,
        count: int,
        records: CData,
        headers: CData,
        header_cap: int,
    ) -> int: ...

    def rl_check_records(self, buf: CData, length: int, count: int, at: CData) -> int: ...

    def rl_attach_python_functions(self) -> int: ...


lib = cast(NativeLib, _lib)
