"""Broker benchmark: librdkafka produce/consume against riverlog and a stand-in.

    python -m bench.broker_bench [--records N] [--records-1k N] [--runs 3]
                                 [--kcat-records N] [--rtt 1000]
                                 [--codecs none,lz4,gzip,zstd] [--produce-only]

Starts a riverlog broker (fresh data dir under bench/results/) and the
stand-in (bench/standin_server.py: answers Produce, stores nothing), then:

* produce, for {100-byte, 1 KiB} x {acks=1, acks=all}, to a 6-partition topic
  with confluent-kafka (librdkafka) running in a separate process (linger.ms=5,
  batch.size 1 MB, no compression, no idempotence), alternately against
  riverlog and the stand-in, ``--runs`` times: records/s, MB/s (payload
  bytes, 10^6), produce latency p50/p99 (librdkafka's per-message latency,
  produce() call to delivery report, under this saturating load), and the
  server process's CPU seconds per GB of payload (/proc/PID/stat utime+stime
  before and after the run). The ratio riverlog / stand-in of the median
  records/s is the broker's efficiency.
* with ``--codecs``, the produce rows again with each ``compression.type``
  given (acks=1 only: on one node acks=all waits for the same thing). The
  stand-in never decompresses; riverlog decompresses and walks every
  batch's records before appending (``bench.records_check_bench`` times that
  part alone). ``--produce-only`` leaves out kcat, consume and round trip.
* kcat (if installed): ``kcat -P -l FILE`` of 100-byte lines with acks=1,
  timed from process start to exit (includes kcat's start-up and metadata).
* consume: a librdkafka consumer reading every 1 KiB record from offset 0
  (just written, so from page cache) with ``consume(500)``, riverlog only (the
  stand-in has no Fetch); timed from the first record received to the last,
  with the broker's CPU seconds per GB.
* round trip: one record, wait for its delivery report, ``--rtt`` times,
  acks=1, linger.ms=0, ``--runs`` times alternately: the medians of the
  runs' p50 and p99.

Before each measured run the previous run's dirty pages are synced, so no
run pays for another's writeback. The server's CPU per GB is also split out
into its kernel share: on a VM that hands new pages to the guest lazily (and
takes freed ones back), each new page of page cache costs the broker a fault
in the host, which the stand-in, storing nothing, never pays (README).

Prints a table and writes JSON to bench/results/broker.json. Every child
process is started by this script and killed in a ``finally``; every wait has
a timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.workers import ROOT, cpu_model, fmt, median, run_worker, serve_worker, settle, work_dir, write_report

PARTITIONS = 6
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- workers
# Each runs in its own process (python -m bench.broker_bench --worker JSON)
# and prints one JSON line.


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[i]


def _worker_produce(a: dict) -> dict:
    from confluent_kafka import Producer

    latencies: list[float] = []
    errors = [0]
    first_error: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            errors[0] += 1
            if not first_error:
                first_error.append(str(err))
        else:
            latencies.append(msg.latency())

    p = Producer({
        "bootstrap.servers": a["bootstrap"],
        "acks": a["acks"],
        "linger.ms": a.get("linger_ms", 5),
        "batch.size": 1_000_000,
        "compression.type": a.get("compression", "none"),
        "enable.idempotence": False,
        "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 2_000_000,
        "message.timeout.ms": 60_000,
        "on_delivery": on_delivery,
    })  # fmt: skip
    topic, value, n = a["topic"], b"x" * a["size"], a["records"]
    # Warm-up: connection, ApiVersions, metadata, one delivered record.
    p.produce(topic, value)
    if p.flush(30) != 0 or errors[0]:
        return {"error": f"warm-up failed: {first_error}"}
    latencies.clear()
    produce, poll = p.produce, p.poll
    t0 = time.perf_counter()
    for i in range(n):
        while True:
            try:
                produce(topic, value)
                break
            except BufferError:
                poll(0.001)
        if i & 1023 == 0:
            poll(0)
    left = p.flush(a.get("timeout", 120))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "records": n, "delivered": len(latencies), "errors": errors[0], "first_error": first_error[:1],
        "undelivered": left, "seconds": elapsed,
        "records_per_s": len(latencies) / elapsed, "mb_per_s": len(latencies) * a["size"] / elapsed / 1e6,
        "p50_ms": _ms(_percentile(latencies, 0.50)), "p99_ms": _ms(_percentile(latencies, 0.99)),
    }  # fmt: skip


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _worker_rtt(a: dict) -> dict:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": a["bootstrap"], "acks": 1, "linger.ms": 0, "enable.idempotence": False})
    errors = [0]

    def on_delivery(err, msg):
        if err is not None:
            errors[0] += 1

    topic, value = a["topic"], b"x" * a["size"]
    for _ in range(20):  # warm-up
        p.produce(topic, value, partition=0, on_delivery=on_delivery)
        p.flush(10)
    times = []
    deadline = time.monotonic() + a.get("timeout", 60)
    for _ in range(a["count"]):
        t = time.perf_counter()
        p.produce(topic, value, partition=0, on_delivery=on_delivery)
        if p.flush(10) != 0:
            errors[0] += 1
            break
        times.append(time.perf_counter() - t)
        if time.monotonic() > deadline:
            break
    times.sort()
    return {"count": len(times), "errors": errors[0], "p50_us": _percentile(times, 0.5) * 1e6,
            "p99_us": _percentile(times, 0.99) * 1e6}  # fmt: skip


def _worker_consume(a: dict) -> dict:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    # librdkafka's default fetch sizes and queue: raising queued.max.messages.kbytes
    # lets it buffer the whole topic in fresh memory, which slowed it down.
    c = Consumer({"bootstrap.servers": a["bootstrap"], "group.id": "bench-unused", "enable.auto.commit": False,
                  "enable.partition.eof": False})  # fmt: skip
    try:
        total = 0
        for i in range(PARTITIONS):
            low, high = c.get_watermark_offsets(TopicPartition(a["topic"], i), timeout=10)
            total += high - low
        c.assign([TopicPartition(a["topic"], i, OFFSET_BEGINNING) for i in range(PARTITIONS)])
        got = nbytes = errors = 0
        t0 = None  # the clock starts at the first record: connection and metadata set-up excluded
        deadline = time.monotonic() + a.get("timeout", 120)
        while got < total and time.monotonic() < deadline:
            # 500 a call, as in librdkafka's examples, and never more than are
            # left: consume() returns only once it has them all or its timeout
            # passed, so asking for more than remain added a whole second.
            for m in c.consume(num_messages=min(500, total - got), timeout=1.0):
                if t0 is None:
                    t0 = time.perf_counter()
                if m.error() is not None:
                    errors += 1
                    continue
                got += 1
                nbytes += len(m.value())
        elapsed = time.perf_counter() - t0 if t0 is not None else float("nan")
    finally:
        c.close()
    return {"expected": total, "records": got, "errors": errors, "seconds": elapsed,
            "records_per_s": got / elapsed, "mb_per_s": nbytes / elapsed / 1e6}  # fmt: skip


WORKERS = {"produce": _worker_produce, "rtt": _worker_rtt, "consume": _worker_consume}


# ---------------------------------------------------------------- servers


def _cpu_seconds(pid: int) -> float:
    """utime+stime of pid and its live descendants, in seconds."""
    return sum(_cpu_split(pid))


def _cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of pid and its live descendants, in seconds."""
    user = system = 0.0
    pids = {pid}
    try:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                fields = stat[stat.rindex(")") + 2 :].split()
                if int(fields[1]) in pids or int(entry) == pid:
                    pids.add(int(entry))
    except OSError:
        pass
    for p in pids:
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        user += int(fields[11]) / CLK_TCK  # fields 14 and 15 of the whole line
        system += int(fields[12]) / CLK_TCK
    return user, system


