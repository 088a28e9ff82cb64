"""The blocking face against a real broker process: plain threads, no Trio
in the test (these are sync test functions)."""

from __future__ import annotations

import threading

import pytest

from riverlog.client.admin import NewTopic
from riverlog.client.errors import ClosedError, KafkaConnectionError, KafkaTimeoutError
from riverlog.client.protocol.errors import MessageTooLargeError, TopicAlreadyExistsError
from riverlog.client.sync import SyncAdmin, SyncConsumer, SyncProducer
from riverlog.client.types import TopicPartition
from tests.integration.broker_process import free_port


def test_sync_admin_producer_and_consumer_round_trip(bootstrap):
    threads_before = threading.active_count()
    with SyncAdmin(bootstrap_servers=bootstrap) as admin:
        admin.create_topics([NewTopic("s-round", 2, 1)])
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic("s-round", 2, 1)])
        assert "s-round" in admin.list_topics()
    seen = []
    with SyncProducer(bootstrap_servers=bootstrap, linger_ms=1) as producer:
        futures = [
            producer.send("s-round", b"v%d" % i, key=b"k%d" % i, headers=[("i", b"%d" % i)], partition=i % 2,
                          timestamp=1_000 + i, on_delivery=lambda md, err: seen.append(md.offset))  # fmt: skip
            for i in range(1000)
        ]
        producer.flush(timeout=30)
        assert all(f.done() for f in futures)
        metadata = [f.result() for f in futures]
    assert sorted(m.offset for m in metadata if m.partition == 0) == list(range(500))
    assert len(seen) == 1000
    with SyncConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition("s-round", 0), TopicPartition("s-round", 1)])
        records = []
        while len(records) < 1000:
            got = consumer.poll(timeout=5)
            assert got, "no records within 5 s"
            records += got
        assert consumer.position(TopicPartition("s-round", 1)) == 500
    by_value = {r.value: r for r in records}
    assert len(by_value) == 1000
    r = by_value[b"v7"]
    assert (r.key, r.partition, r.timestamp, list(r.headers)) == (b"k7", 1, 1_007, [("i", b"7")])
    assert threading.active_count() == threads_before  # every background thread joined


def test_sync_producer_errors_arrive_where_they_belong(bootstrap):
    with SyncProducer(bootstrap_servers=bootstrap, max_request_size=5000) as producer:
        with pytest.raises(TypeError, match="value must be bytes"):
            producer.send("s-errors", "a str")  # type: ignore[arg-type]
        too_big = producer.send("s-errors", b"x" * 10_000)
        with pytest.raises(MessageTooLargeError):
            too_big.result(timeout=30)
        assert producer.send("s-errors", b"fine").result(timeout=30).offset == 0
    with pytest.raises(ClosedError):
        producer.send("s-errors", b"late")


def test_sync_producer_with_no_broker_fails_after_max_block_ms():
    port = free_port()
    with SyncProducer(bootstrap_servers=f"127.0.0.1:{port}", max_block_ms=1000,
                      default_api_timeout_ms=1000) as producer:  # fmt: skip
        future = producer.send("t", b"v")
        with pytest.raises((KafkaConnectionError, KafkaTimeoutError)):
            future.result(timeout=30)


def test_sync_consumer_iterates(bootstrap):
    with SyncProducer(bootstrap_servers=bootstrap) as producer:
        for i in range(30):
            producer.send("s-iter", b"%d" % i, partition=0)
    with SyncConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition("s-iter", 0)])
        values = []
        for record in consumer:
            values.append(record.value)
            if len(values) == 30:
                break
        consumer.seek(TopicPartition("s-iter", 0), 25)
        assert [r.offset for r in consumer.poll(timeout=5)] == [25, 26, 27, 28, 29]
    assert values == [b"%d" % i for i in range(30)]


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_sync_faces_cover_the_same_features(bootstrap, codec):
    topic = f"s-features-{codec}"
    with SyncAdmin(bootstrap_servers=bootstrap) as admin:
        admin.create_topics([NewTopic(topic, 3, 1, {"retention.ms": "3600000"})])
        assert admin.describe_configs(topic)["retention.ms"].value == "3600000"
        admin.alter_configs(topic, set={"retention.ms": "7200000"})
        assert admin.describe_configs(topic)["retention.ms"].value == "7200000"
        assert sorted(p.partition for p in admin.describe_topics([topic])[topic].partitions) == [0, 1, 2]
        assert admin.describe_cluster().brokers
    keys = [b"key-%d" % i for i in range(30)]
    with SyncProducer(bootstrap_servers=bootstrap, compression_type=codec, acks=1, enable_idempotence=False) as p:
        placed = [p.send(topic, b"v", key=k).result(timeout=30).partition for k in keys]
    from riverlog.client.partitioner import partition_for_key

    assert placed == [partition_for_key(k, 3) for k in keys]
    with SyncProducer(bootstrap_servers=bootstrap, acks=0, enable_idempotence=False) as p:
        assert p.send(topic, b"fire-and-forget", partition=0).result(timeout=30).offset == -1
    tp0 = TopicPartition(topic, 0)
    with SyncConsumer(bootstrap_servers=bootstrap, auto_offset_reset="latest") as consumer:
        consumer.assign([tp0])
        end = consumer.position(tp0)
        assert end == placed.count(0) + 1
        consumer.seek_to_beginning(tp0)
        assert consumer.position(tp0) == 0
        consumer.pause(tp0)
        assert consumer.paused() == {tp0} and consumer.poll(timeout=0.3) == []
        consumer.resume(tp0)
        got = []
        while len(got) < end:
            batch = consumer.poll(timeout=5)
            assert batch
            got += batch
        assert got[-1].value == b"fire-and-forget"
        consumer.seek_to_end(tp0)
        assert consumer.position(tp0) == end
    with SyncAdmin(bootstrap_servers=bootstrap) as admin:
        assert admin.delete_records({tp0: 2}) == {tp0: 2}
        assert admin.list_offsets({tp0: "earliest"})[tp0].offset == 2


def test_a_cancelled_sync_future_does_not_break_the_producer(bootstrap):
    with SyncProducer(bootstrap_servers=bootstrap, linger_ms=50) as producer:
        futures = [producer.send("s-cancel", b"%d" % i, partition=0) for i in range(50)]
        for f in futures[::2]:
            f.cancel()  # the record is queued or sent already: it goes anyway, its future says cancelled
        producer.flush(timeout=30)
        assert producer.send("s-cancel", b"after", partition=0).result(timeout=30).offset == 50
    assert all(f.done() for f in futures)
