"""riverlog's Producer (Trio face) against a real broker process, and against
scripted fake brokers for the failures ours does not produce on demand."""

from __future__ import annotations

import pytest
import trio

from riverlog.client.admin import Admin, NewTopic
from riverlog.client.errors import ClosedError, KafkaConnectionError, KafkaTimeoutError
from riverlog.client.partitioner import partition_for_key
from riverlog.client.producer import Producer
from riverlog.client.protocol import ErrorCode
from riverlog.client.protocol.errors import MessageTooLargeError, UnknownTopicOrPartitionError
from riverlog.client.records import Compression, RecordBatch, iter_batches
from tests.integration.broker_process import BrokerProcess, free_port

from .test_connection import METADATA, FakeBroker
from .test_consumer import wait_until

FETCH = 1


async def create_topic(bootstrap: str, name: str, partitions: int = 1, **configs: str) -> None:
    async with Admin(bootstrap_servers=bootstrap) as admin:
        await admin.create_topics([NewTopic(name, partitions, 1, configs)])


async def read_batches(bootstrap: str, topic: str, partition: int = 0) -> list[RecordBatch]:
    """Every batch of a partition, by raw Fetch: no consumer in the way."""
    from riverlog.client.cluster import Cluster
    from riverlog.client.config import ClientConfig

    async with trio.open_nursery() as nursery:
        cluster = Cluster(ClientConfig(bootstrap_servers=bootstrap), nursery)
        conn = await cluster.any_connection()
        batches: list[RecordBatch] = []
        offset = 0
        while True:
            body = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 24,
                    "isolation_level": 0, "topics": [{"topic": topic, "partitions": [
                        {"partition": partition, "fetch_offset": offset, "partition_max_bytes": 1 << 24}]}]}  # fmt: skip
            answer = await conn.request(FETCH, body)
            part = answer["responses"][0]["partitions"][0]
            assert part["error_code"] == 0
            got = list(iter_batches(bytes(part["records"] or b"")))
            if not got:
                break
            batches += got
            offset = got[-1].next_offset
        await cluster.aclose()
    return batches


def records_of(batches):
    return [r for b in batches for r in b.records()]


async def test_send_returns_offsets_and_the_broker_holds_the_records(bootstrap):
    await create_topic(bootstrap, "p-basic")
    async with Producer(bootstrap_servers=bootstrap) as producer:
        deliveries = [
            await producer.send("p-basic", b"v%d" % i, key=b"k%d" % i, headers=[("h", b"%d" % i), ("n", None)],
                                partition=0, timestamp=1_700_000_000_000 + i)  # fmt: skip
            for i in range(10)
        ]
        metadata = [await d for d in deliveries]
    assert [(m.topic, m.partition, m.offset) for m in metadata] == [("p-basic", 0, i) for i in range(10)]
    assert [m.timestamp for m in metadata] == [1_700_000_000_000 + i for i in range(10)]
    records = records_of(await read_batches(bootstrap, "p-basic"))
    assert [(r.offset, r.key, r.value, r.timestamp) for r in records] == [
        (i, b"k%d" % i, b"v%d" % i, 1_700_000_000_000 + i) for i in range(10)
    ]
    assert list(records[3].headers) == [("h", b"3"), ("n", None)]


async def test_linger_and_batch_size_shape_the_batches(bootstrap):
    await create_topic(bootstrap, "p-batching")
    async with Producer(bootstrap_servers=bootstrap, linger_ms=60_000, batch_size=1000) as producer:
        for i in range(50):  # ~121 bytes each: 7 or 8 records per 1000-byte batch
            await producer.send("p-batching", b"x" * 100, partition=0)
        start = trio.current_time()
        await producer.flush()  # the 60 s linger does not hold flush up
        assert trio.current_time() - start < 10
    batches = await read_batches(bootstrap, "p-batching")
    assert sum(b.records_count for b in batches) == 50
    assert all(b.size_in_bytes <= 1000 for b in batches) and len(batches) >= 6


async def test_linger_sends_a_partial_batch_after_linger_ms(bootstrap):
    await create_topic(bootstrap, "p-linger")
    async with Producer(bootstrap_servers=bootstrap, linger_ms=200) as producer:
        delivery = await producer.send("p-linger", b"one")
        start = trio.current_time()
        await delivery
        assert 0.15 <= trio.current_time() - start < 5


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
async def test_every_compression_type(bootstrap, codec):
    topic = f"p-codec-{codec}"
    await create_topic(bootstrap, topic)
    async with Producer(bootstrap_servers=bootstrap, compression_type=codec) as producer:
        for i in range(100):
            await producer.send(topic, b"value %d " % i * 10, key=b"%d" % i)
    batches = await read_batches(bootstrap, topic)
    assert {b.compression for b in batches} == {Compression[codec.upper()]}
    assert [r.value for r in records_of(batches)] == [b"value %d " % i * 10 for i in range(100)]