def _standin(port: int, log_path: Path):
    """The do-nothing stand-in server (bench/standin_server.py) as a process."""
    from tests.integration.broker_process import ServerProcess

    class StandInProcess(ServerProcess):
        name = "stand-in"
        cwd = ROOT

        def argv(self) -> list[str]:
            return [sys.executable, "-m", "bench.standin_server", "--port", str(self.port),
                    "--partitions", str(PARTITIONS)]  # fmt: skip

    return StandInProcess(port, log_path)


def _create_topics(bootstrap: str, names: list[str]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names], request_timeout=30)
    for f in futures.values():
        f.result(timeout=30)


def _kcat(bootstrap: str, topic: str, path: Path, records: int, timeout: float) -> dict:
    kcat = shutil.which("kcat")
    cmd = [kcat, "-P", "-b", bootstrap, "-t", topic, "-l", str(path),
           "-X", "acks=1", "-X", "linger.ms=5", "-X", "batch.size=1000000",
           "-X", "queue.buffering.max.messages=2000000", "-X", "queue.buffering.max.kbytes=2000000"]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"error": f"kcat timed out after {timeout:.0f}s"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": f"kcat exit {proc.returncode}: {err.strip()[-300:]}"}
    return {"records": records, "seconds": elapsed, "records_per_s": records / elapsed,
            "mb_per_s": records * 100 / elapsed / 1e6, "stderr": err.strip()[-300:]}  # fmt: skip


