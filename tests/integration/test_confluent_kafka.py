"""confluent-kafka (librdkafka) against a real riverlog broker process."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

RECORDS = 10_000
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
BASE_TS = 1_700_000_000_000


@pytest.mark.parametrize("acks", ["1", "all"])
def test_produce_and_consume_every_codec_byte_for_byte(broker, acks):
    conf = {"bootstrap.servers": broker.bootstrap}
    admin = AdminClient(conf)
    for future in admin.create_topics([NewTopic("events", num_partitions=3, replication_factor=1)]).values():
        future.result(timeout=30)
    assert "events" in admin.list_topics(timeout=10).topics
    sent: dict[int, list] = {0: [], 1: [], 2: []}
    errors = []

    def delivered(headers):
        # A delivery report carries no headers: remember the ones sent.
        def report(err, msg):
            if err is not None:
                errors.append(err)
            else:
                sent[msg.partition()].append((msg.offset(), msg.key(), msg.value(), headers, msg.timestamp()[1]))

        return report

    for codec in CODECS:
        producer = Producer({**conf, "compression.type": codec, "acks": acks, "linger.ms": 5})
        for i in range(RECORDS // len(CODECS)):
            headers = [("codec", codec.encode()), ("n", str(i).encode())]
            producer.produce(
                "events", key=f"key-{i % 97}".encode(), value=f"{codec}-{i}".encode() * 3,
                headers=headers, timestamp=BASE_TS + i, on_delivery=delivered(headers),
            )  # fmt: skip
            producer.poll(0)
        assert producer.flush(60) == 0
    assert errors == []
    assert sum(len(v) for v in sent.values()) == RECORDS

    consumer = Consumer({**conf, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition("events", p, 0) for p in range(3)])
    got: dict[int, list] = {0: [], 1: [], 2: []}
    deadline = time.monotonic() + 60
    count = 0
    while count < RECORDS and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        got[msg.partition()].append((msg.offset(), msg.key(), msg.value(), msg.headers(), msg.timestamp()[1]))
        count += 1
    for p in range(3):
        assert got[p] == sorted(sent[p]), f"partition {p}"
        low, high = consumer.get_watermark_offsets(TopicPartition("events", p), timeout=10)
        assert (low, high) == (0, len(sent[p]))
    consumer.close()
    for future in admin.delete_topics(["events"]).values():
        future.result(timeout=30)
    assert "events" not in admin.list_topics(timeout=10).topics
