"""Everything acknowledged survives a graceful stop and a kill -9."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from .broker_process import BrokerProcess


def _produce(bootstrap: str, start: int, count: int) -> list[tuple[int, int, bytes]]:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    futures = [producer.send("durable", key=b"k%d" % (i % 7), value=b"v%d" % i) for i in range(start, start + count)]
    producer.flush()
    acked = [(f.get(timeout=30).partition, f.get().offset, b"v%d" % i) for f, i in zip(futures, range(start, start + count))]
    producer.close()
    return acked


def _read(bootstrap: str) -> set[tuple[int, int, bytes]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=3000, enable_auto_commit=False)
    tps = [TopicPartition("durable", p) for p in range(2)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = {(m.partition, m.offset, m.value) for m in consumer}
    consumer.close()
    return got


@pytest.mark.parametrize("how", ["graceful", "kill -9"])
def test_acknowledged_records_survive_a_restart(tmp_path, how):
    # flush.messages=1: every acknowledged batch is on disk before the answer,
    # so even kill -9 may lose nothing acknowledged (single node, no replicas).
    extra = ["--set", "num.partitions=2", "--set", "log.flush.interval.messages=1"]
    broker = BrokerProcess(tmp_path / "data", extra=extra).start()
    try:
        first = _produce(broker.bootstrap, 0, 500)
        if how == "graceful":
            assert broker.stop() == 0
        else:
            broker.kill()
        broker = BrokerProcess(tmp_path / "data", port=broker.port, extra=extra).start()
        assert _read(broker.bootstrap) == set(first)
        second = _produce(broker.bootstrap, 500, 500)
        # Producing continues at the right offsets: no gap, no overlap.
        for p in range(2):
            offsets = sorted(o for part, o, _ in first + second if part == p)
            assert offsets == list(range(len(offsets)))
        assert _read(broker.bootstrap) == set(first + second)
    finally:
        broker.close()
