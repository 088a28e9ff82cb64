"""Compaction in a real broker process, seen by a real client (confluent-kafka)."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .broker_process import BrokerProcess

TOPIC = "compacted"
KEYS = 20
ROUNDS = 200
BIG = 50


def _read_all(bootstrap: str) -> list[tuple[int, bytes, bytes | None]]:
    """Every record of partition 0 from its start, up to the end seen now."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
        "enable.partition.eof": True,
    })  # fmt: skip
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    out = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    return out
                raise AssertionError(msg.error())
            out.append((msg.offset(), msg.key(), msg.value()))
        raise AssertionError("no end of partition within 30 s")
    finally:
        consumer.close()


def test_the_issue_scenario_is_compacted_to_the_latest_value_per_key_without_the_tombstone(tmp_path):
    """20 keys x 200 rounds, a tombstone for one key, then 50 records of 1 KiB:
    the cleaner must reach the latest value per key and drop the tombstone once
    delete.retention.ms has passed, with no further writes to wake it."""
    broker = BrokerProcess(tmp_path / "data", extra=["--set", "log.cleaner.backoff.ms=1000"]).start()
    try:
        conf = {"bootstrap.servers": broker.bootstrap}
        configs = {"cleanup.policy": "compact", "segment.bytes": "16384", "segment.ms": "1000",
                   "delete.retention.ms": "1000"}  # fmt: skip
        admin = AdminClient(conf)
        admin.create_topics([NewTopic(TOPIC, 1, 1, config=configs)])[TOPIC].result(timeout=30)
        producer = Producer(conf)
        for round_ in range(ROUNDS):
            for k in range(KEYS):
                producer.produce(TOPIC, key=b"key-%d" % k, value=b"value-%d-%d" % (k, round_))
            producer.poll(0)
        assert producer.flush(60) == 0
        producer.produce(TOPIC, key=b"key-0", value=None)
        assert producer.flush(60) == 0
        for i in range(BIG):
            producer.produce(TOPIC, key=b"big-%d" % i, value=bytes([65 + i % 26]) * 1024)
        assert producer.flush(60) == 0

        want = {b"key-%d" % k: b"value-%d-%d" % (k, ROUNDS - 1) for k in range(1, KEYS)}
        want.update({b"big-%d" % i: bytes([65 + i % 26]) * 1024 for i in range(BIG)})
        deadline = time.monotonic() + 60
        while True:
            records = _read_all(broker.bootstrap)
            got = {key: value for _, key, value in records}
            if len(records) == len(want) and got == want:
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"after 60 s: {len(records)} records, {len(got)} keys; "
                    f"key-0: {[(o, v) for o, k, v in records if k == b'key-0']}\n"
                    + broker.log_path.read_text()[-3000:]
                )
            time.sleep(0.5)
        offsets = [o for o, _, _ in records]
        assert offsets == sorted(offsets) and offsets[-1] == KEYS * ROUNDS + BIG  # offsets never change
        assert "cleaned log compacted-0" in broker.log_path.read_text()
    finally:
        broker.close()
