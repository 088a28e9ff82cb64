"""``python -m tests.sim``: run seeds of the simulation.

    python -m tests.sim --seeds 10000      # many seeds over every core
    python -m tests.sim --seed 42          # one seed, with its trace
    python -m tests.sim --election-bench 500
    python -m tests.sim --metadata --seeds 1000   # the controller and metadata replay on it
    python -m tests.sim --metadata --seed 42      # its trace: controller operations, brokers, faults

Many seeds end with exactly one line ``N seeds, V violations``, after one
line per violating seed with its first violation; the exit code is 1 if
there was any.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time

from tests.sim.cluster import SimOptions, Simulation


def simulation(seed: int, options: SimOptions, metadata: bool, **kw) -> Simulation:  # type: ignore[no-untyped-def]
    if metadata:
        from tests.sim.metadata_cluster import MetadataSimulation

        return MetadataSimulation(seed, options, **kw)
    return Simulation(seed, options, **kw)


def run_seed(args: tuple[int, SimOptions, bool]) -> tuple[int, str | None]:
    seed, options, metadata = args
    result = simulation(seed, options, metadata).run()
    return seed, str(result.violation) if result.violation else None


def bench_seed(seed: int) -> tuple[int, int | str]:
    from tests.sim.bench import election_ms
    from tests.sim.checkers import Violation

    try:
        return seed, election_ms(seed)
    except Violation as v:
        return seed, str(v)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--seeds", type=int, help="run seeds 0..N-1 (default 200)")
    what.add_argument("--seed", type=int, help="run one seed and print its trace")
    what.add_argument("--election-bench", type=int, metavar="N", help="ticks from leader crash to new leader")
    parser.add_argument("--first-seed", type=int, default=0, help="with --seeds: start here")
    parser.add_argument("--duration", type=int, metavar="MS", help="simulated ms of the faulty phase (15000)")
    parser.add_argument("--ticks", type=int, help="the faulty phase in ticks instead (50 ms each)")
    parser.add_argument("--liveness-ticks", type=int, help="bound on the healed phase in ticks (600)")
    parser.add_argument("--metadata", action="store_true",
                        help="the controller and metadata replay on the quorum (metadata_cluster.py)")
    parser.add_argument("--raft-trace", action="store_true", help="with --metadata --seed: every message too")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    options = SimOptions()
    if args.duration is not None:
        options.duration_ms = args.duration
    if args.ticks is not None:
        options.duration_ms = args.ticks * 50
    if args.liveness_ticks is not None:
        options.liveness_ticks = args.liveness_ticks

    if args.seed is not None:
        kw = {"raft_trace": args.raft_trace} if args.metadata else {}
        sim = simulation(args.seed, options, args.metadata, trace=print, **kw)
        result = sim.run()
        print(f"seed {args.seed}: {result.events}; ended at {result.end_ms}ms")
        print(f"seed {args.seed}: {'VIOLATION ' + str(result.violation) if result.violation else 'ok'}")
        return 1 if result.violation else 0

    if args.election_bench is not None:
        from tests.sim.bench import summarize

        with multiprocessing.Pool(args.jobs) as pool:
            results = pool.map(bench_seed, range(args.election_bench), chunksize=8)
        failures = [(s, r) for s, r in results if isinstance(r, str)]
        for seed, failure in failures:
            print(f"seed {seed}: {failure}")
        print(summarize([r for _, r in results if isinstance(r, int)], 50))
        return 1 if failures else 0

    count = args.seeds if args.seeds is not None else 200
    seeds = range(args.first_seed, args.first_seed + count)
    started = time.monotonic()
    violations = 0
    with multiprocessing.Pool(args.jobs) as pool:
        for seed, violation in pool.imap(run_seed, ((s, options, args.metadata) for s in seeds), chunksize=4):
            if violation is not None:
                violations += 1
                print(violation, flush=True)
    elapsed = time.monotonic() - started
    sys.stdout.flush()
    print(f"({elapsed:.1f}s wall, {elapsed * args.jobs / max(1, count) * 1000:.0f} ms per seed per process, "
          f"{args.jobs} processes)", file=sys.stderr, flush=True)
    print(f"{count} seeds, {violations} violations")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
