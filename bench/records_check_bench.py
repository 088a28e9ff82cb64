"""What the leader's walk of every batch's records costs, per codec.

    python -m bench.records_check_bench [--runs 5] [--batches 200] [--batch-bytes 1000000]

Builds producer batches the way librdkafka closes them at most (about 1 MB
of records, ``batch.size``; ``--batch-bytes`` for smaller ones: under
linger.ms=5 a busy librdkafka sends some 30-40 KB per partition), of 100-byte and 1 KiB values that compress about
as text does (words drawn at random, 3-4x with gzip), under each codec. Then,
in this process, for each:

* ``walk``: ``broker.storage.batches.check_records`` on one batch, that is
  decompression (if any) and the native walk; and ``of it decompress``, the
  codec alone;
* ``append``: ``Log.append_as_leader`` of ``--batches`` batches into a fresh
  log in a temporary directory (validation, offsets, ``pwritev``, index: no
  fsync), with the walk and with it replaced by a no-op, alternately,
  ``--runs`` times; medians.

Times are this process's CPU time (``time.process_time``), which a shared
machine's other load disturbs less than the wall clock.

The ratio of the two appends is what the walk costs a leader's append; the
broker benchmark (``bench.broker_bench``) measures the same end to end with
clients. Prints a table and writes JSON to bench/results/records_check.json.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from bench.workers import ROOT, fmt, machine, median, write_report
from riverlog.broker.storage import log as log_module
from riverlog.broker.storage.batches import check_records, max_uncompressed_bytes, validate_batches
from riverlog.broker.storage.log import Log
from riverlog.broker.storage.log_config import LogConfig
from riverlog.client.records import Compression, build_batch
from riverlog.client.records import compression as codecs
from riverlog.client.records.layout import BATCH_HEADER_BYTES

BATCH_BYTES = 1_000_000  # librdkafka's batch.size
MAX_MESSAGE_BYTES = LogConfig().max_message_bytes
_WORDS = [bytes(random.Random(i).choices(b"abcdefghijklmnopqrstuvwxyz", k=1 + i % 9)) for i in range(5000)]


def _value(rng: random.Random, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += rng.choice(_WORDS) + b" "
    return bytes(out[:size])


def _batch(codec: Compression, size: int, batch_bytes: int = BATCH_BYTES) -> bytes:
    rng = random.Random(size)
    n = max(1, batch_bytes // (size + 10))
    return build_batch([(None, _value(rng, size), 1_700_000_000_000 + i, ()) for i in range(n)], compression=codec)


# CPU time of this process, not the wall clock: on a shared machine it moves
# less with the other load (and the append's writes go to the page cache).
_clock = time.process_time


def _time_per_call(fn, reps: int) -> float:
    t0 = _clock()
    for _ in range(reps):
        fn()
    return (_clock() - t0) / reps


def _append_seconds(batch: bytes, batches: int, walk: bool) -> float:
    """Seconds per batch of Log.append_as_leader into a fresh log, with the walk or without."""
    real = log_module.check_records
    if not walk:
        log_module.check_records = lambda *args: None
    try:
        with tempfile.TemporaryDirectory(prefix="riverlog-check-bench-") as tmp:
            log = Log(Path(tmp) / "t-0", LogConfig(segment_bytes=1 << 30))
            try:
                t0 = _clock()
                for _ in range(batches):
                    log.append_as_leader(batch, leader_epoch=0)
                return (_clock() - t0) / batches
            finally:
                log.close()
    finally:
        log_module.check_records = real


def run(args) -> dict:
    bound = max_uncompressed_bytes(MAX_MESSAGE_BYTES)
    rows = []
    for size in (100, 1024):
        for codec in Compression:
            batch = _batch(codec, size, args.batch_bytes)
            info = validate_batches(batch, MAX_MESSAGE_BYTES)[0]
            area = memoryview(batch)[BATCH_HEADER_BYTES:]
            reps = max(3, args.batches // 10)
            walks, decomps, with_walk, without = [], [], [], []
            for _ in range(args.runs):
                walks.append(_time_per_call(lambda: check_records(batch, info, bound), reps))
                if codec:
                    decomps.append(_time_per_call(lambda: codecs.decompress(codec, area, bound), reps))
                without.append(_append_seconds(batch, args.batches, walk=False))
                with_walk.append(_append_seconds(batch, args.batches, walk=True))
            row = {
                "size": size, "codec": codec.name.lower(), "records": info.records_count, "batch_bytes": len(batch),
                "uncompressed_bytes": len(_batch(Compression.NONE, size, args.batch_bytes)) - BATCH_HEADER_BYTES,
                "walk_us": median(walks) * 1e6, "decompress_us": median(decomps) * 1e6 if decomps else 0.0,
                "append_us_without_walk": median(without) * 1e6, "append_us_with_walk": median(with_walk) * 1e6,
            }  # fmt: skip
            row["append_ratio"] = row["append_us_without_walk"] / row["append_us_with_walk"]
            row["walk_mb_per_s"] = row["uncompressed_bytes"] / row["walk_us"]
            row["walk_ns_per_record"] = row["walk_us"] * 1000 / row["records"]
            rows.append(row)
            print(f"  {size}B {row['codec']}: walk {row['walk_us']:.0f} us, append {row['append_us_without_walk']:.0f}"
                  f" -> {row['append_us_with_walk']:.0f} us", flush=True)  # fmt: skip
    return {"machine": machine(), "command": "python -m bench.records_check_bench " + " ".join(args.argv),
            "params": {"runs": args.runs, "batches": args.batches, "batch_bytes": args.batch_bytes},
            "rows": rows}  # fmt: skip


def print_table(report: dict) -> None:
    print(f"\n{report['command']}   (medians of {report['params']['runs']} runs)")
    hdr = (f"{'values':>7} {'codec':>7} {'records':>8} {'batch B':>9} {'walk us':>9} {'of it decomp':>13}"
           f" {'walk MB/s':>10} {'ns/record':>10} {'append us':>10} {'+walk us':>9} {'append rate kept':>17}")  # fmt: skip
    print(hdr)
    print("-" * len(hdr))
    for r in report["rows"]:
        print(f"{r['size']:>6}B {r['codec']:>7} {r['records']:>8,} {r['batch_bytes']:>9,} {fmt(r['walk_us']):>9}"
              f" {fmt(r['decompress_us']):>13} {fmt(r['walk_mb_per_s']):>10} {fmt(r['walk_ns_per_record']):>10}"
              f" {fmt(r['append_us_without_walk']):>10}"
              f" {fmt(r['append_us_with_walk']):>9} {r['append_ratio']:>17.2f}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    import sys

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batches", type=int, default=200, help="batches appended per append run")
    ap.add_argument("--batch-bytes", type=int, default=BATCH_BYTES, help="uncompressed records per batch, bytes")
    args = ap.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    report = run(args)
    print_table(report)
    out = write_report("records_check", report)
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
