"""__consumer_offsets against a real broker process: the riverlog command line
and real clients are refused with Kafka's errors and the reason, and a
group's committed offsets survive every attempt."""

from __future__ import annotations

import subprocess
import sys

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

OFFSETS_TOPIC = "__consumer_offsets"


def riverlog(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "riverlog.broker.cli", *args], input=stdin, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc
    return lines[0]


@pytest.fixture
def committed(broker):
    """A topic with a group's committed offset on it; returns a function reading that offset back."""
    conf = {"bootstrap.servers": broker.bootstrap}
    admin = AdminClient(conf)
    for future in admin.create_topics([NewTopic("data", num_partitions=1)]).values():
        future.result(timeout=30)
    consumer = Consumer({**conf, "group.id": "keep-me", "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition("data", 0, 7)], asynchronous=False)
    consumer.close()

    def read() -> int:
        c = Consumer({**conf, "group.id": "keep-me"})
        try:
            return c.committed([TopicPartition("data", 0)], timeout=30)[0].offset
        finally:
            c.close()

    assert read() == 7
    return read


def test_the_cli_cannot_delete_or_unsafely_reconfigure_consumer_offsets(broker, committed):
    line = one_error_line(riverlog("topic", "delete", OFFSETS_TOPIC, "--bootstrap", broker.bootstrap))
    assert "INVALID_TOPIC_EXCEPTION" in line and f"Cannot delete internal topic {OFFSETS_TOPIC}" in line
    line = one_error_line(riverlog("topic", "alter-config", OFFSETS_TOPIC, "--set", "cleanup.policy=delete",
                                   "--bootstrap", broker.bootstrap))  # fmt: skip
    assert "POLICY_VIOLATION" in line and "cleanup.policy of internal topic" in line
    described = riverlog("topic", "describe", OFFSETS_TOPIC, "--bootstrap", broker.bootstrap)
    assert described.returncode == 0 and "cleanup.policy=compact" in described.stdout
    proc = riverlog("produce", OFFSETS_TOPIC, "--bootstrap", broker.bootstrap, "--timeout", "5", stdin="junk\n")
    assert proc.returncode == 1, proc
    assert "INVALID_TOPIC_EXCEPTION: an internal topic, written only by the broker" in proc.stderr
    assert committed() == 7


def test_confluent_kafka_cannot_produce_to_consumer_offsets(broker, committed):
    errors = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "retries": 0})
    for i in range(3):
        producer.produce(OFFSETS_TOPIC, key=b"junk", value=b"junk", partition=i % 3,
                         on_delivery=lambda err, msg: errors.append(err))  # fmt: skip
    assert producer.flush(30) == 0
    assert [e.code() for e in errors] == [KafkaError.TOPIC_EXCEPTION] * 3
    assert committed() == 7


def test_kafka_python_cannot_delete_consumer_offsets(broker, committed):
    # (kafka-python's producer will not send to a topic Metadata calls internal.)
    from kafka import KafkaAdminClient
    from kafka.errors import InvalidTopicError

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        with pytest.raises(InvalidTopicError):
            admin.delete_topics([OFFSETS_TOPIC], timeout_ms=10_000)
    finally:
        admin.close()
    assert committed() == 7
