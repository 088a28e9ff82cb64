"""Storage benchmark: append and read throughput, index lookup native vs twin.

    make bench                       # or: python -m bench.storage_bench [--runs 5] [--mib 256]

Append: Log.append_as_leader of ready-made producer batches (validation,
offset stamping, pwritev) against a raw ``os.write`` loop of the same bytes
into a file in the same directory; both end with one fsync. Their ratio is the
figure that matters (target >= 70%). The 1 KiB row (one record a batch, as
many producers send at low linger) shows the per-append cost; ``--profile``
prints where it goes (cProfile of that append path, shares of the total). Read: sequential Log.read of 1 MiB file
slices, read with pread. Index: lookups in a full (10 MiB, 1.3M-entry) offset index, at
random targets and at targets near its end (where consumers that keep up read),
the compiled function against its Python twin, alternating (target >= 10x).
Each figure is the median of ``--runs`` runs (3 x ``--runs`` for lookups). Prints a table; writes JSON to
bench/results/storage.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import struct
import tempfile
import time
from pathlib import Path

from riverlog.broker.storage.log import Log
from riverlog.broker.storage.log_config import LogConfig
from riverlog.client.records import build_batch
from riverlog.client.records.layout import BATCH_HEADER_BYTES, LAST_OFFSET_DELTA_OFFSET, LOG_OVERHEAD
from riverlog.native import compiled, twin

MIB = 1024 * 1024
BATCH_SIZES = (("1KiB", 1024), ("16KiB", 16 * 1024), ("1MiB", MIB))


def _batch(batch_bytes: int) -> bytes:
    value = os.urandom(1024)
    count = max(1, batch_bytes // 1100)
    return build_batch([(b"key-%d" % i, value, 1_700_000_000_000 + i, ()) for i in range(count)])


def _raw_write(path: Path, batch: bytes, n: int) -> float:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    t0 = time.perf_counter()
    for _ in range(n):
        os.write(fd, batch)
    os.fsync(fd)
    elapsed = time.perf_counter() - t0
    os.close(fd)
    return elapsed


def _log_append(directory: Path, batch: bytes, n: int) -> tuple[float, Log]:
    config = LogConfig(segment_bytes=2**31 - 1, max_message_bytes=2 * MIB, retention_ms=-1)
    log = Log(directory / "bench-0", config)
    t0 = time.perf_counter()
    for _ in range(n):
        log.append_as_leader(batch, leader_epoch=0)
    log.flush()
    return time.perf_counter() - t0, log


def _read_all(log: Log) -> tuple[float, int]:
    t0 = time.perf_counter()
    offset, total = 0, 0
    end = log.log_end_offset
    while offset < end:
        got = log.read(offset, MIB)
        data = got.slice.read()
        total += len(data)
        # Next offset: past the last whole batch in what was read.
        pos, last = 0, offset
        while pos + BATCH_HEADER_BYTES <= len(data):
            base, length = struct.unpack_from(">qi", data, pos)
            if pos + length + LOG_OVERHEAD > len(data):
                break
            last = base + struct.unpack_from(">i", data, pos + LAST_OFFSET_DELTA_OFFSET)[0]
            pos += length + LOG_OVERHEAD
        offset = last + 1
    return time.perf_counter() - t0, total


def _index_lookups(impl, buf, entries: int, targets: list[int]) -> float:
    """Lookups as the index files make them: on a buffer pinned once."""
    lookup = impl.offset_index_lookup
    pinned = impl.pin_buffer(buf)
    t0 = time.perf_counter()
    for t in targets:
        lookup(pinned, entries, t)
    elapsed = time.perf_counter() - t0
    impl.unpin_buffer(pinned)
    return elapsed


def profile_appends(directory: Path, appends: int = 50_000, top: int = 15) -> None:
    """cProfile of Log.append_as_leader with 1 KiB batches, under the log-dir
    failure guard as the broker runs it: each function's share of the total."""
    import cProfile
    import pstats

    from riverlog.broker.storage.log_dir_failure import LogDirFailures

    batch = _batch(1024)
    work = Path(tempfile.mkdtemp(dir=directory))
    try:
        config = LogConfig(segment_bytes=2**31 - 1, max_message_bytes=2 * MIB, retention_ms=-1)
        log = Log(work / "bench-0", config, failures=LogDirFailures())
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(appends):
            log.append_as_leader(batch, leader_epoch=0)
        profiler.disable()
        log.close()
    finally:
        shutil.rmtree(work)
    stats = pstats.Stats(profiler).stats
    total = sum(tt for _cc, _nc, tt, _ct, _callers in stats.values())
    # The top ones, and the log-dir failure guard and the cache of open files wherever they rank.
    watched = ("guarded", "_file", "get", "get_ticked")
    rows = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)
    rows = [row for i, row in enumerate(rows) if i < top or row[0][2] in watched]
    print(f"profile of {appends} appends of {len(batch)}-byte batches: {total:.2f} s; own and cumulative shares")
    for (path, line, name), (_cc, calls, own, cumulative, _callers) in rows:
        where = f"{Path(path).name}:{line}({name})" if line else name
        print(f"  {own / total:6.1%} {cumulative / total:6.1%} {calls:>8}  {where}")


