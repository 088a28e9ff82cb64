"""The longest legal topic name (249 characters, Kafka's limit) works through
its whole life on a real broker: created, produced to, deleted, and the
broker restarted serves again. A deleted partition's directory is renamed
``<topic>-<partition>.<uuid>-delete``, the topic cut short to fit 255 bytes
(as Kafka does)."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .broker_process import BrokerProcess

TOPIC = ("a-topic_named.at-the-limit." * 10)[:249]
PARTITIONS = 3


def _produce(bootstrap: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    errors = []
    for i, value in enumerate(values):
        producer.produce(TOPIC, value=value, partition=i % PARTITIONS,
                         on_delivery=lambda err, msg: err and errors.append(err))  # fmt: skip
    assert producer.flush(60) == 0
    assert errors == []


def _consume(bootstrap: str, count: int) -> set[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "long", "enable.auto.commit": False})
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    got: set[bytes] = set()
    deadline = time.monotonic() + 60
    while len(got) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None:
            assert msg.error() is None, msg.error()
            got.add(msg.value())
    consumer.close()
    return got


def _create(admin: AdminClient) -> None:
    for future in admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)]).values():
        future.result(timeout=60)


def test_the_longest_topic_name_is_created_deleted_and_the_broker_restarts(tmp_path):
    data = tmp_path / "data"
    broker = BrokerProcess(data).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        _create(admin)
        _produce(broker.bootstrap, [b"old-%d" % i for i in range(30)])
        assert _consume(broker.bootstrap, 30) == {b"old-%d" % i for i in range(30)}
        for future in admin.delete_topics([TOPIC]).values():
            future.result(timeout=60)
        deadline = time.monotonic() + 30
        while any(p.name.startswith(TOPIC) for p in data.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)  # renamed for deletion at once: the full name is gone
        assert not any(p.name.startswith(TOPIC) for p in data.iterdir())
        assert "File name too long" not in broker.log_path.read_text()
        assert broker.stop() == 0

        broker = BrokerProcess(data, port=broker.port).start()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        assert TOPIC not in admin.list_topics(timeout=30).topics
        assert not [p for p in data.iterdir() if p.name.endswith("-delete")]
        # The name again, a new topic: only its own records.
        _create(admin)
        _produce(broker.bootstrap, [b"new-%d" % i for i in range(6)])
        assert _consume(broker.bootstrap, 6) == {b"new-%d" % i for i in range(6)}
    finally:
        broker.close()
