"""Cluster benchmark: controller failover, broker fencing, topic creation at scale, metadata propagation.

    python -m bench.cluster_bench [--runs 10] [--fence-runs 3] [--topics 1000]
                                  [--batch 50] [--propagation-topics 100] [--keep]

Every node is a combined broker and controller voter of a 3-voter quorum
(``python -m riverlog.broker.cli broker start``, ports picked free on loopback, data
under bench/results/), with Kafka's default timings: broker.session.timeout.ms
9000, broker.heartbeat.interval.ms 2000, controller.quorum.election.timeout.ms
1000, controller.quorum.fetch.timeout.ms 2000.

* failover: a fresh cluster per run (a node restarted right after its kill
  would meet its own unexpired registration); the active controller (the one
  every broker's Metadata names) is killed with SIGKILL, then CreateTopics is
  sent to another broker in a loop (each attempt on a new connection, 5 s
  timeout) until one succeeds; timed from the kill. Median of ``--runs``.
  On loopback a killed process's sockets are reset at once, so the followers
  see the leader gone without waiting for controller.quorum.fetch.timeout.ms;
  a leader that hangs or drops off the network would take up to that longer.
* fencing: on one cluster, a broker that is not the controller is killed
  (SIGKILL) and the two others' Metadata is polled every 20 ms until neither
  lists it; timed from the kill (expected: the session timeout, 9 s, minus up
  to one heartbeat interval, plus the controller's 0.5 s fencing sweep). It is
  restarted once fenced, and the next run waits until it is listed again.
* create: ``--topics`` topics of 3 partitions through confluent-kafka's
  AdminClient (bootstrap on one broker; it sends CreateTopics to the
  controller Metadata names), ``--batch`` topics per request, one request at
  a time, each waited for, as a provisioning tool would. Total seconds.
* propagation: one topic at a time, CreateTopics sent straight to the active
  controller; from its answer until the topic (all partitions with a leader)
  is in every broker's Metadata, each broker polled on its own connection by
  its own thread. Median and p99 over ``--propagation-topics``. Also given
  from the request's send.

Prints the machine line and a table; writes bench/results/cluster.json.
Every process is started here and killed by PID in a ``finally``.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import struct
import sys
import threading
import time

from bench.workers import ROOT, fmt, machine, median, work_dir, write_report
from riverlog.client.protocol import RequestHeader
from riverlog.client.protocol.api import decode_response, encode_request_frame
from tests.integration.test_cluster import METADATA, Cluster, create_topics, metadata, wait_for

DEFAULTS = {"broker.session.timeout.ms": "9000", "broker.heartbeat.interval.ms": "2000",
            "log.flush.interval.messages": "9223372036854775807"}  # fmt: skip
PARTITIONS = 3


def _quantile(values: list[float], q: float) -> float | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _brokers(port: int) -> set[int]:
    return {b["node_id"] for b in metadata(port)["brokers"]}


class Wire:
    """One kept-open connection to one broker, for polling Metadata quickly."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.cid = 0

    def _read(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return bytes(data)

    def visible(self, topic: str) -> bool:
        """Is the topic in this broker's Metadata with a leader for every partition?"""
        self.cid += 1
        body = {"topics": [{"name": topic}], "allow_auto_topic_creation": False}
        self.sock.sendall(encode_request_frame(RequestHeader(METADATA, 6, self.cid, "bench"), body))
        (size,) = struct.unpack(">i", self._read(4))
        _, answer = decode_response(METADATA, 6, self._read(size))
        t = answer["topics"][0]
        return t["error_code"] == 0 and len(t["partitions"]) == PARTITIONS and all(
            p["leader_id"] >= 0 for p in t["partitions"])  # fmt: skip

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------- the measurements


def failover_run(work, run: int) -> dict:
    cluster = Cluster(work / f"failover-{run}", settings=DEFAULTS)
    try:
        cluster.start()
        old = cluster.controller()
        other = next(n for n in cluster.nodes.values() if n.node_id != old)
        cluster.nodes[old].kill()
        killed = time.monotonic()
        attempts = 0

        def created() -> bool:
            nonlocal attempts
            attempts += 1
            try:
                return create_topics(other.port, [f"after-{run}"], PARTITIONS, timeout_s=5) == {f"after-{run}": 0}
            except OSError:
                return False

        wait_for(created, 60, "CreateTopics after the controller's kill", interval_s=0.01)
        took = time.monotonic() - killed
        return {"killed": old, "through": other.node_id, "failover_s": took, "attempts": attempts,
                "new_controller": cluster.controller()}  # fmt: skip
    finally:
        cluster.close()


def fencing_runs(cluster: Cluster, runs: int) -> list[dict]:
    out = []
    for run in range(runs):
        wait_for(lambda: all(_brokers(n.port) == {1, 2, 3} for n in cluster.nodes.values()), 60, "all three listed")
        controller = cluster.controller()
        victim = [n for n in cluster.nodes.values() if n.node_id != controller][run % 2]
        others = [n for n in cluster.nodes.values() if n is not victim]
        time.sleep(0.5 + (run * 0.37) % 1.5)  # a different moment of the heartbeat cycle each run
        victim.kill()
        killed = time.monotonic()
        wait_for(lambda: all(victim.node_id not in _brokers(n.port) for n in others), 60,
                 f"broker {victim.node_id} fenced", interval_s=0.02)  # fmt: skip
        out.append({"killed": victim.node_id, "fenced_s": time.monotonic() - killed})
        print(f"  fencing run {run + 1}: broker {victim.node_id} gone from Metadata {out[-1]['fenced_s']:.3f} s "
              "after kill -9", flush=True)  # fmt: skip
        victim.launch().wait_ready()
    return out


def propagation(cluster: Cluster, count: int) -> list[dict]:
    nodes = list(cluster.nodes.values())
    wires = {n.node_id: Wire(n.port) for n in nodes}
    out = []
    try:
        for i in range(count):
            controller = cluster.nodes[cluster.controller()]
            topic = f"propagate-{i}"
            seen: dict[int, float] = {}

            def poll(node_id: int) -> None:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if wires[node_id].visible(topic):
                        seen[node_id] = time.monotonic()
                        return

            sent = time.monotonic()
            assert create_topics(controller.port, [topic], PARTITIONS) == {topic: 0}
            acked = time.monotonic()
            threads = [threading.Thread(target=poll, args=(n.node_id,)) for n in nodes]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if len(seen) < len(nodes):
                out.append({"topic": topic, "error": f"not visible on {set(wires) - set(seen)} within 30 s"})
                continue
            last = max(seen.values())
            out.append({"topic": topic, "controller": controller.node_id, "from_ack_ms": (last - acked) * 1000,
                        "from_send_ms": (last - sent) * 1000, "create_ms": (acked - sent) * 1000})  # fmt: skip
    finally:
        for w in wires.values():
            w.close()
    return out


def create_many(cluster: Cluster, count: int, batch: int) -> dict:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": cluster.nodes[1].bootstrap})
    names = [f"bulk-{i:05d}" for i in range(count)]
    failed: list[str] = []
    started = time.monotonic()
    for at in range(0, count, batch):
        futures = admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names[at:at + batch]],
                                      request_timeout=60, operation_timeout=60)  # fmt: skip
        for name, f in futures.items():
            try:
                f.result(timeout=120)
            except Exception as e:  # a KafkaException per topic
                failed.append(f"{name}: {e}")
    took = time.monotonic() - started
    # Every broker lists them all (measured apart from the creation).
    wait_for(lambda: all(sum(t["name"].startswith("bulk-") for t in metadata(n.port, 30)["topics"]) == count
                         for n in cluster.nodes.values()), 60, "the bulk topics on every broker")  # fmt: skip
    return {"topics": count, "partitions": PARTITIONS, "batch": batch, "seconds": took, "failed": failed[:5],
            "failures": len(failed), "everywhere_after_s": time.monotonic() - started}  # fmt: skip