# ---------------------------------------------------------------- main




def run(args) -> dict:
    from tests.integration.broker_process import BrokerProcess, free_port

    work = work_dir("broker")
    broker = BrokerProcess(work / "data")
    standin = _standin(free_port(), work / "standin.log")
    report: dict = {
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "cpu": cpu_model()},
        "command": "python -m bench.broker_bench " + " ".join(sys.argv[1:]),
        "params": vars(args) | {"partitions": PARTITIONS},
        "produce": [], "kcat": {}, "consume": None, "rtt": {},
    }  # fmt: skip
    try:
        broker.start()
        standin.start()
        servers = {"riverlog": broker, "standin": standin}
        sizes = {100: args.records, 1024: args.records_1k}
        # A topic per size and codec: the consume row reads the uncompressed 1 KiB one.
        topics = {(size, codec): f"bench-{size}" + ("" if codec == "none" else f"-{codec}")
                  for size in sizes for codec in args.codecs}  # fmt: skip
        names = [*topics.values(), "bench-1024", "bench-kcat", "bench-rtt"]
        _create_topics(broker.bootstrap, list(dict.fromkeys(names)))

        for codec in args.codecs:
            for size, n in sizes.items():
                for acks in ("1", "all") if codec == "none" else ("1",):
                    row = _produce_row(args, servers, topics[size, codec], size, n, acks, codec)
                    report["produce"].append(row)

        if not args.produce_only:
            _other_rows(args, report, work, broker, servers)
    finally:
        standin.close()
        try:
            if broker.proc is not None and broker.proc.poll() is None:
                broker.stop(timeout=30)
        except Exception:
            pass
        broker.close()
        if not args.keep:  # --keep leaves the data dir and the servers' logs
            shutil.rmtree(work, ignore_errors=True)
    return report


def _produce_row(args, servers: dict, topic: str, size: int, n: int, acks: str, codec: str) -> dict:
    row = {"size": size, "acks": acks, "codec": codec, "records": n, "runs": {"riverlog": [], "standin": []}}
    for r in range(args.runs):
        for name, server in servers.items():
            pid = server.proc.pid
            settle()
            user0, sys0 = _cpu_split(pid)
            res = run_worker("bench.broker_bench", "produce", {"bootstrap": server.bootstrap, "topic": topic,
                                                                "size": size, "acks": acks, "records": n,
                                                                "compression": codec, "timeout": args.timeout},
                             timeout=args.timeout + 60)  # fmt: skip
            user1, sys1 = _cpu_split(pid)
            if "error" not in res:
                gb = res["delivered"] * size / 1e9
                res["server_cpu_s"] = cpu = user1 - user0 + sys1 - sys0
                res["server_cpu_s_per_gb"] = cpu / gb if gb else None
                # the kernel's share: copies into the page cache, and on a VM the
                # host's first touch of each new page (see README)
                res["server_sys_s_per_gb"] = (sys1 - sys0) / gb if gb else None
            row["runs"][name].append(res)
            print(f"  produce {size}B acks={acks} {codec} run {r + 1} {name}: "
                  + (res["error"] if "error" in res else
                     f"{res['records_per_s']:,.0f} rec/s p50 {res['p50_ms']:.1f} ms"), flush=True)  # fmt: skip
    for name in servers:
        ok = [x for x in row["runs"][name] if "error" not in x]
        row[name] = {k: median([x.get(k) for x in ok])
                     for k in ("records_per_s", "mb_per_s", "p50_ms", "p99_ms", "server_cpu_s_per_gb",
                               "server_sys_s_per_gb")}  # fmt: skip
    rl, si = row["riverlog"]["records_per_s"], row["standin"]["records_per_s"]
    row["ratio"] = rl / si if rl and si else None
    return row


