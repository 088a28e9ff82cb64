"""A broker never serves a partition directory the metadata does not give it:
left from a deleted topic, or from an earlier topic of the same name."""

from __future__ import annotations

import trio

from riverlog.broker.config import BrokerConfig
from riverlog.broker.server import Broker
from riverlog.broker.storage.partition_metadata import read_topic_id, write_topic_id
from riverlog.client.records import build_batch

from .test_connection import _call, _connect


def _config(tmp_path) -> BrokerConfig:
    return BrokerConfig.from_properties({"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "d")})


async def _run(config, body):
    broker = Broker(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(broker.serve)
        try:
            await body(broker)
        finally:
            broker.request_stop()


async def _produce(peer, topic: str) -> None:
    batch = build_batch([(None, b"old record", 1_700_000_000_000, ())])
    request = {"transactional_id": None, "acks": -1, "timeout_ms": 5000, "topic_data": [
        {"name": topic, "partition_data": [{"index": 0, "records": batch}]}]}  # fmt: skip
    _, body = await _call(peer, 0, 7, request)
    assert body["responses"][0]["partition_responses"][0]["error_code"] == 0


async def test_a_directory_of_a_topic_the_metadata_does_not_have_is_deleted_at_start(tmp_path):
    config = _config(tmp_path)

    async def make(broker):
        peer = await _connect(broker)
        await _call(peer, 19, 4, {"topics": [{"name": "ghost", "num_partitions": 1, "replication_factor": 1}]})
        await _produce(peer, "ghost")

    await _run(config, make)
    # The topic's records stay, but the metadata forgets it (as if it were
    # deleted while this broker was down): copy the directory under a name
    # the metadata never had.
    data = tmp_path / "d"
    (data / "ghost-0").rename(data / "phantom-0")

    async def check(broker):
        assert broker.log_manager.get_log("phantom", 0) is None
        assert not (data / "phantom-0").exists()  # renamed for deletion, then removed

    await _run(config, check)


async def test_a_directory_of_an_earlier_topic_with_the_same_name_is_not_served(tmp_path):
    config = _config(tmp_path)

    async def make(broker):
        peer = await _connect(broker)
        await _call(peer, 19, 4, {"topics": [{"name": "orders", "num_partitions": 1, "replication_factor": 1}]})
        await _produce(peer, "orders")
        assert read_topic_id(tmp_path / "d" / "orders-0") == broker.image.topics["orders"].topic_id

    await _run(config, make)
    write_topic_id(tmp_path / "d" / "orders-0", "ab" * 16)  # as if an earlier "orders" had left it

    async def check(broker):
        plog = broker.log_manager.get_log("orders", 0)
        assert plog is not None and plog.log_end_offset == 0  # a fresh log: the old record is gone
        assert read_topic_id(plog.dir) == broker.image.topics["orders"].topic_id

    await _run(config, check)