@pytest.mark.parametrize("acks", [0, 1, "all"])
async def test_acks(bootstrap, acks):
    topic = f"p-acks-{acks}"
    await create_topic(bootstrap, topic)
    async with Producer(bootstrap_servers=bootstrap, acks=acks, enable_idempotence=acks == "all") as producer:
        deliveries = [await producer.send(topic, b"%d" % i) for i in range(20)]
        offsets = [(await d).offset for d in deliveries]
    assert offsets == ([-1] * 20 if acks == 0 else list(range(20)))
    assert len(records_of(await read_batches(bootstrap, topic))) == 20


async def test_keys_land_where_the_java_partitioner_puts_them(bootstrap):
    await create_topic(bootstrap, "p-keys", partitions=7)
    keys = [b"key-%d" % i for i in range(60)]
    async with Producer(bootstrap_servers=bootstrap) as producer:
        deliveries = [await producer.send("p-keys", b"v", key=k) for k in keys]
        partitions = [(await d).partition for d in deliveries]
    assert partitions == [partition_for_key(k, 7) for k in keys]

    def kafka_python_partitions() -> list[int]:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=bootstrap)
        try:
            futures = [producer.send("p-keys", b"v", key=k) for k in keys]
            return [f.get(timeout=30).partition for f in futures]
        finally:
            producer.close()

    assert partitions == await trio.to_thread.run_sync(kafka_python_partitions)


async def test_records_without_keys_stick_to_one_partition_per_batch(bootstrap):
    await create_topic(bootstrap, "p-sticky", partitions=6)
    async with Producer(bootstrap_servers=bootstrap, linger_ms=60_000, batch_size=16384) as producer:
        first = [await producer.send("p-sticky", b"small") for _ in range(20)]
        await producer.flush()
        assert len({(await d).partition for d in first}) == 1
        # Past a batch's worth, the sticky partition moves on.
        many = [await producer.send("p-sticky", b"x" * 1000) for _ in range(200)]
        await producer.flush()
        assert len({(await d).partition for d in many}) > 1


async def test_idempotent_batches_carry_a_producer_id_and_consecutive_sequences(bootstrap):
    await create_topic(bootstrap, "p-idem")
    async with Producer(bootstrap_servers=bootstrap, batch_size=500, linger_ms=0) as producer:
        for i in range(40):
            await producer.send("p-idem", b"x" * 50, partition=0)
    batches = await read_batches(bootstrap, "p-idem")
    assert len({b.producer_id for b in batches}) == 1 and batches[0].producer_id >= 0
    sequences = [(b.base_sequence, b.last_sequence) for b in batches]
    assert sequences[0][0] == 0
    assert all(nxt[0] == prev[1] + 1 for prev, nxt in zip(sequences, sequences[1:]))


async def test_delivery_callbacks_and_errors_for_what_can_never_succeed(bootstrap):
    await create_topic(bootstrap, "p-cb", partitions=2)
    seen = []
    async with Producer(bootstrap_servers=bootstrap, max_request_size=10_000) as producer:
        await producer.send("p-cb", b"a", on_delivery=lambda md, err: seen.append((md.offset, err)))
        with pytest.raises(TypeError, match="value must be bytes"):
            await producer.send("p-cb", "a str")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="header value"):
            await producer.send("p-cb", b"v", headers=[("h", 5)])  # type: ignore[list-item]
        with pytest.raises(MessageTooLargeError):
            await producer.send("p-cb", b"x" * 20_000)
        with pytest.raises(UnknownTopicOrPartitionError, match="partitions 0-1, not 5"):
            await producer.send("p-cb", b"v", partition=5)
    assert seen == [(0, None)]
    with pytest.raises(ClosedError):
        await producer.send("p-cb", b"late")


async def test_the_broker_refusing_a_batch_fails_its_deliveries(tmp_path):
    broker = BrokerProcess(tmp_path / "data", extra=["--set", "message.max.bytes=2000"]).start()
    try:
        await create_topic(broker.bootstrap, "p-refused")
        async with Producer(bootstrap_servers=broker.bootstrap, linger_ms=50) as producer:
            big = await producer.send("p-refused", b"x" * 5000)
            with pytest.raises(MessageTooLargeError):
                await big
            ok = await producer.send("p-refused", b"fine")
            assert (await ok).offset == 0  # the refused batch's sequence is reused
    finally:
        broker.close()


