"""The facade picks the compiled functions unless RIVERLOG_NO_NATIVE forces the twins."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FUNCTIONS = ["scan_batches", "offset_index_lookup", "time_index_lookup", "encode_records", "decode_records"]
PROBE = f"""
from riverlog import native
import riverlog.native.twin
print(native.NATIVE, all(getattr(native, f) is getattr(native.twin, f) for f in {FUNCTIONS!r}))
"""


def facade_in_subprocess(no_native: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "RIVERLOG_NO_NATIVE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if no_native is not None:
        env["RIVERLOG_NO_NATIVE"] = no_native
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_riverlog_no_native_forces_the_twins():
    assert facade_in_subprocess("1") == "False True"


@pytest.mark.parametrize("no_native", [None, "", "0"])
def test_facade_uses_the_compiled_functions_otherwise(no_native):
    assert facade_in_subprocess(no_native) == "True False"
