"""Shared by the equivalence tests: run a twin and its compiled function alike.

The compiled module is imported directly, whatever RIVERLOG_NO_NATIVE says;
when it is not built, every comparison fails (it never skips).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from riverlog.native import twin

try:
    from riverlog.native import compiled
except ImportError as exc:
    compiled = None
    COMPILED_IMPORT_ERROR: ImportError | None = exc
else:
    COMPILED_IMPORT_ERROR = None

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
BUFFER_KINDS = st.sampled_from([bytes, bytearray, memoryview])

# Modest example counts keep tests/native well under a minute.
equivalence_settings = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def require_compiled():
    if compiled is None:
        pytest.fail(f"native._native is not built: {COMPILED_IMPORT_ERROR}")
    return compiled


def outcome(fn, *args):
    """The result, or the type of the exception raised."""
    try:
        return ("returned", fn(*args))
    except Exception as exc:  # noqa: BLE001  (the type is what gets compared)
        return ("raised", type(exc))


def assert_same(name: str, *args) -> tuple:
    """Calls twin.<name> and compiled.<name> on args; both must agree."""
    expected = outcome(getattr(twin, name), *args)
    assert outcome(getattr(require_compiled(), name), *args) == expected
    return expected


DAMAGES = st.sampled_from(["cut", "set", "insert", "count+1", "count-1"])


def damage(data: bytes, count: int, where: int, byte: int, how: str) -> tuple[bytes, int]:
    """A records area (and its record count) damaged one way: cut short at,
    a byte set at, a byte inserted at ``where``, or the count off by one."""
    at = where % len(data)
    if how == "cut":
        return data[:at], count
    if how == "set":
        return data[:at] + bytes([byte]) + data[at + 1 :], count
    if how == "insert":
        return data[:at] + bytes([byte]) + data[at:], count
    return data, count + (1 if how == "count+1" else -1)