async def test_unknown_topic_without_auto_creation_times_out_clearly(tmp_path):
    broker = BrokerProcess(tmp_path / "data", extra=["--set", "auto.create.topics.enable=false"]).start()
    try:
        async with Producer(bootstrap_servers=broker.bootstrap, max_block_ms=1000) as producer:
            with pytest.raises(KafkaTimeoutError, match="'p-nowhere' not present in metadata.*UNKNOWN_TOPIC"):
                await producer.send("p-nowhere", b"v")
    finally:
        broker.close()


async def test_broker_down_at_start_is_a_clear_error_after_max_block_ms():
    port = free_port()
    async with Producer(bootstrap_servers=f"127.0.0.1:{port}", max_block_ms=1500,
                        default_api_timeout_ms=1500) as producer:  # fmt: skip
        start = trio.current_time()
        with pytest.raises((KafkaConnectionError, KafkaTimeoutError), match=f"127.0.0.1:{port}|max_block_ms"):
            await producer.send("t", b"v")
        assert trio.current_time() - start < 5


def _fake_metadata(port: int, topic: str = "t") -> dict:
    return {
        "throttle_time_ms": 0, "brokers": [{"node_id": 1, "host": "127.0.0.1", "port": port, "rack": None}],
        "cluster_id": "fake", "controller_id": 1,
        "topics": [{"error_code": 0, "name": topic, "is_internal": False, "partitions": [
            {"error_code": 0, "partition_index": 0, "leader_id": 1, "leader_epoch": 0,
             "replica_nodes": [1], "isr_nodes": [1], "offline_replicas": []}]}],
    }  # fmt: skip


def _produce_answer(code: int, base_offset: int = 0) -> dict:
    return {"responses": [{"name": "t", "partition_responses": [
        {"index": 0, "error_code": code, "base_offset": base_offset, "log_append_time_ms": -1,
         "log_start_offset": 0, "record_errors": [], "error_message": None}]}], "throttle_time_ms": 0}  # fmt: skip


class ScriptedBroker(FakeBroker):
    """Metadata for topic "t" on itself; Produce answered from a list of codes."""

    def __init__(self, produce_codes):
        super().__init__(self.answer, api_versions={METADATA: (0, 6), 18: (0, 3), 0: (3, 7), 22: (0, 1)})
        self.codes = list(produce_codes)
        self.port = 0
        self.produced: list[bytes] = []
        self.producer_ids = 0

    async def answer(self, header, body):
        if header.api_key == METADATA:
            return _fake_metadata(self.port)
        if header.api_key == 22:
            self.producer_ids += 1
            return {"throttle_time_ms": 0, "error_code": 0, "producer_id": 76 + self.producer_ids,
                    "producer_epoch": 0}  # fmt: skip
        records = bytes(body["topic_data"][0]["partition_data"][0]["records"])
        self.produced.append(records)
        code = self.codes.pop(0) if self.codes else 0
        if code == "silence":
            return None
        return _produce_answer(code, base_offset=100)


async def test_retriable_errors_refresh_metadata_and_resend_the_same_bytes(nursery):
    fake = ScriptedBroker([ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.NOT_ENOUGH_REPLICAS, 0])
    fake.port = await fake.serve(nursery)
    async with Producer(bootstrap_servers=f"127.0.0.1:{fake.port}", retry_backoff_ms=10) as producer:
        metadata = await (await producer.send("t", b"v"))
    assert metadata.offset == 100
    assert len(fake.produced) == 3 and len(set(fake.produced)) == 1  # same sequence, same bytes
    assert RecordBatch(fake.produced[0]).producer_id == 77
    metadata_requests = [h for h, _ in fake.requests if h.api_key == METADATA]
    assert len(metadata_requests) >= 2  # NOT_LEADER_OR_FOLLOWER made it look again


async def test_delivery_timeout_fails_a_batch_that_never_gets_an_answer(nursery):
    fake = ScriptedBroker(["silence"] * 100)
    fake.port = await fake.serve(nursery)
    async with Producer(bootstrap_servers=f"127.0.0.1:{fake.port}", request_timeout_ms=300,
                        delivery_timeout_ms=1000, retry_backoff_ms=10) as producer:  # fmt: skip
        delivery = await producer.send("t", b"v")
        with pytest.raises(KafkaTimeoutError, match="delivery_timeout_ms"):
            await delivery


