"""Idempotent produce over the wire: InitProducerId, retries, gaps, epochs, restarts."""

from __future__ import annotations

import pytest
import trio

from riverlog.broker.config import BrokerConfig
from riverlog.broker.controller.forwarding import ControllerUnavailable
from riverlog.broker.metadata.decisions import PRODUCER_ID_BLOCK_SIZE
from riverlog.broker.producer_ids import ProducerIdBlocks
from riverlog.broker.server import Broker
from riverlog.broker.storage.checkpoint import write_checkpoint
from riverlog.client.protocol import ErrorCode
from riverlog.client.records import build_batch

from .test_connection import _call, _connect
from .test_produce_fetch import _fetch, _produce


def _config(data_dir) -> BrokerConfig:
    return BrokerConfig.from_properties({"listeners": "127.0.0.1:0", "log.dirs": str(data_dir)})


async def _start(nursery, data_dir) -> Broker:
    broker = await nursery.start(Broker(_config(data_dir)).serve)
    peer = await _connect(broker)
    _, body = await _call(peer, 19, 4, {"topics": [{"name": "t", "num_partitions": 1, "replication_factor": 1}]})
    assert body["topics"][0]["error_code"] in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS)
    return broker


@pytest.fixture
async def broker(tmp_path, nursery):
    return await _start(nursery, tmp_path / "data")


