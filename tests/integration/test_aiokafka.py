"""aiokafka (asyncio, its own protocol code) against a real riverlog broker process."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

RECORDS = 2_000


def test_aiokafka_produces_and_consumes_every_codec(broker):
    async def scenario() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("aio", num_partitions=2, replication_factor=1)])
        finally:
            await admin.close()
        sent = {}
        for codec in (None, "gzip", "snappy", "lz4", "zstd"):
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec, acks="all")
            await producer.start()
            try:
                for i in range(RECORDS // 5):
                    value = f"{codec}-{i}".encode()
                    meta = await producer.send_and_wait("aio", value, key=b"k%d" % (i % 3), headers=[("c", b"1")])
                    sent[(meta.partition, meta.offset)] = value
            finally:
                await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([TopicPartition("aio", p) for p in range(2)])
            got = {}
            async with asyncio.timeout(60):
                while len(got) < len(sent):
                    batch = await consumer.getmany(timeout_ms=1000)
                    for records in batch.values():
                        for r in records:
                            got[(r.partition, r.offset)] = r.value
        finally:
            await consumer.stop()
        assert got == sent

    asyncio.run(scenario())