async def test_send_waits_for_buffer_memory_then_times_out(nursery):
    fake = ScriptedBroker(["silence"] * 100)
    fake.port = await fake.serve(nursery)
    async with Producer(bootstrap_servers=f"127.0.0.1:{fake.port}", buffer_memory=3000, batch_size=1000,
                        max_block_ms=500, request_timeout_ms=60_000) as producer:  # fmt: skip
        with pytest.raises(KafkaTimeoutError, match="buffer_memory"):
            for _ in range(100):
                await producer.send("t", b"x" * 200)
        assert producer._buffered <= 3000
        await producer.close(timeout=0)  # nothing will be delivered: do not wait for it


async def test_broker_killed_and_restarted_loses_no_acknowledged_record_and_writes_none_twice(tmp_path):
    broker = BrokerProcess(tmp_path / "data", port=free_port()).start()
    try:
        await create_topic(broker.bootstrap, "p-restart", partitions=3)
        acked: list = []
        async with Producer(bootstrap_servers=broker.bootstrap, linger_ms=2, retry_backoff_ms=50,
                            request_timeout_ms=3000, reconnect_backoff_max_ms=200) as producer:  # fmt: skip

            # Records are sent before, during and after the outage whatever
            # the machine's speed: the kill waits for some to be sent, and the
            # sender pauses 500 records into the outage until the broker is back.
            outage_ends_at: list[int] = []
            restarted = trio.Event()

            async def produce():
                for i in range(6000):
                    if outage_ends_at and i == outage_ends_at[0]:
                        await restarted.wait()
                    d = await producer.send("p-restart", b"%d" % i, key=b"%d" % i)
                    acked.append(d)
                    if i % 50 == 0:
                        await trio.sleep(0.02)

            async with trio.open_nursery() as n:
                n.start_soon(produce)
                await wait_until(lambda: len(acked) >= 300, 30, "records sent before the kill")
                await trio.to_thread.run_sync(broker.kill)
                killed_after = len(acked)
                outage_ends_at.append(killed_after + 500)
                await wait_until(lambda: len(acked) == outage_ends_at[0], 30, "records sent into the outage")
                await trio.to_thread.run_sync(broker.start)
                restarted_after = len(acked)
                restarted.set()
            assert 0 < killed_after < restarted_after < 6000  # records were sent into the outage
            await producer.flush()
            results = [await d for d in acked]
        values = []
        for p in range(3):
            values += [r.value for r in records_of(await read_batches(broker.bootstrap, "p-restart", p))]
        assert len(results) == 6000
        assert sorted(values, key=int) == [b"%d" % i for i in range(6000)]  # all there, none twice
        for p in range(3):  # and in order within each partition
            part = [int(r.value) for r in records_of(await read_batches(broker.bootstrap, "p-restart", p))]
            assert part == sorted(part)
    finally:
        broker.close()


async def test_a_batch_that_may_have_been_written_is_not_followed_by_its_sequence_numbers(nursery):
    # REQUEST_TIMED_OUT does not say the batch is not in the log: after giving
    # up on it, reusing its sequences could make the broker take the next
    # batch for a duplicate of it. The partition moves to a new producer id.
    fake = ScriptedBroker([ErrorCode.REQUEST_TIMED_OUT, 0])
    fake.port = await fake.serve(nursery)
    async with Producer(bootstrap_servers=f"127.0.0.1:{fake.port}", retries=0) as producer:
        with pytest.raises(Exception, match="REQUEST_TIMED_OUT"):
            await (await producer.send("t", b"first"))
        await (await producer.send("t", b"second"))
    first, second = (RecordBatch(b) for b in fake.produced)
    assert (first.producer_id, first.base_sequence) == (77, 0)
    assert (second.producer_id, second.base_sequence) == (78, 0)


async def test_a_raising_delivery_callback_does_not_stop_the_producer(bootstrap):
    await create_topic(bootstrap, "p-bad-callback")

    def broken(metadata, error):
        raise RuntimeError("application bug")

    seen = []
    async with Producer(bootstrap_servers=bootstrap, linger_ms=20) as producer:
        first = await producer.send("p-bad-callback", b"a", on_delivery=broken)
        second = await producer.send("p-bad-callback", b"b", on_delivery=lambda md, err: seen.append(md.offset))
        assert [(await first).offset, (await second).offset] == [0, 1]
        assert (await (await producer.send("p-bad-callback", b"c"))).offset == 2
    assert seen == [1]
