"""The admin APIs through real admin clients (kafka-python, confluent-kafka) against a broker process."""

from __future__ import annotations

import time

from confluent_kafka import TopicPartition as CkTopicPartition
from kafka.protocol.consumer.offsets import OffsetSpec
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic as CkNewTopic,
)
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource as KpConfigResource, ConfigResourceType, NewTopic


def _wait_partitions(admin: AdminClient, topic: str, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(topic, timeout=5)
        if len(md.topics[topic].partitions) == count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{topic} did not reach {count} partitions")


def _flatten(described) -> str:
    return repr(described)


def test_kafka_python_admin_calls(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic("kp-admin", 1, 1)])
        admin.create_partitions({"kp-admin": 3})
        assert len(admin.describe_topics(["kp-admin"])[0]["partitions"]) == 3

        admin.alter_configs(
            [KpConfigResource(ConfigResourceType.TOPIC, "kp-admin", configs={"retention.ms": "123456"})],
            incremental=False,
        )
        described = admin.describe_configs(
            [KpConfigResource(ConfigResourceType.TOPIC, "kp-admin")], config_filter="all"
        )
        assert "123456" in _flatten(described)

        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        for i in range(10):
            producer.send("kp-admin", b"v%d" % i, partition=0)
        producer.flush()
        producer.close()
        admin.delete_records({TopicPartition("kp-admin", 0): 4})
        offsets = admin.list_partition_offsets({TopicPartition("kp-admin", 0): OffsetSpec.EARLIEST})
        assert offsets[TopicPartition("kp-admin", 0)].offset == 4

        cluster = admin.describe_cluster()
        assert cluster["brokers"] and cluster["cluster_id"]
    finally:
        admin.close()


def test_confluent_kafka_admin_calls(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in admin.create_topics([CkNewTopic("ck-admin", 1, 1)]).values():
        f.result(10)
    for f in admin.create_partitions([NewPartitions("ck-admin", 3)]).values():
        f.result(10)
    _wait_partitions(admin, "ck-admin", 3)

    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "ck-admin",
        incremental_configs=[
            ConfigEntry("retention.ms", "654321", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
        ],
    )
    for f in admin.incremental_alter_configs([resource]).values():
        f.result(10)
    (described,) = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "ck-admin")]).values()
    configs = described.result(10)
    assert configs["retention.ms"].value == "654321"
    assert configs["retention.ms"].source == 1  # TOPIC_CONFIG (DYNAMIC_TOPIC_CONFIG in librdkafka)
    assert set(configs["cleanup.policy"].value.split(",")) == {"delete", "compact"}
    assert configs["segment.bytes"].is_default

    # back to delete-only so that DeleteRecords is allowed
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "ck-admin",
        incremental_configs=[ConfigEntry("cleanup.policy", None, incremental_operation=AlterConfigOpType.DELETE)],
    )
    for f in admin.incremental_alter_configs([resource]).values():
        f.result(10)

    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        producer.produce("ck-admin", b"v%d" % i, partition=1)
    assert producer.flush(10) == 0
    (deleted,) = admin.delete_records([CkTopicPartition("ck-admin", 1, 6)]).values()
    assert deleted.result(10).low_watermark == 6

    cluster = admin.describe_cluster().result(10)
    assert cluster.cluster_id and [n.id for n in cluster.nodes] == [1]
