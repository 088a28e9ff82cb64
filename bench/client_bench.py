"""Client benchmark: riverlog's Python client beside confluent-kafka (librdkafka).

    python -m bench.client_bench [--records N] [--records-1k N] [--runs 3]

Starts one riverlog broker (fresh data dir under bench/results/) and, for
100-byte and 1 KiB records, alternately runs each client in its own process
``--runs`` times against it:

* produce: N records without keys to a 6-partition topic, with the same
  settings for both clients: acks=1, linger 5 ms, batch size 1 MiB, no
  compression, no idempotence (librdkafka's default; ours is on, switched
  off here so both do the same work). Timed from the first send to the end
  of flush. riverlog's client uses its Trio face (``await producer.send``).
* consume: every record of a topic filled beforehand (from page cache), all
  6 partitions assigned from offset 0, default fetch settings for both.
  Timed from assign to the last record; riverlog's client polls lists
  (``await consumer.poll``), confluent-kafka calls ``consume(500)``; both
  loops read each record's value (confluent-kafka copies it out of
  librdkafka only when asked, riverlog's records carry it already).

The figure is the ratio of median records/s, riverlog / confluent-kafka.
Prints a table and writes JSON to bench/results/client.json. Every child
process is started here and killed in a ``finally``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.workers import ROOT, RESULTS, fmt, machine, run_worker, serve_worker, write_report

PARTITIONS = 6
SIZES = (100, 1024)


# ---------------------------------------------------------------- workers


def _produce_riverlog(a: dict) -> dict:
    import trio

    from riverlog.client.producer import Producer

    value = b"x" * a["size"]
    n = a["records"]

    async def main() -> float:
        async with Producer(bootstrap_servers=a["bootstrap"], acks=1, enable_idempotence=False, linger_ms=5,
                            batch_size=1 << 20, buffer_memory=256 << 20) as producer:  # fmt: skip
            await producer.send(a["topic"], b"warm-up")
            await producer.flush()
            start = time.perf_counter()
            send = producer.send
            topic = a["topic"]
            for _ in range(n):
                await send(topic, value)
            await producer.flush()
            return time.perf_counter() - start

    return {"seconds": trio.run(main)}


def _produce_confluent(a: dict) -> dict:
    from confluent_kafka import Producer

    producer = Producer({
        "bootstrap.servers": a["bootstrap"], "acks": 1, "linger.ms": 5, "batch.size": 1 << 20,
        "compression.type": "none", "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 256 << 10,
    })  # fmt: skip
    value = b"x" * a["size"]
    producer.produce(a["topic"], b"warm-up")
    producer.flush(30)
    produce, poll, topic = producer.produce, producer.poll, a["topic"]
    start = time.perf_counter()
    for _ in range(a["records"]):
        while True:
            try:
                produce(topic, value)
                break
            except BufferError:
                poll(0.001)
    if producer.flush(120) != 0:
        raise RuntimeError("confluent-kafka did not deliver everything")
    return {"seconds": time.perf_counter() - start}


def _consume_riverlog(a: dict) -> dict:
    import trio

    from riverlog.client.consumer import Consumer
    from riverlog.client.types import TopicPartition

    n = a["records"]

    async def main() -> float:
        async with Consumer(bootstrap_servers=a["bootstrap"], auto_offset_reset="earliest") as consumer:
            start = time.perf_counter()
            consumer.assign([TopicPartition(a["topic"], p) for p in range(PARTITIONS)])
            got = 0
            while got < n:
                for record in await consumer.poll(timeout=5):
                    record.value  # the same per-record touch as the confluent-kafka loop
                    got += 1
            return time.perf_counter() - start

    return {"seconds": trio.run(main)}


def _consume_confluent(a: dict) -> dict:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": a["bootstrap"], "group.id": "bench", "enable.auto.commit": False})
    try:
        start = time.perf_counter()
        consumer.assign([TopicPartition(a["topic"], p, 0) for p in range(PARTITIONS)])
        got = 0
        while got < a["records"]:
            for m in consumer.consume(500, timeout=5):
                if m.error() is None:
                    m.value()  # what an application does; confluent-kafka copies the value only here
                    got += 1
        return {"seconds": time.perf_counter() - start}
    finally:
        consumer.close()


WORKERS = {
    "produce-riverlog": _produce_riverlog,
    "produce-confluent": _produce_confluent,
    "consume-riverlog": _consume_riverlog,
    "consume-confluent": _consume_confluent,
}


# ---------------------------------------------------------------- the run


def _fill(bootstrap: str, topic: str, size: int, records: int, timeout: float) -> None:
    result = run_worker("bench.client_bench", "produce-confluent", {"bootstrap": bootstrap, "topic": topic, "size": size,
                                               "records": records}, timeout)  # fmt: skip
    if "error" in result:
        raise RuntimeError(f"filling {topic}: {result['error']}")


def run(args) -> dict:
    from tests.integration.broker_process import BrokerProcess

    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="client-bench-", dir=RESULTS))
    broker = BrokerProcess(work / "data", extra=["--set", f"num.partitions={PARTITIONS}"]).start()
    report: dict = {"machine": machine(), "runs": args.runs, "results": {}}
    try:
        for size in SIZES:
            n = args.records if size == 100 else args.records_1k
            for op in ("produce", "consume"):
                key = f"{op} {size} B"
                rates: dict[str, list[float]] = {"riverlog": [], "confluent": []}
                errors = []
                if op == "consume":
                    topic = f"consume-{size}"
                    _fill(broker.bootstrap, topic, size, n, args.timeout)
                for run_no in range(args.runs):
                    for client in ("confluent", "riverlog"):
                        topic = f"produce-{size}-{client}-{run_no}" if op == "produce" else f"consume-{size}"
                        r = run_worker("bench.client_bench", f"{op}-{client}", {"bootstrap": broker.bootstrap, "topic": topic,
                                                           "size": size, "records": n}, args.timeout)  # fmt: skip
                        if "error" in r:
                            errors.append(r["error"])
                        else:
                            rates[client].append(n / r["seconds"])
                med = {c: (statistics.median(v) if v else None) for c, v in rates.items()}
                ratio = med["riverlog"] / med["confluent"] if med["riverlog"] and med["confluent"] else None
                report["results"][key] = {"records": n, "rates": rates, "median": med, "ratio": ratio,
                                          "errors": errors}  # fmt: skip
                print(f"{key}: riverlog {fmt(med['riverlog'])} rec/s, confluent-kafka {fmt(med['confluent'])}"
                      f" rec/s, ratio {fmt(ratio, '.2f')}", flush=True)  # fmt: skip
    finally:
        broker.close()
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    return report



def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=300_000, help="100-byte records per run")
    ap.add_argument("--records-1k", type=int, default=100_000, help="1 KiB records per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=180, help="seconds allowed for each run")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (data, logs) under bench/results/")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        serve_worker(args.worker, WORKERS)
        return
    report = run(args)
    out = write_report("client", report)
    print(f"machine: {report['machine']}\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
