"""Consumer-group benchmark: takeover times and the latency a group adds, with librdkafka.

    python -m bench.group_bench [--runs 5] [--session-timeout-ms 6000]
                                [--heartbeat-ms 1000] [--latency-seconds 5] [--seed 1]

Starts one riverlog broker (fresh data dir under bench/results/) with
group.initial.rebalance.delay.ms=0 (Kafka's default is 3000: the first join
of an empty group would wait that long) and group.min.session.timeout.ms=1000;
every consumer is confluent-kafka (librdkafka) in its own process, with its
default assignor (range,roundrobin: eager rebalances, so every member gives
up all its partitions and gets its new share back).

* leave: three members of one group on a 6-partition topic, stable at two
  partitions each; one calls ``close()`` (a LeaveGroup). Timed from that
  call until the other two together own all six partitions again.
* kill: the same, but one member is killed (SIGKILL, no LeaveGroup); timed
  from the kill. The broker only notices once the member's session times out
  (``--session-timeout-ms``, counted from its last heartbeat, so between
  session - heartbeat and session after the kill), and the survivors only
  learn of the rebalance at their next heartbeat; so the takeover falls in
  [session - heartbeat, session + heartbeat] plus one JoinGroup/SyncGroup
  round, and is also given minus the session timeout (negative when the
  member's last heartbeat came well before the kill).
  Members heartbeat in step (their timers start at the same SyncGroup
  answer), so the close or kill comes at a random moment (seeded, ``--seed``)
  within one heartbeat interval after the group has been quiet for 0.5 s;
  without that it would always fall at the same point of the heartbeat
  cycle and every run would give the same figure.
  Members print every assignment change (on_assign / on_revoke / on_lost) as
  a JSON line stamped with ``time.time()``; the driver and the members are
  on one machine, so their wall clocks compare. "Noticed" is the first
  revoke in a survivor after the close or kill (the start of the rebalance
  as the survivors see it), "owned" the moment the union of the survivors'
  assignments is all six partitions again.
* latency: a producer (linger.ms=0, acks=1) sends one record every 5 ms for
  ``--latency-seconds`` to a fresh 6-partition topic, value = ``time.time_ns()``
  at ``produce()``; a consumer records receive time - value for each, (a)
  with ``assign()`` of all six partitions, (b) in a group, subscribed, once
  it owns all six. Same settings otherwise (librdkafka's fetch defaults:
  fetch.wait.max.ms=500, fetch.min.bytes=1; auto-commit on, every 5 s).
  (a) and (b) run one after the other, each with its own producer, in
  alternating order. Both are ready (a warm-up record from every partition
  received) before the timed records are sent. The figure is the difference
  of the p50s and of the p99s, group - assigned.

Medians over ``--runs``. Prints a table and writes JSON to
bench/results/group.json. Every child process is started here and killed in
a ``finally``; every wait has a timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.workers import ROOT, fmt, machine, median, run_worker, serve_worker, work_dir, worker_argv, write_report

PARTITIONS = 6
MEMBERS = 3
SEND_INTERVAL_S = 0.005
SLOW_MS = 20
BROKER_SETTINGS = {
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    "num.partitions": str(PARTITIONS),
}


def _emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


def _stdin_lines(into: list[str], arrived: threading.Event) -> None:
    """Read commands from the driver in a thread; the poll loop stays responsive."""
    for line in sys.stdin:
        into.append(line.strip())
        arrived.set()
    into.append("eof")
    arrived.set()


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[i]


# ---------------------------------------------------------------- workers
# Each runs in its own process (python -m bench.group_bench --worker JSON).
# "member" and "consume" are long-lived: they print JSON event lines and take
# commands on stdin; "produce" and "topics" print one JSON line and exit.


def _group_conf(a: dict) -> dict:
    return {
        "bootstrap.servers": a["bootstrap"],
        "group.id": a["group"],
        "session.timeout.ms": a["session_timeout_ms"],
        "heartbeat.interval.ms": a["heartbeat_ms"],
        "auto.offset.reset": "earliest",
    }


def _worker_member(a: dict) -> None:
    """A group member that reports every assignment change; ``close`` on stdin closes it."""
    from confluent_kafka import Consumer

    consumer = Consumer(_group_conf(a) | {"enable.auto.commit": False})

    def on_assign(c, partitions):
        _emit("assign", partitions=sorted(tp.partition for tp in partitions))

    def on_revoke(c, partitions):
        _emit("revoke", partitions=sorted(tp.partition for tp in partitions))

    def on_lost(c, partitions):
        _emit("lost", partitions=sorted(tp.partition for tp in partitions))

    commands: list[str] = []
    arrived = threading.Event()
    threading.Thread(target=_stdin_lines, args=(commands, arrived), daemon=True).start()
    consumer.subscribe([a["topic"]], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    _emit("started")
    while not arrived.is_set():
        msg = consumer.poll(0.02)
        if msg is not None and msg.error() is not None:
            _emit("error", error=str(msg.error()))
    _emit("closing")
    consumer.close()
    _emit("closed")


def _worker_consume(a: dict) -> None:
    """Latency consumer, mode "assign" or "group". Prints ``ready`` once a warm-up
    record of every partition has arrived; ``stop N`` on stdin ends it once N
    timed records are in (or after a grace period) and it prints the result."""
    from confluent_kafka import Consumer, TopicPartition

    conf = _group_conf(a) | {"enable.partition.eof": False}
    consumer = Consumer(conf)
    if a["mode"] == "assign":
        consumer.assign([TopicPartition(a["topic"], p, 0) for p in range(PARTITIONS)])
    else:
        consumer.subscribe([a["topic"]], on_assign=lambda c, ps: _emit("assign", partitions=[p.partition for p in ps]))
    commands: list[str] = []
    arrived = threading.Event()
    threading.Thread(target=_stdin_lines, args=(commands, arrived), daemon=True).start()
    warm: set[int] = set()
    latencies_ms: list[float] = []
    slow: list[dict] = []  # records over SLOW_MS, to place a stall in time
    errors: list[str] = []
    expected = None
    stop_deadline = None
    try:
        while True:
            msg = consumer.poll(0.05)
            now_ns = time.time_ns()
            if msg is not None:
                if msg.error() is not None:
                    errors.append(str(msg.error()))
                elif msg.value() == b"warm-up":
                    if len(warm) < PARTITIONS:
                        warm.add(msg.partition())
                        if len(warm) == PARTITIONS:
                            _emit("ready")
                else:
                    sent_ns = int(msg.value())
                    latencies_ms.append((now_ns - sent_ns) / 1e6)
                    if latencies_ms[-1] > SLOW_MS and len(slow) < 50:
                        slow.append({"sent_t": sent_ns / 1e9, "ms": latencies_ms[-1], "partition": msg.partition()})
            if arrived.is_set() and expected is None:
                cmd = commands[0].split()
                expected = int(cmd[1]) if len(cmd) > 1 and cmd[0] == "stop" else 0
                stop_deadline = time.monotonic() + a.get("grace_s", 10)
            if expected is not None and (len(latencies_ms) >= expected or time.monotonic() > stop_deadline):
                break
    finally:
        consumer.close()
    latencies_ms.sort()
    _emit("result", mode=a["mode"], expected=expected, received=len(latencies_ms), errors=errors[:3],
          p50_ms=_percentile(latencies_ms, 0.5), p99_ms=_percentile(latencies_ms, 0.99),
          max_ms=latencies_ms[-1] if latencies_ms else None, slow=slow)  # fmt: skip


def _worker_produce(a: dict) -> dict:
    """One warm-up record per partition (``warm``), or timed records every 5 ms (``seconds``)."""
    from confluent_kafka import Producer

    failed: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            failed.append(str(err))

    p = Producer({"bootstrap.servers": a["bootstrap"], "acks": 1, "linger.ms": 0, "enable.idempotence": False,
                  "on_delivery": on_delivery})  # fmt: skip
    topic = a["topic"]
    if a.get("warm"):
        for part in range(PARTITIONS):
            p.produce(topic, b"warm-up", partition=part)
        left = p.flush(30)
        return {"sent": PARTITIONS, "undelivered": left, "failed": failed[:3]}
    n = int(a["seconds"] / SEND_INTERVAL_S)
    start = time.monotonic()
    for i in range(n):
        delay = start + i * SEND_INTERVAL_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        p.produce(topic, str(time.time_ns()).encode())
        p.poll(0)
    left = p.flush(30)
    return {"sent": n, "undelivered": left, "failed": failed[:3], "seconds": time.monotonic() - start}


def _worker_topics(a: dict) -> dict:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": a["bootstrap"]})
    futures = admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in a["names"]], request_timeout=30)
    for f in futures.values():
        f.result(timeout=30)
    return {"created": a["names"]}


WORKERS = {"member": _worker_member, "consume": _worker_consume, "produce": _worker_produce,
           "topics": _worker_topics}  # fmt: skip


class LiveWorker:
    """A long-lived worker process; its JSON event lines are collected by a thread."""

    def __init__(self, kind: str, args: dict, log_path: Path) -> None:
        self.name = args.get("name", kind)
        self._stderr = open(log_path, "a")
        self.proc = subprocess.Popen(worker_argv("bench.group_bench", kind, args), cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True)  # fmt: skip
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                with self._lock:
                    self.events.append(json.loads(line))

    def snapshot(self) -> list[dict]:
        with self._lock:
            return list(self.events)

    def owned(self) -> set[int]:
        """Partitions owned now, replaying assign/revoke/lost."""
        return _owned_at(self.snapshot(), float("inf"))

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_event(self, name: str, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for e in self.snapshot():
                if e["event"] == name:
                    return e
            if self.proc.poll() is not None:
                time.sleep(0.1)  # let the reader take the last lines
                for e in self.snapshot():
                    if e["event"] == name:
                        return e
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) before '{name}'")
            time.sleep(0.01)
        raise TimeoutError(f"{self.name}: no '{name}' within {timeout_s:.0f}s")

    def close(self, timeout_s: float = 10) -> None:
        """``close`` on stdin, then kill if it has not exited within the timeout."""
        if self.proc.poll() is None:
            try:
                self.send("close")
                self.proc.wait(timeout=timeout_s)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        self._stderr.close()


def _owned_at(events: list[dict], t: float) -> set[int]:
    owned: set[int] = set()
    for e in events:
        if e["t"] > t:
            break
        if e["event"] == "assign":
            owned |= set(e["partitions"])
        elif e["event"] in ("revoke", "lost"):
            owned -= set(e["partitions"])
    return owned


def _wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.01)


# ---------------------------------------------------------------- takeover


def _takeover_run(bootstrap: str, topic: str, group: str, how: str, args, work: Path, phase_s: float) -> dict:
    """Three members, stable; one leaves (``close``) or is killed; when do the others own all six?"""
    common = {"bootstrap": bootstrap, "topic": topic, "group": group,
              "session_timeout_ms": args.session_timeout_ms, "heartbeat_ms": args.heartbeat_ms}  # fmt: skip
    members = [LiveWorker("member", common | {"name": f"{group}-m{i}"}, work / "members.log") for i in range(MEMBERS)]
    try:
        def balanced() -> bool:
            owned = [m.owned() for m in members]
            latest = max((e["t"] for m in members for e in m.snapshot()), default=time.time())
            return (sorted(p for o in owned for p in o) == list(range(PARTITIONS))
                    and all(len(o) == PARTITIONS // MEMBERS for o in owned)
                    and time.time() - latest > 0.5)  # fmt: skip

        started = time.monotonic()
        _wait_until(balanced, args.timeout, f"{group}: three members stable with two partitions each")
        stable_s = time.monotonic() - started
        time.sleep(phase_s)
        leaver, survivors = members[0], members[1:]
        if how == "leave":
            leaver.send("close")
            t0 = leaver.wait_event("closing", 10)["t"]  # stamped just before close()
        else:
            t0 = time.time()
            os.kill(leaver.proc.pid, signal.SIGKILL)
            leaver.proc.wait(timeout=10)

        def all_owned() -> bool:
            return sorted(p for m in survivors for p in m.owned()) == list(range(PARTITIONS))

        _wait_until(all_owned, args.timeout, f"{group}: the two survivors owning all six partitions")
        time.sleep(0.2)  # let any late line in
        # The first moment after t0 at which the survivors' union is all six again.
        timeline = sorted((e for m in survivors for e in m.snapshot() if e["t"] >= t0), key=lambda e: e["t"])
        def all_owned_at(t: float) -> bool:
            return sorted(p for m in survivors for p in _owned_at(m.snapshot(), t)) == list(range(PARTITIONS))

        owned_t = next(e["t"] for e in timeline if e["event"] == "assign" and all_owned_at(e["t"]))
        noticed = [e["t"] for e in timeline if e["event"] in ("revoke", "lost")]
        res = {
            "how": how, "group": group, "stable_after_s": stable_s, "phase_s": phase_s,
            "takeover_s": owned_t - t0,
            "noticed_s": (noticed[0] - t0) if noticed else None,
            "closed_s": None,
            "t0": t0, "final": [sorted(m.owned()) for m in survivors],
            "events": sorted([{"member": "driver", "event": how, "t": t0}]
                             + [{"member": m.name, **e} for m in members for e in m.snapshot() if e["t"] >= t0 - 0.1],
                             key=lambda e: e["t"]),
        }  # fmt: skip
        if how == "leave":
            closed = leaver.wait_event("closed", 10)
            res["closed_s"] = closed["t"] - t0
        return res
    finally:
        for m in members:
            m.close(timeout_s=5)


# ---------------------------------------------------------------- latency


def _latency_run(bootstrap: str, topic: str, mode: str, args, work: Path) -> dict:
    common = {"bootstrap": bootstrap, "topic": topic, "group": f"lat-{topic}", "mode": mode,
              "session_timeout_ms": args.session_timeout_ms, "heartbeat_ms": args.heartbeat_ms}  # fmt: skip
    consumer = LiveWorker("consume", common | {"name": f"{topic}-{mode}"}, work / "consumers.log")
    try:
        warm = run_worker("bench.group_bench", "produce", {"bootstrap": bootstrap, "topic": topic, "warm": True}, 60)
        if "error" in warm or warm["undelivered"]:
            raise RuntimeError(f"warm-up produce failed: {warm}")
        consumer.wait_event("ready", args.timeout)
        sent = run_worker("bench.group_bench", "produce", {"bootstrap": bootstrap, "topic": topic, "seconds": args.latency_seconds},
                           args.latency_seconds + 60)  # fmt: skip
        if "error" in sent:
            raise RuntimeError(f"timed produce failed: {sent['error']}")
        consumer.send(f"stop {sent['sent'] - sent['undelivered']}")
        result = consumer.wait_event("result", 30)
        result.pop("event")
        result.pop("t")
        return result | {"sent": sent["sent"], "produce_failed": sent["failed"]}
    finally:
        consumer.kill()


# ---------------------------------------------------------------- the run




def run(args) -> dict:
    from tests.integration.broker_process import BrokerProcess

    work = work_dir("group")
    extra = [x for k, v in BROKER_SETTINGS.items() for x in ("--set", f"{k}={v}")]
    broker = BrokerProcess(work / "data", extra=extra)
    report: dict = {
        "machine": machine(),
        "command": "python -m bench.group_bench " + " ".join(sys.argv[1:]),
        "params": {k: v for k, v in vars(args).items() if k != "worker"} | {"partitions": PARTITIONS},
        "broker_settings": BROKER_SETTINGS,
        "consumer_settings": {"session.timeout.ms": args.session_timeout_ms,
                              "heartbeat.interval.ms": args.heartbeat_ms,
                              "partition.assignment.strategy": "librdkafka default (range,roundrobin; eager)",
                              "fetch.wait.max.ms": "librdkafka default (500)"},
        "takeover": {"leave": [], "kill": []}, "latency": {"assign": [], "group": []}, "errors": [],
    }  # fmt: skip
    try:
        broker.start()
        report["broker_started_t"] = time.time()
        latency_topics = [f"latency-{r}-{mode}" for r in range(args.runs) for mode in ("assign", "group")]
        made = run_worker("bench.group_bench", "topics", {"bootstrap": broker.bootstrap, "names": ["takeover", *latency_topics]}, 60)
        if "error" in made:
            raise RuntimeError(made["error"])
        rng = random.Random(args.seed)
        for r in range(args.runs):
            for how in ("leave", "kill"):
                phase_s = rng.uniform(0, args.heartbeat_ms / 1000)
                try:
                    res = _takeover_run(broker.bootstrap, "takeover", f"{how}-{r}", how, args, work, phase_s)
                except (RuntimeError, TimeoutError) as e:
                    report["errors"].append(f"{how} run {r + 1}: {e}")
                    print(f"  {how} run {r + 1}: {e}", flush=True)
                    continue
                report["takeover"][how].append(res)
                print(f"  {how} run {r + 1}: takeover {res['takeover_s']:.3f} s (survivors noticed after "
                      f"{fmt(res['noticed_s'], '.3f')} s; stable after {res['stable_after_s']:.1f} s, then {phase_s:.3f} s)",
                      flush=True)  # fmt: skip
        for r in range(args.runs):
            modes = ("assign", "group") if r % 2 == 0 else ("group", "assign")
            for mode in modes:
                try:
                    res = _latency_run(broker.bootstrap, f"latency-{r}-{mode}", mode, args, work)
                except (RuntimeError, TimeoutError) as e:
                    report["errors"].append(f"latency {mode} run {r + 1}: {e}")
                    print(f"  latency {mode} run {r + 1}: {e}", flush=True)
                    continue
                report["latency"][mode].append(res)
                print(f"  latency {mode} run {r + 1}: p50 {fmt(res['p50_ms'], '.2f')} ms, p99 "
                      f"{fmt(res['p99_ms'], '.2f')} ms, max {fmt(res['max_ms'], '.1f')} ms "
                      f"({res['received']}/{res['expected']})", flush=True)  # fmt: skip
    finally:
        try:
            if broker.proc is not None and broker.proc.poll() is None:
                broker.stop(timeout=30)
        except Exception:
            pass
        broker.close()
        if not args.keep:  # --keep leaves the data dir, the broker's and the workers' logs
            shutil.rmtree(work, ignore_errors=True)
    _summarise(report, args)
    return report


def _summarise(report: dict, args) -> None:
    session_s = args.session_timeout_ms / 1000
    s = {}
    for how, runs in report["takeover"].items():
        s[how] = {"runs": len(runs), "takeover_s": median([x["takeover_s"] for x in runs]),
                  "noticed_s": median([x["noticed_s"] for x in runs]),
                  "min_s": min((x["takeover_s"] for x in runs), default=None),
                  "max_s": max((x["takeover_s"] for x in runs), default=None)}  # fmt: skip
    if s["kill"]["takeover_s"] is not None:
        s["kill"]["minus_session_s"] = s["kill"]["takeover_s"] - session_s
        # Expected at most: session timeout + one heartbeat (survivors learn at their next one) + a join/sync.
        slow = [x["takeover_s"] for x in report["takeover"]["kill"]
                if x["takeover_s"] > session_s + 2 * args.heartbeat_ms / 1000 + 1]  # fmt: skip
        if slow:
            s["kill"]["anomaly"] = f"{len(slow)} kill takeover(s) beyond session + 2 heartbeats + 1 s: {slow}"
    if s["leave"]["takeover_s"] is not None:
        slow = [x["takeover_s"] for x in report["takeover"]["leave"] if x["takeover_s"] > session_s * 0.5]
        if slow:
            s["leave"]["anomaly"] = f"{len(slow)} leave takeover(s) over half the session timeout: {slow}"
    for mode, runs in report["latency"].items():
        s[mode] = {"runs": len(runs), "p50_ms": median([x["p50_ms"] for x in runs]),
                   "p99_ms": median([x["p99_ms"] for x in runs]),
                   "received": sum(x["received"] for x in runs),
                   "expected": sum(x["expected"] or 0 for x in runs)}  # fmt: skip
    a, g = s["assign"], s["group"]
    s["latency_added"] = {k: (g[k] - a[k] if g[k] is not None and a[k] is not None else None)
                          for k in ("p50_ms", "p99_ms")}  # fmt: skip
    report["summary"] = s


def print_table(report: dict) -> None:
    m, p, s = report["machine"], report["params"], report["summary"]
    print(f"\nmachine: {m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, confluent-kafka {m['confluent_kafka']}, "
          f"librdkafka {m['librdkafka']}; load average at start {m['loadavg']}")  # fmt: skip
    print(f"command: {report['command']}   (medians of {p['runs']} runs)")
    print("broker: " + ", ".join(f"{k}={v}" for k, v in report["broker_settings"].items()))
    print(f"consumers: session.timeout.ms={p['session_timeout_ms']}, heartbeat.interval.ms={p['heartbeat_ms']}, "
          "librdkafka's default assignor (eager), fetch.wait.max.ms default (500)\n")  # fmt: skip
    hdr = f"{'takeover (3 members, 6 partitions)':<38}{'median s':>10}{'min s':>8}{'max s':>8}{'noticed s':>11}"
    print(hdr)
    print("-" * len(hdr))
    for how, label in (("leave", "one member close()s (LeaveGroup)"), ("kill", "one member SIGKILLed")):
        r = s[how]
        print(f"{label:<38}{fmt(r['takeover_s'], '.3f'):>10}{fmt(r['min_s'], '.3f'):>8}{fmt(r['max_s'], '.3f'):>8}"
              f"{fmt(r['noticed_s'], '.3f'):>11}")  # fmt: skip
    k = s["kill"]
    if k.get("minus_session_s") is not None:
        print(f"{'  kill minus session timeout':<38}{fmt(k['minus_session_s'], '.3f'):>10}"
              f"   (session.timeout.ms={p['session_timeout_ms']})")  # fmt: skip
    print()
    hdr = f"{'end-to-end latency, 1 record / 5 ms':<38}{'p50 ms':>10}{'p99 ms':>10}{'received':>16}"
    print(hdr)
    print("-" * len(hdr))
    for mode, label in (("assign", "(a) assign() all 6 partitions"), ("group", "(b) group member, subscribed")):
        r = s[mode]
        print(f"{label:<38}{fmt(r['p50_ms'], '.2f'):>10}{fmt(r['p99_ms'], '.2f'):>10}"
              f"{r['received']:>9}/{r['expected']:<6}")  # fmt: skip
    d = s["latency_added"]
    print(f"{'added by the group (b - a)':<38}{fmt(d['p50_ms'], '+.2f'):>10}{fmt(d['p99_ms'], '+.2f'):>10}")
    for how in ("leave", "kill"):
        if "anomaly" in s[how]:
            print(f"\nANOMALY ({how}): {s[how]['anomaly']}")
    for e in report["errors"]:
        print(f"error: {e}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--session-timeout-ms", type=int, default=6000)
    ap.add_argument("--heartbeat-ms", type=int, default=1000)
    ap.add_argument("--latency-seconds", type=float, default=5, help="seconds of timed records per latency run")
    ap.add_argument("--seed", type=int, default=1, help="seeds the moments of the closes and kills")
    ap.add_argument("--timeout", type=float, default=60, help="seconds allowed for a group to settle")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (data, logs) under bench/results/")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        serve_worker(args.worker, WORKERS)
        return
    report = run(args)
    print_table(report)
    out = write_report("group", report)
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
