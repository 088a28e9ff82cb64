"""PySyncObj measured the way bench/raft_bench.py measures riverlog's Raft.

    python3 -m venv /tmp/pso-venv && /tmp/pso-venv/bin/pip install pysyncobj
    /tmp/pso-venv/bin/python bench/pysyncobj_compare.py [--seconds 5] [--runs 3]

PySyncObj (https://github.com/bakwc/PySyncObj) is not a riverlog dependency:
it lives only in that separate venv, and this script imports nothing from
riverlog, so it runs from any directory.

Three PySyncObj nodes in three processes on free loopback ports, each with a
replicated counter (a ``@replicated`` method taking one 64-byte payload and
counting it, like raft_bench's CountingMachine), PySyncObj's default timings
and batching (``appendEntriesUseBatch=True``, ticks of 50 ms). Once a leader
is elected and has committed one entry, the leader runs the load itself (no
client hop is timed): ``--proposers`` closed-loop callers, each issuing one
call of the replicated method with ``callback=`` (as PySyncObj's own
benchmarks/testobj.py does) and issuing its next call when the callback
reports the entry committed and applied on the leader, for ``--seconds``.
Reported: committed operations per second and latency p50/p99 (call to
callback), i.e. raft_bench's "one entry per proposal" figure.

Two durability settings, each run ``--runs`` times (median reported):

* defaults: ``SyncObjConf()``, an in-memory journal: nothing is written to
  disk at all; a majority has the entry in memory when it commits.
* journal: ``SyncObjConf(journalFile=..., fullDumpFile=...)``, files under
  bench/results/ (the same filesystem raft_bench writes to). PySyncObj's
  FileJournal writes entries into an mmap of the journal file and never
  calls fsync/msync while running (only mmap.flush() on close); term and vote
  go to a .meta file once a second without fsync. There is no option for
  fsync per entry or per batch. So an entry survives a process crash (the
  page cache has it) but not a power loss or kernel crash.

* journal-nobatch: the journal setting with ``appendEntriesUseBatch=False``
  (not a default): the leader sends append_entries as soon as a command is
  queued instead of on its 100 ms appendEntriesPeriod. With the defaults a
  closed loop of callers is bound by that period (each call waits for the
  next send); PySyncObj's own benchmark is open-loop (a fixed rate of calls
  per second), which hides that wait in its throughput figure.

None is comparable in durability to riverlog, whose driver fsyncs every
Ready before acknowledging (a committed entry is on disk on a majority);
the journal settings are the closer (they do write the file).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
NODES = (1, 2, 3)


# -- the node process ----------------------------------------------------------------


def run_node(args) -> None:
    from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

    class Counter(SyncObj):
        def __init__(self, self_addr, others, conf):
            super().__init__(self_addr, others, conf)
            self.count = 0

        @replicated
        def add(self, payload):
            self.count += 1

    ports = [int(p) for p in args.ports.split(",")]
    addrs = [f"127.0.0.1:{p}" for p in ports]
    me = addrs[args.node - 1]
    others = [a for a in addrs if a != me]
    conf = {}
    if args.journal:
        os.makedirs(args.data, exist_ok=True)
        conf = {"journalFile": os.path.join(args.data, "journal"), "fullDumpFile": os.path.join(args.data, "dump")}
    if args.no_batch:
        conf["appendEntriesUseBatch"] = False
    obj = Counter(me, others, SyncObjConf(**conf))
    emit("up", node=args.node)

    # Wait until this node leads and has committed an entry of its own term.
    while True:
        time.sleep(0.01)
        if not obj._isLeader():
            continue
        try:
            obj.add(b"first", sync=True, timeout=5)
        except Exception:
            continue
        if obj._isLeader():
            break
    emit("committed", node=args.node, term=obj.raftCurrentTerm)

    payload = os.urandom(args.entry_bytes)
    lock = threading.Lock()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    state = {"active": args.proposers}
    finished = threading.Event()
    deadline = time.perf_counter() + args.seconds

    def issue() -> None:
        start = time.perf_counter()

        def callback(result, err) -> None:
            now = time.perf_counter()
            with lock:
                if err == FAIL_REASON.SUCCESS:
                    latencies.append(now - start)
                else:
                    errors[str(err)] = errors.get(str(err), 0) + 1
                if now >= deadline:
                    state["active"] -= 1
                    if state["active"] == 0:
                        finished.set()
                    return
            issue()

        obj.add(payload, callback=callback)

    start = time.perf_counter()
    for _ in range(args.proposers):
        issue()
    finished.wait(args.seconds + 30)
    elapsed = time.perf_counter() - start
    with lock:
        lat = sorted(latencies)
    result = {"ops_per_s": len(lat) / elapsed, "proposals": len(lat), "errors": errors, "term": obj.raftCurrentTerm,
              "p50_ms": 1000 * lat[len(lat) // 2] if lat else None,
              "p99_ms": 1000 * lat[int(len(lat) * 0.99)] if lat else None}  # fmt: skip
    emit("load", node=args.node, **result)
    while True:  # stay up until the parent kills the quorum
        time.sleep(1)


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


# -- the driver ----------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def one_run(work: str, name: str, args, setting: str) -> dict:
    ports = ",".join(map(str, free_ports(len(NODES))))
    procs: dict[int, subprocess.Popen] = {}
    buffers = {v: "" for v in NODES}
    try:
        for v in NODES:
            argv = [sys.executable, os.path.abspath(__file__), "--node", str(v), "--ports", ports,
                    "--data", os.path.join(work, name, f"node{v}"), "--seconds", str(args.seconds),
                    "--proposers", str(args.proposers), "--entry-bytes", str(args.entry_bytes)]  # fmt: skip
            if "journal" in setting:
                argv.append("--journal")
            if "nobatch" in setting:
                argv.append("--no-batch")
            procs[v] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            os.set_blocking(procs[v].stdout.fileno(), False)
        deadline = time.monotonic() + args.seconds + 60
        while time.monotonic() < deadline:
            for v, proc in procs.items():
                try:
                    chunk = os.read(proc.stdout.fileno(), 1 << 16)
                except (BlockingIOError, OSError):
                    chunk = b""
                if chunk:
                    buffers[v] += chunk.decode()
                    *lines, buffers[v] = buffers[v].split("\n")
                    for line in lines:
                        if line.startswith("{"):
                            event = json.loads(line)
                            if event["event"] == "load":
                                return event
            time.sleep(0.01)
        return {"error": "no load result"}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()


def med(runs: list[dict], key: str):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--proposers", type=int, default=64)
    parser.add_argument("--entry-bytes", type=int, default=64)
    parser.add_argument("--settings", default="defaults,journal,journal-nobatch")
    # node process
    parser.add_argument("--node", type=int)
    parser.add_argument("--ports")
    parser.add_argument("--data")
    parser.add_argument("--journal", action="store_true")
    parser.add_argument("--no-batch", action="store_true")
    args = parser.parse_args()
    if args.node is not None:
        run_node(args)
        return

    import pysyncobj.version

    os.makedirs(RESULTS, exist_ok=True)
    work = os.path.join(RESULTS, f"pysyncobj-run-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
                         f"Python {platform.python_version()}",
              "pysyncobj": pysyncobj.version.VERSION, "entry_bytes": args.entry_bytes,
              "proposers": args.proposers, "seconds": args.seconds}  # fmt: skip
    print(f"machine: {report['machine']}; PySyncObj {report['pysyncobj']}")
    try:
        for setting in args.settings.split(","):
            runs = []
            for i in range(args.runs):
                r = one_run(work, f"{setting}-{i}", args, setting)
                runs.append(r)
                print(f"  {setting} run {i + 1}: {r.get('ops_per_s', 0):,.0f} ops/s, p50 {r.get('p50_ms') or 0:.1f} ms, "
                      f"p99 {r.get('p99_ms') or 0:.1f} ms, errors {r.get('errors', r.get('error'))}", flush=True)  # fmt: skip
            summary = {k: med(runs, k) for k in ("ops_per_s", "p50_ms", "p99_ms")}
            report[setting] = {"runs": runs, "median": summary}
            print(f"{setting}: one 64-byte entry per call, {args.proposers} callers: median of {args.runs} runs "
                  f"{summary['ops_per_s'] or 0:,.0f} ops/s, p50 {summary['p50_ms'] or 0:.1f} ms, "
                  f"p99 {summary['p99_ms'] or 0:.1f} ms")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path = os.path.join(RESULTS, "pysyncobj.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    print(f"report: {path}")


if __name__ == "__main__":
    main()