def run(runs: int, mib: int, directory: Path) -> dict:
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}", "runs": runs}
    for label, size in BATCH_SIZES:
        batch = _batch(size)
        n = max(1, mib * MIB // len(batch))
        raw_rates, log_rates, read_rates = [], [], []
        for _ in range(runs):
            work = Path(tempfile.mkdtemp(dir=directory))
            try:
                # Each timed run starts with no dirty pages left by the other.
                os.sync()
                raw = _raw_write(work / "raw.bin", batch, n)
                (work / "raw.bin").unlink()
                os.sync()
                took, log = _log_append(work, batch, n)
                read_took, read_bytes = _read_all(log)
                log.close()
            finally:
                shutil.rmtree(work)
            volume = n * len(batch) / MIB
            raw_rates.append(volume / raw)
            log_rates.append(volume / took)
            read_rates.append(read_bytes / MIB / read_took)
        raw_mb, log_mb = statistics.median(raw_rates), statistics.median(log_rates)
        results[f"append_{label}"] = {
            "batch_bytes": len(batch),
            "log_append_MBps": round(log_mb, 1),
            "raw_write_MBps": round(raw_mb, 1),
            "ratio": round(log_mb / raw_mb, 3),
            "read_MBps": round(statistics.median(read_rates), 1),
        }

    entries = 1_310_720  # a full offset index at segment.index.bytes' default, 10 MiB
    buf = b"".join(struct.pack(">II", i * 3, i * 1024) for i in range(entries))
    rng = random.Random(7)
    workloads = {
        # Anywhere in the index: every step of the search may miss the cache.
        "random": [rng.randrange(0, entries * 3) for _ in range(20_000)],
        # Near the end, where consumers that keep up read: Kafka's warm section.
        "tail": [entries * 3 - 1 - rng.randrange(0, 3000) for _ in range(20_000)],
    }
    for name, targets in workloads.items():
        # Alternate the two so that a noisy spell of the machine hits both alike.
        native_runs, twin_runs = [], []
        for _ in range(3 * runs):
            native_runs.append(_index_lookups(compiled, buf, entries, targets))
            twin_runs.append(_index_lookups(twin, buf, entries, targets))
        native_s, twin_s = statistics.median(native_runs), statistics.median(twin_runs)
        results[f"offset_index_lookup_{name}"] = {
            "entries": entries,
            "native_ns": round(native_s / len(targets) * 1e9),
            "twin_ns": round(twin_s / len(targets) * 1e9),
            "speedup": round(twin_s / native_s, 1),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mib", type=int, default=256, help="MiB appended per run and batch size")
    parser.add_argument("--dir", type=Path, default=Path("bench/results/tmp"), help="where the logs are written")
    parser.add_argument("--json", type=Path, default=Path("bench/results/storage.json"))
    parser.add_argument("--profile", action="store_true", help="profile the 1 KiB append path instead")
    args = parser.parse_args()
    if args.runs < 1 or args.mib < 1:
        parser.error("--runs and --mib must be at least 1")
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.profile:
        profile_appends(args.dir)
        shutil.rmtree(args.dir, ignore_errors=True)
        return
    results = run(args.runs, args.mib, args.dir)
    print(f"storage benchmark, median of {args.runs} runs, {args.mib} MiB per run ({results['machine']})")
    print(f"{'batch':>6} {'append MB/s':>12} {'raw write MB/s':>15} {'ratio':>6} {'read MB/s':>10}")
    for label, _ in BATCH_SIZES:
        r = results[f"append_{label}"]
        print(f"{label:>6} {r['log_append_MBps']:>12} {r['raw_write_MBps']:>15} {r['ratio']:>6.0%} {r['read_MBps']:>10}")
    for name in ("random", "tail"):
        idx = results[f"offset_index_lookup_{name}"]
        print(
            f"offset index lookup, {name} targets ({idx['entries']} entries): native {idx['native_ns']} ns, "
            f"twin {idx['twin_ns']} ns, {idx['speedup']}x"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
