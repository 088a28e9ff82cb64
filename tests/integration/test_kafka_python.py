"""kafka-python (a real Kafka client) against a real riverlog broker process."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

RECORDS = 10_000
CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
BASE_TS = 1_700_000_000_000


def _consume_all(bootstrap: str, topic: str, partitions: int, expected: int) -> dict[int, list]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest", consumer_timeout_ms=5000
    )
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got: dict[int, list] = {p: [] for p in range(partitions)}
    count = 0
    for msg in consumer:
        got[msg.partition].append((msg.offset, msg.key, msg.value, list(msg.headers), msg.timestamp))
        count += 1
        if count >= expected:
            break
    consumer.close()
    return got


@pytest.mark.parametrize("acks", [1, "all"])
def test_produce_and_consume_every_codec_byte_for_byte(broker, acks):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("orders", 3, 1)])
    assert "orders" in admin.list_topics()
    sent: dict[int, list] = {0: [], 1: [], 2: []}
    for codec in CODECS:
        producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap, acks=acks, compression_type=codec, enable_idempotence=False,
            linger_ms=5,
        )  # fmt: skip
        futures = []
        for i in range(RECORDS // len(CODECS)):
            key, value = f"key-{i % 97}".encode(), f"{codec}-{i}".encode() * 3
            headers = [("codec", str(codec).encode()), ("n", str(i).encode())]
            ts = BASE_TS + i
            futures.append((producer.send("orders", key=key, value=value, headers=headers, timestamp_ms=ts),
                            (key, value, headers, ts)))  # fmt: skip
        producer.flush()
        for future, record in futures:
            meta = future.get(timeout=30)
            sent[meta.partition].append((meta.offset, *record))
        producer.close()
    got = _consume_all(broker.bootstrap, "orders", 3, RECORDS)
    for p in range(3):
        assert [r[0] for r in got[p]] == sorted(r[0] for r in sent[p]), f"partition {p} order"
        assert got[p] == sorted(sent[p]), f"partition {p} bytes"
    assert sum(len(v) for v in got.values()) == RECORDS
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    tps = [TopicPartition("orders", p) for p in range(3)]
    assert consumer.beginning_offsets(tps) == {tp: 0 for tp in tps}
    assert consumer.end_offsets(tps) == {TopicPartition("orders", p): len(sent[p]) for p in range(3)}
    consumer.close()
    admin.delete_topics(["orders"])
    assert "orders" not in admin.list_topics()
    admin.close()


def test_the_default_idempotent_producer_works(broker):
    # kafka-python 3 turns idempotence on by default: InitProducerId, then
    # sequenced batches that the broker checks.
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    futures = [producer.send("idem", key=b"k%d" % (i % 5), value=b"v%d" % i) for i in range(2000)]
    producer.flush()
    metas = [f.get(timeout=30) for f in futures]
    producer.close()
    partitions = {m.partition for m in metas}
    got = _consume_all(broker.bootstrap, "idem", max(partitions) + 1, len(metas))
    values = sorted(v for records in got.values() for _, _, v, _, _ in records)
    assert values == sorted(b"v%d" % i for i in range(2000))  # each once: no duplicate, no loss
