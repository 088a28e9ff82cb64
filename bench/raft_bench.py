"""Raft benchmark: a three-voter quorum in three processes on loopback.

    python -m bench.raft_bench [--seconds 5] [--failovers 10] [--entry-bytes 64]

Each voter is a process running broker.controller.raft_driver.RaftDriver
with KRaft's default timeouts (election 1 s, fetch 2 s, ticks of 50 ms), a
state machine that only counts entries, and its own data directory under
bench/results/ (fsync on every Ready, as in production).

* throughput: the leader runs the load itself (so no client hop is timed):
  ``--proposers`` concurrent tasks, each proposing one entry of
  ``--entry-bytes`` and waiting until it is committed and applied, for
  ``--seconds``. The driver gathers the proposals made while it was busy into
  one append (one fsync), so this is Raft with batching. Reported: committed
  entries per second, and commit latency p50/p99 (propose() to applied on the
  leader, i.e. a majority has it on disk).
* batched: the same with proposals of ``--batch`` entries each.
* failover: the quorum runs, one entry is committed, then the leader is
  killed with SIGKILL; timed from the kill until another voter has been
  elected and has committed an entry of its own epoch (its LeaderChange
  record and one proposal). Nodes print events stamped with ``time.time()``;
  all processes are on one machine, so the clocks compare. Median of
  ``--failovers`` runs, each with fresh data directories.

The simulation's figure (ticks from a leader crash to a new leader, over
many seeds, no real time) comes from ``python -m tests.sim --election-bench N``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.workers import ROOT, fmt, machine, median, work_dir, write_report
from tests.integration.broker_process import free_ports

VOTERS = (1, 2, 3)


# -- the node process ----------------------------------------------------------------


class CountingMachine:
    def __init__(self) -> None:
        self.count = 0

    def apply(self, entries) -> None:
        self.count += len(entries)

    def snapshot(self) -> bytes:
        return str(self.count).encode()

    def restore(self, data: bytes) -> None:
        self.count = int(data or b"0")


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


async def run_node(args) -> None:
    import trio

    from riverlog.broker.controller.raft.core import NotLeaderError
    from riverlog.broker.controller.raft.roles import RaftConfig
    from riverlog.broker.controller.raft_driver import RaftDriver

    ports = [int(p) for p in args.ports.split(",")]
    peers = {v: ("127.0.0.1", ports[v - 1]) for v in VOTERS}
    driver = RaftDriver(RaftConfig(args.node, frozenset(VOTERS)), Path(args.data), CountingMachine(),
                        cluster_id="bench", peers=peers, listen=peers[args.node])  # fmt: skip
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.serve)
        emit("up", node=args.node)
        led_epoch = -1
        while True:
            await trio.sleep(0.002)
            core = driver.core
            if not core.is_leader or core.epoch == led_epoch:
                continue
            led_epoch = core.epoch
            try:
                await driver.propose([b"first"])
            except NotLeaderError:
                continue
            emit("committed", node=args.node, epoch=core.epoch)
            if args.load:
                emit("load", node=args.node, **await load(driver, args))
                args.load = False


async def load(driver, args) -> dict:
    import trio

    payload = [os.urandom(args.entry_bytes) for _ in range(args.batch)]
    latencies: list[float] = []
    count = 0
    deadline = trio.current_time() + args.seconds

    async def proposer() -> None:
        nonlocal count
        while trio.current_time() < deadline:
            start = time.perf_counter()
            await driver.propose(payload)
            latencies.append(time.perf_counter() - start)
            count += len(payload)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(args.proposers):
            nursery.start_soon(proposer)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {"entries_per_s": count / elapsed, "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)], "proposals": len(latencies)}  # fmt: skip


# -- the driver ----------------------------------------------------------------------


class Quorum:
    def __init__(self, work: Path, name: str, node_args: list[str]) -> None:
        ports = ",".join(map(str, free_ports(len(VOTERS))))
        self.procs: dict[int, subprocess.Popen] = {}
        self.events: list[dict] = []
        self._buffers: dict[int, str] = {}
        for v in VOTERS:
            argv = [sys.executable, "-m", "bench.raft_bench", "--node", str(v), "--ports", ports,
                    "--data", str(work / name / f"node{v}"), *node_args]  # fmt: skip
            self.procs[v] = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            os.set_blocking(self.procs[v].stdout.fileno(), False)
            self._buffers[v] = ""

    def poll(self) -> None:
        for v, proc in self.procs.items():
            try:
                chunk = os.read(proc.stdout.fileno(), 1 << 16)
            except (BlockingIOError, OSError, ValueError):
                chunk = b""
            if chunk:
                self._buffers[v] += chunk.decode()
                *lines, self._buffers[v] = self._buffers[v].split("\n")
                self.events += [json.loads(line) for line in lines if line.startswith("{")]

    def wait_for(self, predicate, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            for event in self.events:
                if predicate(event):
                    return event
            time.sleep(0.005)
        return None

    def kill(self, node: int) -> None:
        self.procs[node].send_signal(signal.SIGKILL)
        self.procs[node].wait()

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def throughput(work: Path, args, batch: int) -> dict:
    q = Quorum(work, f"load-{batch}", ["--load", "--seconds", str(args.seconds), "--proposers", str(args.proposers),
                                      "--batch", str(batch), "--entry-bytes", str(args.entry_bytes)])  # fmt: skip
    try:
        event = q.wait_for(lambda e: e["event"] == "load", timeout=args.seconds + 30)
        return event or {"error": "no load result"}
    finally:
        q.close()


def failover(work: Path, run: int) -> float | None:
    q = Quorum(work, f"failover-{run}", [])
    try:
        first = q.wait_for(lambda e: e["event"] == "committed", timeout=20)
        if first is None:
            return None
        time.sleep(0.5)
        killed_at = time.time()
        q.kill(first["node"])
        after = q.wait_for(lambda e: e["event"] == "committed" and e["epoch"] > first["epoch"], timeout=20)
        return None if after is None else after["t"] - killed_at
    finally:
        q.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--proposers", type=int, default=64)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--entry-bytes", type=int, default=64)
    parser.add_argument("--failovers", type=int, default=10)
    # node process
    parser.add_argument("--node", type=int)
    parser.add_argument("--ports")
    parser.add_argument("--data")
    parser.add_argument("--load", action="store_true")
    args = parser.parse_args()
    if args.node is not None:
        import trio

        trio.run(run_node, args)
        return

    work = work_dir("raft")
    single = throughput(work, args, 1)
    batched = throughput(work, args, args.batch)
    failovers = [failover(work, i) for i in range(args.failovers)]
    done = [f for f in failovers if f is not None]
    report = {
        "machine": machine(), "entry_bytes": args.entry_bytes, "proposers": args.proposers,
        "single_entry": single, "batched": {**batched, "entries_per_proposal": args.batch},
        "failover_s": {"runs": failovers, "median": median(failovers),
                       "max": max(done) if done else None,
                       "stdev": statistics.pstdev(done) if len(done) > 1 else None},
    }  # fmt: skip
    path = write_report("raft", report)
    print(f"machine: {report['machine']}")
    print(f"one entry per proposal, {args.proposers} proposers: {fmt(single.get('entries_per_s'))} commits/s, "
          f"p50 {fmt(single.get('p50_ms'), '.1f')} ms, p99 {fmt(single.get('p99_ms'), '.1f')} ms")  # fmt: skip
    print(f"{args.batch} entries per proposal: {fmt(batched.get('entries_per_s'))} entries/s, "
          f"p50 {fmt(batched.get('p50_ms'), '.1f')} ms, p99 {fmt(batched.get('p99_ms'), '.1f')} ms")  # fmt: skip
    print(f"kill -9 of the leader -> new leader committing: median {fmt(median(failovers), '.2f')} s "
          f"over {len(done)}/{len(failovers)} runs (max {fmt(report['failover_s']['max'], '.2f')} s)")  # fmt: skip
    print(f"report: {path}")


if __name__ == "__main__":
    main()