def _other_rows(args, report: dict, work: Path, broker, servers: dict) -> None:
    """kcat, consume and the round trip."""
    if shutil.which("kcat"):
        lines = work / "lines100.txt"
        with open(lines, "wb") as f:
            f.write((b"y" * 100 + b"\n") * args.kcat_records)
        for name, server in servers.items():
            runs = []
            for _ in range(args.runs):
                settle()
                cpu0 = _cpu_seconds(server.proc.pid)
                res = _kcat(server.bootstrap, "bench-kcat", lines, args.kcat_records, args.timeout)
                res["server_cpu_s"] = _cpu_seconds(server.proc.pid) - cpu0
                runs.append(res)
                print(f"  kcat {name}: " + res.get("error", f"{res.get('records_per_s', 0):,.0f} rec/s"), flush=True)
            ok = [x for x in runs if "error" not in x]
            report["kcat"][name] = {"runs": runs, "records_per_s": median([x["records_per_s"] for x in ok]),
                                    "mb_per_s": median([x["mb_per_s"] for x in ok])}  # fmt: skip
        rl, si = (report["kcat"][k]["records_per_s"] for k in ("riverlog", "standin"))
        report["kcat"]["ratio"] = rl / si if rl and si else None
    else:
        report["kcat"] = {"error": "kcat not installed"}

    runs = []
    for _ in range(args.runs):
        settle()
        cpu0 = _cpu_seconds(broker.proc.pid)
        runs.append(run_worker("bench.broker_bench", "consume", {"bootstrap": broker.bootstrap, "topic": "bench-1024",
                                            "timeout": args.timeout}, timeout=args.timeout + 60))  # fmt: skip
        if "error" not in runs[-1]:
            gb = runs[-1]["mb_per_s"] * runs[-1]["seconds"] / 1000
            runs[-1]["broker_cpu_s_per_gb"] = (_cpu_seconds(broker.proc.pid) - cpu0) / gb if gb else None
        print("  consume 1KiB riverlog: " + runs[-1].get("error", f"{runs[-1].get('records_per_s', 0):,.0f} rec/s"
                                                     f" ({runs[-1].get('records')}/{runs[-1].get('expected')})"),
              flush=True)  # fmt: skip
    ok = [x for x in runs if "error" not in x]
    report["consume"] = {"runs": runs, "records_per_s": median([x["records_per_s"] for x in ok]),
                         "mb_per_s": median([x["mb_per_s"] for x in ok]),
                         "broker_cpu_s_per_gb": median([x["broker_cpu_s_per_gb"] for x in ok
                                                        if x.get("broker_cpu_s_per_gb") is not None])}  # fmt: skip

    rtt_runs: dict[str, list[dict]] = {name: [] for name in servers}
    for _ in range(args.runs):  # alternately, like the produce runs: single runs move by tens of us
        for name, server in servers.items():
            settle()
            res = run_worker("bench.broker_bench", "rtt", {"bootstrap": server.bootstrap, "topic": "bench-rtt",
                                      "size": 100, "count": args.rtt, "timeout": args.timeout},
                             timeout=args.timeout + 60)  # fmt: skip
            rtt_runs[name].append(res)
            print(f"  round trip {name}: " + res.get("error", f"p50 {res.get('p50_us', 0):.0f} us"), flush=True)
    for name, runs in rtt_runs.items():
        ok = [x for x in runs if "error" not in x]
        report["rtt"][name] = ({"runs": runs, "count": sum(x["count"] for x in ok),
                                "p50_us": median([x["p50_us"] for x in ok]),
                                "p99_us": median([x["p99_us"] for x in ok])}
                               if ok else runs[-1])  # fmt: skip


