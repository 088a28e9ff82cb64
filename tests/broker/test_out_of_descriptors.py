"""Out of file descriptors (EMFILE), a broker answers the request at hand with
KAFKA_STORAGE_ERROR and goes on: no crash, no dropped connection, nothing
lost; a partition whose log could not be created is offline until it can be."""

from __future__ import annotations

import errno
import os

import pytest
import trio

from riverlog.broker.config import BrokerConfig
from riverlog.broker.server import Broker
from riverlog.broker.storage import open_files
from riverlog.client.protocol import ErrorCode
from riverlog.client.records import build_batch, iter_batches

from ..descriptors import no_descriptors_left
from .test_connection import Peer, _call, _connect


@pytest.fixture
async def broker(tmp_path, nursery):
    # segment.bytes at its least: every produce below rolls a segment, which opens files.
    config = BrokerConfig.from_properties({"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "data"),
                                           "log.segment.bytes": "14"})  # fmt: skip
    return await nursery.start(Broker(config).serve)


async def _create(peer, name: str) -> None:
    _, body = await _call(peer, 19, 4, {"topics": [{"name": name, "num_partitions": 1, "replication_factor": 1}]})
    assert body["topics"][0]["error_code"] == 0


async def _produce(peer, topic: str, value: bytes) -> dict:
    batch = build_batch([(None, value, 1_700_000_000_000, ())])
    request = {"acks": -1, "timeout_ms": 1000,
               "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": batch}]}]}  # fmt: skip
    _, body = await _call(peer, 0, 7, request)
    return body["responses"][0]["partition_responses"][0]


async def _fetch(peer, topic: str, offset: int = 0) -> dict:
    request = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": 0,
               "topics": [{"topic": topic, "partitions": [{"partition": 0, "fetch_offset": offset,
                                                            "partition_max_bytes": 1 << 20}]}]}  # fmt: skip
    _, body = await _call(peer, 1, 10, request)
    return body["responses"][0]["partitions"][0]


def _values(part: dict) -> list[bytes]:
    return [r.value for b in iter_batches(part["records"]) for r in b.records()]


async def _read_all(peer, topic: str) -> list[bytes]:
    """Every record, a fetch per segment (a fetch stops at a segment's end)."""
    values: list[bytes] = []
    while True:
        part = await _fetch(peer, topic, len(values))
        assert part["error_code"] == 0
        if len(values) >= part["high_watermark"]:
            return values
        values += _values(part)


async def test_requests_out_of_descriptors_get_a_storage_error_and_the_broker_goes_on(broker):
    peer = await _connect(broker)
    await _create(peer, "t")
    assert (await _produce(peer, "t", b"first"))["error_code"] == 0
    open_files.CACHE.shrink(0)  # no segment file open: every read and append must open one
    with no_descriptors_left():
        # The append rolls a new segment, whose files cannot be opened.
        answer = await _produce(peer, "t", b"refused")
        assert answer["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
        assert (await _fetch(peer, "t"))["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
    # Same connection, descriptors back: served again, nothing half-written.
    assert (await _produce(peer, "t", b"second"))["base_offset"] == 1
    assert await _read_all(peer, "t") == [b"first", b"second"]


async def test_a_log_that_cannot_be_created_is_offline_until_it_can(broker):
    peer = await _connect(broker)
    await _create(peer, "warm")  # the first topic's work (metadata log, checkpoints) done before
    open_files.CACHE.shrink(0)
    with no_descriptors_left():
        # The metadata takes the topic; acting on it, the broker cannot create the log.
        await _create(peer, "late")
        with trio.fail_after(10):
            while ("late", 0) not in broker.partitions.offline_logs:
                await trio.sleep(0.01)
        assert (await _produce(peer, "late", b"x"))["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
    # Descriptors back: the broker creates the log on its own, and serves it.
    with trio.fail_after(30):
        while (answer := await _produce(peer, "late", b"x"))["error_code"] != 0:
            assert answer["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
            await trio.sleep(0.1)
    assert await _read_all(peer, "late") == [b"x"]


async def test_a_connection_that_cannot_be_accepted_waits_and_is_then_served(broker, caplog):
    sock = trio.socket.socket()  # the client's own descriptor, taken before they run out
    with no_descriptors_left():
        await sock.connect(("127.0.0.1", broker.port))  # the kernel completes it; accept cannot
        with trio.fail_after(10):
            while "cannot accept a connection" not in caplog.text:
                await trio.sleep(0.01)
    peer = Peer(trio.SocketStream(sock))
    with trio.fail_after(30):
        await _create(peer, "after")
    assert (await _produce(peer, "after", b"v"))["error_code"] == 0


async def _delete_records(peer, topic: str, offset: int) -> dict:
    request = {"topics": [{"name": topic, "partitions": [{"partition_index": 0, "offset": offset}]}],
               "timeout_ms": 1000}  # fmt: skip
    _, body = await _call(peer, 21, 1, request)
    return body["topics"][0]["partitions"][0]


async def test_out_of_descriptors_delete_records_answers_storage_error_and_the_directory_stays_online(broker):
    """DeleteRecords rewrites the leader-epoch checkpoint: out of descriptors,
    that took the log directory offline until a restart."""
    peer = await _connect(broker)
    await _create(peer, "t")
    for value in (b"a", b"b", b"c"):
        assert (await _produce(peer, "t", value))["error_code"] == 0
    open_files.CACHE.shrink(0)
    with no_descriptors_left():
        assert (await _delete_records(peer, "t", 1))["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
    assert not broker.log_manager.failures.offline
    answer = await _delete_records(peer, "t", 2)
    assert (answer["error_code"], answer["low_watermark"]) == (0, 2)
    assert (await _produce(peer, "t", b"d"))["base_offset"] == 3


class _ListenerOutOfDescriptors:
    """A listener whose accept fails with EMFILE ``times`` times, then waits."""

    def __init__(self, times: int) -> None:
        self.times = times

    async def accept(self):
        if self.times:
            self.times -= 1
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        await trio.sleep_forever()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> bool:
        return False


async def test_accepting_out_of_descriptors_is_warned_every_10_s_not_at_every_try(tmp_path, autojump_clock, caplog):
    config = BrokerConfig.from_properties({"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "data")})
    listener = _ListenerOutOfDescriptors(250)  # 25 s of tries, one every ACCEPT_BACKOFF_S
    with trio.move_on_after(60):
        await Broker(config)._accept_on(listener)
    assert listener.times == 0
    lines = [r.getMessage() for r in caplog.records if "cannot accept a connection" in r.getMessage()]
    assert len(lines) == 3, lines  # at 0, 10 and 20 s
    assert "more like it not logged" in lines[1]