# ---------------------------------------------------------------- the run


def run(args) -> dict:
    work = work_dir("cluster")
    report: dict = {
        "machine": machine(), "command": "python -m bench.cluster_bench " + " ".join(sys.argv[1:]),
        "params": {k: v for k, v in vars(args).items() if k != "worker"}, "broker_settings": DEFAULTS,
        "failover": [], "fencing": [], "create": None, "propagation": [], "errors": [],
    }  # fmt: skip
    try:
        for r in range(args.runs):
            try:
                res = failover_run(work, r)
            except AssertionError as e:
                report["errors"].append(f"failover run {r + 1}: {e}")
                print(f"  failover run {r + 1}: {e}", flush=True)
                continue
            report["failover"].append(res)
            print(f"  failover run {r + 1}: node {res['killed']} killed, CreateTopics through node {res['through']} "
                  f"after {res['failover_s']:.3f} s ({res['attempts']} attempts); new controller "
                  f"{res['new_controller']}", flush=True)  # fmt: skip
        cluster = Cluster(work / "main", settings=DEFAULTS)
        try:
            cluster.start()
            report["fencing"] = fencing_runs(cluster, args.fence_runs)
            report["propagation"] = propagation(cluster, args.propagation_topics)
            report["create"] = create_many(cluster, args.topics, args.batch)
            print(f"  created {args.topics} topics in {report['create']['seconds']:.2f} s", flush=True)
        except AssertionError as e:
            report["errors"].append(str(e))
            print(f"  {e}", flush=True)
        finally:
            cluster.close()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    _summarise(report)
    return report


