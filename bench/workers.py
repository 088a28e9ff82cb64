"""What the benchmarks share: load generators in their own processes, and
the machine description printed beside every figure.

A benchmark module runs itself with ``--worker '{"kind": ..., ...}'`` in a
child process; the worker prints one JSON object as its last ``{`` line.
`run_worker` starts it, waits at most ``timeout`` seconds, kills it if need
be (never leaves it behind), and returns that object, or ``{"error": ...}``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def work_dir(name: str) -> Path:
    """A fresh directory under bench/results/ for one run's data and logs."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = RESULTS / f"{name}-run-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    return work


def settle() -> None:
    """Write out the previous run's dirty pages now, so the kernel's
    writeback does not take the cores during the next measured run."""
    os.sync()


def median(values) -> float | None:
    """The median of the values that are not None (failed runs); None if none."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def worker_argv(module: str, kind: str, args: dict) -> list[str]:
    return [sys.executable, "-m", module, "--worker", json.dumps({"kind": kind, **args})]


def run_worker(module: str, kind: str, args: dict, timeout: float) -> dict:
    proc = subprocess.Popen(worker_argv(module, kind, args), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"error": f"{kind} worker timed out after {timeout:.0f}s"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"{kind} worker exit {proc.returncode}: {err.strip()[-800:]}"}
    return json.loads(lines[-1])


def serve_worker(spec: str, workers: dict) -> None:
    """The child side of `run_worker`: run one worker, print its JSON answer."""
    args = json.loads(spec)
    result = workers[args.pop("kind")](args)
    if result is not None:
        print(json.dumps(result), flush=True)


def write_report(name: str, report: dict) -> Path:
    """bench/results/NAME.json, for the figures in README."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine() -> dict:
    """CPU count and model, Python, and the librdkafka the load generators use."""
    info: dict = {"cpus": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(),
                  "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg())}  # fmt: skip
    try:
        import confluent_kafka

        version = confluent_kafka.version()  # a (str, int) pair in most releases
        info["confluent_kafka"] = version[0] if isinstance(version, tuple) else version
        info["librdkafka"] = confluent_kafka.libversion()[0]
    except ImportError:
        pass
    return info