def _batch(pid: int, seq: int, n: int = 3, epoch: int = 0) -> bytes:
    records = [(b"k%d" % i, b"v%d" % (seq + i), 1_700_000_000_000 + i, []) for i in range(n)]
    return build_batch(records, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


async def _init_producer_id(peer, version: int = 1, transactional_id: str | None = None) -> dict:
    """Retries COORDINATOR_LOAD_IN_PROGRESS (no producer id block from the controller yet), as clients do."""
    request = {"transactional_id": transactional_id, "transaction_timeout_ms": 60000}
    with trio.fail_after(30):
        while (answer := (await _call(peer, 22, version, request))[1])["error_code"] == \
                ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
            await trio.sleep(0.01)
    return answer


@pytest.mark.parametrize("version", [0, 1])
async def test_init_producer_id_hands_out_fresh_ids_at_epoch_0(broker, version):
    peer = await _connect(broker)
    first, second = await _init_producer_id(peer, version), await _init_producer_id(peer, version)
    assert (first["error_code"], first["producer_epoch"], second["producer_epoch"]) == (0, 0, 0)
    assert 0 <= first["producer_id"] < second["producer_id"]


async def test_init_producer_id_is_advertised_and_refuses_transactions(broker):
    peer = await _connect(broker)
    _, body = await _call(peer, 18, 2, {})
    assert {"api_key": 22, "min_version": 0, "max_version": 1} in [
        {k: a[k] for k in ("api_key", "min_version", "max_version")} for a in body["api_keys"]
    ]
    body = await _init_producer_id(peer, transactional_id="txn")
    assert (body["error_code"], body["producer_id"]) == (ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1)


async def test_a_resent_batch_gets_its_offset_and_is_not_appended(broker):
    peer = await _connect(broker)
    pid = (await _init_producer_id(peer))["producer_id"]
    first = await _produce(peer, _batch(pid, 0))
    second = await _produce(peer, _batch(pid, 3, n=2))
    assert (first["error_code"], first["base_offset"], second["base_offset"]) == (0, 0, 3)
    again = await _produce(peer, _batch(pid, 0))  # a retry of the first batch
    assert (again["error_code"], again["base_offset"]) == (ErrorCode.NONE, 0)
    again = await _produce(peer, _batch(pid, 3, n=2))
    assert (again["error_code"], again["base_offset"]) == (ErrorCode.NONE, 3)
    assert (await _fetch(peer))["high_watermark"] == 5


async def test_a_sequence_gap_is_refused_and_nothing_appended(broker):
    peer = await _connect(broker)
    pid = (await _init_producer_id(peer))["producer_id"]
    await _produce(peer, _batch(pid, 0))
    result = await _produce(peer, _batch(pid, 4))  # 3 is missing
    assert result["error_code"] == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert (await _fetch(peer))["high_watermark"] == 3
    assert (await _produce(peer, _batch(pid, 3)))["base_offset"] == 3


async def test_an_older_epoch_is_fenced_and_a_new_epoch_restarts_at_zero(broker):
    peer = await _connect(broker)
    pid = (await _init_producer_id(peer))["producer_id"]
    await _produce(peer, _batch(pid, 0, epoch=1))
    assert (await _produce(peer, _batch(pid, 3, epoch=0)))["error_code"] == ErrorCode.INVALID_PRODUCER_EPOCH
    assert (await _produce(peer, _batch(pid, 3, epoch=2)))["error_code"] == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert (await _produce(peer, _batch(pid, 0, epoch=2)))["error_code"] == ErrorCode.NONE
    assert (await _fetch(peer))["high_watermark"] == 6


async def test_plain_batches_are_not_affected(broker):
    peer = await _connect(broker)
    plain = build_batch([(b"k", b"v", 1, [])])
    assert [(await _produce(peer, plain))["base_offset"] for _ in range(3)] == [0, 1, 2]


async def test_state_and_producer_ids_survive_a_restart(tmp_path):
    data = tmp_path / "data"
    async with trio.open_nursery() as nursery:
        broker = await _start(nursery, data)
        peer = await _connect(broker)
        pid = (await _init_producer_id(peer))["producer_id"]
        await _produce(peer, _batch(pid, 0))
        await _produce(peer, _batch(pid, 3))
        await peer.aclose()
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:
        broker = await _start(nursery, data)
        peer = await _connect(broker)
        assert (await _init_producer_id(peer))["producer_id"] > pid
        again = await _produce(peer, _batch(pid, 3))  # a retry across the restart
        assert (again["error_code"], again["base_offset"]) == (ErrorCode.NONE, 3)
        gap = await _produce(peer, _batch(pid, 7))
        assert gap["error_code"] == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert (await _produce(peer, _batch(pid, 6)))["base_offset"] == 6
        assert (await _fetch(peer))["high_watermark"] == 9
        await peer.aclose()
        nursery.cancel_scope.cancel()


async def test_a_single_broker_takes_its_ids_in_blocks_from_its_own_controller_past_each_block(broker):
    """A quorum of one: the blocks come through the in-process controller and
    the metadata log; more ids than a block moves on to the next one."""
    peer = await _connect(broker)
    ids = [(await _init_producer_id(peer))["producer_id"] for _ in range(PRODUCER_ID_BLOCK_SIZE + 100)]
    assert ids == sorted(set(ids))  # unique, in order: one block after the other
    assert broker.image.next_producer_id > ids[-1]  # every id handed out lies below what the log says is next


async def test_a_single_broker_with_a_producer_id_block_file_starts_past_it(tmp_path):
    """A broker from before the controller allocated ids kept its next block
    in producer-id-block; ids below it may still be in its partitions'
    producer state, so none of them is handed out again."""
    data = tmp_path / "data"
    data.mkdir()
    write_checkpoint(data / "producer-id-block", [(5000,)])
    async with trio.open_nursery() as nursery:
        broker = await _start(nursery, data)
        peer = await _connect(broker)
        first = (await _init_producer_id(peer))["producer_id"]
        assert first >= 5000
        await peer.aclose()
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:  # and after a restart, past the first block too
        broker = await _start(nursery, data)
        peer = await _connect(broker)
        assert (await _init_producer_id(peer))["producer_id"] >= first + PRODUCER_ID_BLOCK_SIZE
        await peer.aclose()
        nursery.cancel_scope.cancel()


async def test_init_producer_id_without_a_block_is_coordinator_load_in_progress_until_the_next_one(broker):
    peer = await _connect(broker)
    taken = (await _init_producer_id(peer))["producer_id"]
    broker.producer_ids.blocks = ProducerIdBlocks()  # as just started: no block yet
    _, answer = await _call(peer, 22, 1, {"transactional_id": None, "transaction_timeout_ms": 60000})
    assert (answer["error_code"], answer["producer_id"]) == (ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, -1)
    assert (await _init_producer_id(peer))["producer_id"] > taken  # the manager asked for a new block
    await peer.aclose()


async def test_allocate_producer_ids_while_unregistered_or_without_a_controller(broker, monkeypatch):
    epoch = broker.registration.broker_epoch
    monkeypatch.setattr(broker.registration, "broker_epoch", -1)  # registering (again)
    assert await broker._allocate_producer_ids() == (ErrorCode.BROKER_ID_NOT_REGISTERED, -1, 0)
    monkeypatch.setattr(broker.registration, "broker_epoch", epoch)

    async def unavailable(*args, **kwargs):
        raise ControllerUnavailable("no active controller answered")

    monkeypatch.setattr(broker.channel, "send", unavailable)
    assert await broker._allocate_producer_ids() == (ErrorCode.COORDINATOR_NOT_AVAILABLE, -1, 0)
