"""One clock helper: the broker reads the OS clocks only through
riverlog.broker.clock (its pure cores read none: they take the time as an
argument; Trio's deadlines use trio.current_time, Trio's own clock)."""

from __future__ import annotations

import ast
import time
from pathlib import Path

from riverlog.broker import clock

BROKER = Path(__file__).resolve().parents[2] / "broker"
OS_CLOCKS = {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns"}


def test_the_clocks_read_what_their_names_say():
    before = time.time_ns() // 1_000_000
    assert before <= clock.wall_ms() <= time.time_ns() // 1_000_000
    first = clock.monotonic_ms()
    assert first <= clock.monotonic_ms() and abs(clock.monotonic_s() * 1000 - first) < 60_000


def test_no_broker_module_but_the_clock_reads_an_os_clock():
    readers = []
    for path in sorted(BROKER.rglob("*.py")):
        if path == BROKER / "clock.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "time":
                readers += [f"{path.relative_to(BROKER)}:{node.lineno}: from time import {a.name}" for a in node.names
                            if a.name in OS_CLOCKS]  # fmt: skip
            if (isinstance(node, ast.Attribute) and node.attr in OS_CLOCKS and isinstance(node.value, ast.Name)
                    and node.value.id == "time"):  # fmt: skip
                readers.append(f"{path.relative_to(BROKER)}:{node.lineno}: time.{node.attr}")
    assert not readers, "read the time through riverlog.broker.clock:\n" + "\n".join(readers)