def print_table(report: dict) -> None:
    m = report["machine"]
    print(f"\nmachine: {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, {m['platform']}")
    print(f"command: {report['command']}   (medians of {report['params']['runs']} runs)\n")
    hdr = (f"{'produce (confluent-kafka)':<26}{'server':<10}{'records/s':>12}{'MB/s':>9}{'p50 ms':>9}"
           f"{'p99 ms':>9}{'CPU s/GB':>10}{'of it sys':>10}{'ratio':>8}")  # fmt: skip
    print(hdr)
    print("-" * len(hdr))
    for row in report["produce"]:
        codec = "" if row.get("codec", "none") == "none" else f" {row['codec']}"
        label = f"{row['size']}B acks={row['acks']}{codec} x{row['records']:,}"
        for name in ("riverlog", "standin"):
            r = row[name]
            ratio = fmt(row["ratio"], ".2f") if name == "riverlog" else ""
            print(f"{label if name == 'riverlog' else '':<26}{name:<10}{fmt(r['records_per_s']):>12}"
                  f"{fmt(r['mb_per_s'], '.1f'):>9}{fmt(r['p50_ms'], '.1f'):>9}{fmt(r['p99_ms'], '.1f'):>9}"
                  f"{fmt(r['server_cpu_s_per_gb'], '.1f'):>10}{fmt(r['server_sys_s_per_gb'], '.1f'):>10}{ratio:>8}")  # fmt: skip
    if report["params"].get("produce_only"):
        return
    k = report["kcat"]
    if "error" in k:
        print(f"\nkcat: {k['error']}")
    else:
        n = report["params"]["kcat_records"]
        print(f"\nkcat -P -l, 100B lines, acks=1, x{n:,}: riverlog {fmt(k['riverlog']['records_per_s'])} rec/s, "
              f"stand-in {fmt(k['standin']['records_per_s'])} rec/s, ratio {fmt(k['ratio'], '.2f')}")  # fmt: skip
    c = report["consume"]
    if c:
        print(f"consume 1KiB from offset 0 (librdkafka, riverlog): {fmt(c['records_per_s'])} rec/s, "
              f"{fmt(c['mb_per_s'], '.1f')} MB/s, broker CPU {fmt(c['broker_cpu_s_per_gb'], '.2f')} s/GB")  # fmt: skip
    for name, r in report["rtt"].items():
        if "error" in r:
            print(f"round trip {name}: {r['error']}")
        else:
            print(f"single-record produce round trip (acks=1) {name:<9}: p50 {r['p50_us']:.0f} us, "
                  f"p99 {r['p99_us']:.0f} us (medians over runs; n={r['count']})")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=400_000, help="100-byte records per produce run")
    ap.add_argument("--records-1k", type=int, default=100_000, help="1 KiB records per produce run")
    ap.add_argument("--kcat-records", type=int, default=1_000_000, help="100-byte lines per kcat run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rtt", type=int, default=1000, help="single-record round trips")
    ap.add_argument("--timeout", type=float, default=120, help="seconds allowed for each load run")
    ap.add_argument("--codecs", type=lambda v: v.split(","), default=["none"],
                    help="compression.type of the produce rows, comma-separated (none, gzip, snappy, lz4, zstd)")
    ap.add_argument("--produce-only", action="store_true", help="leave out kcat, consume and round trip")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (data, logs) under bench/results/")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        serve_worker(args.worker, WORKERS)
        return
    report = run(args)
    print_table(report)
    out = write_report("broker", report)
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
