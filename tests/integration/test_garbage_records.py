"""A batch whose header and CRC are right but whose records are garbage must
not reach the log: one buggy or hostile producer would otherwise block every
consumer of the partition (librdkafka stops at it silently or loops on
_BAD_COMPRESSION, kafka-python raises CorruptRecordError).

A real broker process; the garbage goes in as a raw Produce, real clients
read the partition before and after it.
"""

from __future__ import annotations

import random
import struct
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from crc32c import crc32c
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition

from riverlog.client.protocol import ErrorCode
from riverlog.client.records import build_batch

from .broker_process import call

PRODUCE, CREATE_TOPICS = 0, 19
GOOD_BEFORE = GOOD_AFTER = 5
DEADLINE_S = 60.0  # generous: a consumer past the garbage gets every good record long before


def _garbage_batch(codec: int) -> bytes:
    """A batch of 3 records whose header and CRC are right and whose records
    area is random bytes, flagged with ``codec``."""
    header = bytearray(build_batch([(b"k", b"v", 1, [])] * 3)[:61])
    area = random.Random(13).randbytes(300)
    batch = header + area
    struct.pack_into(">i", batch, 8, len(batch) - 12)
    attrs = struct.unpack_from(">h", batch, 21)[0]
    struct.pack_into(">h", batch, 21, (attrs & ~0x07) | codec)
    struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))
    return bytes(batch)


def _produce_good(bootstrap: str, topic: str, first: int, n: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    errors = []
    for i in range(first, first + n):
        producer.produce(topic, value=b"good-%d" % i, partition=0,
                         on_delivery=lambda err, msg: err and errors.append(err))  # fmt: skip
        producer.flush(30)  # one batch per record
    assert producer.flush(30) == 0 and errors == []


def _librdkafka_reads(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(got) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append(msg.value())
    finally:
        consumer.close()
    return got


def _kafka_python_reads(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tp = KafkaTopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    got: list[bytes] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(got) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():  # raises CorruptRecordError at garbage
                got += [r.value for r in records]
    finally:
        consumer.close()
    return got


@pytest.mark.parametrize("codec", [0, 1], ids=["uncompressed", "gzip-flagged"])
def test_a_garbage_batch_is_refused_and_consumers_read_the_good_records_past_it(broker, codec):
    created = call(broker.port, CREATE_TOPICS, 4, {
        "topics": [{"name": "events", "num_partitions": 1, "replication_factor": 1, "assignments": [],
                    "configs": []}], "timeout_ms": 30_000, "validate_only": False})  # fmt: skip
    assert created["topics"][0]["error_code"] == ErrorCode.NONE
    _produce_good(broker.bootstrap, "events", 0, GOOD_BEFORE)

    answer = call(broker.port, PRODUCE, 7, {"transactional_id": None, "acks": -1, "timeout_ms": 30_000,
        "topic_data": [{"name": "events", "partition_data": [{"index": 0, "records": _garbage_batch(codec)}]}]})  # fmt: skip
    result = answer["responses"][0]["partition_responses"][0]
    assert result["error_code"] in (ErrorCode.INVALID_RECORD, ErrorCode.CORRUPT_MESSAGE), result

    _produce_good(broker.bootstrap, "events", GOOD_BEFORE, GOOD_AFTER)
    expected = [b"good-%d" % i for i in range(GOOD_BEFORE + GOOD_AFTER)]
    assert _librdkafka_reads(broker.bootstrap, "events", len(expected)) == expected
    assert _kafka_python_reads(broker.bootstrap, "events", len(expected)) == expected