def _summarise(report: dict) -> None:
    fo = [x["failover_s"] for x in report["failover"]]
    fe = [x["fenced_s"] for x in report["fencing"]]
    pr = [x for x in report["propagation"] if "error" not in x]
    report["summary"] = {
        "failover_s": {"runs": len(fo), "p50": median(fo), "min": min(fo, default=None), "max": max(fo, default=None)},
        "fencing_s": {"runs": len(fe), "p50": median(fe), "min": min(fe, default=None), "max": max(fe, default=None)},
        "create": report["create"],
        "propagation_ms": {"topics": len(pr), "p50_from_ack": median([x["from_ack_ms"] for x in pr]),
                           "p99_from_ack": _quantile([x["from_ack_ms"] for x in pr], 0.99),
                           "p50_from_send": median([x["from_send_ms"] for x in pr]),
                           "p50_create": median([x["create_ms"] for x in pr])},
    }  # fmt: skip


def print_table(report: dict) -> None:
    m, s = report["machine"], report["summary"]
    print(f"\nmachine: {m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, "
          f"confluent-kafka {m.get('confluent_kafka')}, librdkafka {m.get('librdkafka')}; "
          f"load average at start {m['loadavg']}")  # fmt: skip
    print(f"command: {report['command']}")
    print("cluster: 3 combined voters on loopback, " + ", ".join(f"{k}={v}" for k, v in DEFAULTS.items()
                                                                   if k.startswith("broker.")) + "\n")  # fmt: skip
    fo, fe = s["failover_s"], s["fencing_s"]
    print(f"{'':<52}{'median':>9}{'min':>9}{'max':>9}")
    print(f"{'controller failover, kill -9 to CreateTopics OK (s)':<52}{fmt(fo['p50'], '.3f'):>9}"
          f"{fmt(fo['min'], '.3f'):>9}{fmt(fo['max'], '.3f'):>9}   ({fo['runs']} runs)")  # fmt: skip
    print(f"{'broker fencing, kill -9 to gone from Metadata (s)':<52}{fmt(fe['p50'], '.3f'):>9}"
          f"{fmt(fe['min'], '.3f'):>9}{fmt(fe['max'], '.3f'):>9}   ({fe['runs']} runs)")  # fmt: skip
    pr = s["propagation_ms"]
    print(f"{'metadata propagation, ack to every broker (ms)':<52}{fmt(pr['p50_from_ack'], '.2f'):>9}"
          f"{'':>9}{'':>9}   (p99 {fmt(pr['p99_from_ack'], '.2f')} ms; from send p50 "
          f"{fmt(pr['p50_from_send'], '.2f')} ms; CreateTopics p50 {fmt(pr['p50_create'], '.2f')} ms; "
          f"{pr['topics']} topics)")  # fmt: skip
    c = s["create"]
    if c:
        print(f"{c['topics']:,} topics of {c['partitions']} partitions, {c['batch']} per CreateTopics: "
              f"{c['seconds']:.2f} s ({c['failures']} failed); on every broker after {c['everywhere_after_s']:.2f} s")
    for e in report["errors"]:
        print(f"error: {e}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="controller failovers (a fresh cluster each)")
    ap.add_argument("--fence-runs", type=int, default=3, help="broker kills timed until fenced")
    ap.add_argument("--topics", type=int, default=1000, help="topics of 3 partitions created in bulk")
    ap.add_argument("--batch", type=int, default=50, help="topics per CreateTopics request in bulk")
    ap.add_argument("--propagation-topics", type=int, default=100)
    ap.add_argument("--keep", action="store_true", help="keep the work dir (data, logs) under bench/results/")
    args = ap.parse_args(argv)
    report = run(args)
    print_table(report)
    out = write_report("cluster", report)
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
