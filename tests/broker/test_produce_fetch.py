"""Produce and Fetch on the wire: bad batches are refused whole, good ones read back."""

from __future__ import annotations

import pytest

from broker.config import BrokerConfig
from broker.server import Broker
from client.protocol import ErrorCode
from client.records import build_batch, iter_batches

from .test_connection import _call, _connect


@pytest.fixture
async def broker(tmp_path, nursery):
    config = BrokerConfig.from_properties(
        {"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "data"), "message.max.bytes": "2000"}
    )
    b = await nursery.start(Broker(config).serve)
    peer = await _connect(b)
    _, body = await _call(peer, 19, 4, {"topics": [{"name": "t", "num_partitions": 1, "replication_factor": 1}]})
    assert body["topics"][0]["error_code"] == 0
    return b


def _batch(n: int = 3, size: int = 10) -> bytes:
    return build_batch([(b"k%d" % i, b"v" * size, 1_700_000_000_000 + i, [("h", b"x")]) for i in range(n)])


async def _produce(peer, batch: bytes, version: int = 7, acks: int = 1) -> dict:
    request = {"acks": acks, "timeout_ms": 1000,
               "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": batch}]}]}  # fmt: skip
    _, body = await _call(peer, 0, version, request)
    return body["responses"][0]["partition_responses"][0]


async def _fetch(peer, offset: int = 0) -> dict:
    request = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": 0,
               "topics": [{"topic": "t", "partitions": [{"partition": 0, "fetch_offset": offset,
                                                          "partition_max_bytes": 1 << 20}]}]}  # fmt: skip
    _, body = await _call(peer, 1, 10, request)
    return body["responses"][0]["partitions"][0]


async def test_produced_batches_read_back_at_their_offsets(broker):
    peer = await _connect(broker)
    first = await _produce(peer, _batch())
    second = await _produce(peer, _batch(2))
    assert (first["error_code"], first["base_offset"], second["base_offset"]) == (0, 0, 3)
    part = await _fetch(peer)
    assert part["high_watermark"] == 5
    records = [r for b in iter_batches(part["records"]) for r in b.records()]
    assert [r.offset for r in records] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "mangle, code",
    [
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), ErrorCode.CORRUPT_MESSAGE),  # a flipped CRC-covered bit
        (lambda b: b[:-4], ErrorCode.CORRUPT_MESSAGE),  # torn
        (lambda b: b[:16] + b"\x01" + b[17:], ErrorCode.INVALID_RECORD),  # magic 1: v3+ is magic 2 only
        (lambda b: b + b, ErrorCode.INVALID_RECORD),  # two batches: v3+ carries exactly one
    ],
)
async def test_a_bad_batch_is_refused_and_nothing_is_appended(broker, mangle, code):
    peer = await _connect(broker)
    await _produce(peer, _batch())
    result = await _produce(peer, mangle(_batch()))
    assert result["error_code"] == code
    assert (await _fetch(peer))["high_watermark"] == 3


async def test_a_batch_over_message_max_bytes_is_refused(broker):
    peer = await _connect(broker)
    result = await _produce(peer, _batch(3, size=1000))
    assert result["error_code"] == ErrorCode.MESSAGE_TOO_LARGE
    assert (await _fetch(peer))["high_watermark"] == 0


async def test_produce_v0_to_v2_and_zstd_before_v7_are_refused(broker):
    peer = await _connect(broker)
    assert (await _produce(peer, _batch(), version=2))["error_code"] == ErrorCode.UNSUPPORTED_VERSION
    from client.records import Compression

    zstd = build_batch([(b"k", b"v", 1, [])], compression=Compression.ZSTD)
    assert (await _produce(peer, zstd, version=6))["error_code"] == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
    assert (await _produce(peer, zstd, version=7))["error_code"] == 0


async def test_fetch_out_of_range_and_unknown_partition(broker):
    peer = await _connect(broker)
    await _produce(peer, _batch())
    assert (await _fetch(peer, offset=99))["error_code"] == ErrorCode.OFFSET_OUT_OF_RANGE
    request = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
               "topics": [{"topic": "nope", "partitions": [{"partition": 0, "fetch_offset": 0,
                                                             "partition_max_bytes": 100}]}]}  # fmt: skip
    _, body = await _call(peer, 1, 10, request)
    assert body["responses"][0]["partitions"][0]["error_code"] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


async def test_a_long_poll_fetch_returns_when_data_arrives(broker, nursery):
    import trio

    consumer, producer = await _connect(broker), await _connect(broker)
    request = {"replica_id": -1, "max_wait_ms": 5000, "min_bytes": 1, "max_bytes": 1 << 20,
               "topics": [{"topic": "t", "partitions": [{"partition": 0, "fetch_offset": 0,
                                                          "partition_max_bytes": 1 << 20}]}]}  # fmt: skip
    result = {}

    async def poll():
        result["body"] = (await _call(consumer, 1, 10, request))[1]

    with trio.fail_after(4):  # well before max_wait_ms: the append wakes it
        async with trio.open_nursery() as n:
            n.start_soon(poll)
            await trio.sleep(0.2)
            assert "body" not in result
            await _produce(producer, _batch())
    assert result["body"]["responses"][0]["partitions"][0]["high_watermark"] == 3


async def test_fetch_max_bytes_caps_a_response_whatever_the_client_asks(tmp_path, nursery):
    config = BrokerConfig.from_properties(
        {"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "d"), "fetch.max.bytes": "1024"}
    )
    b = await nursery.start(Broker(config).serve)
    peer = await _connect(b)
    await _call(peer, 19, 4, {"topics": [{"name": "t", "num_partitions": 1, "replication_factor": 1}]})
    for _ in range(20):
        await _produce(peer, _batch(3, size=100))
    part = await _fetch(peer)  # asks for 1 MiB
    assert part["high_watermark"] == 60
    assert 0 < len(part["records"]) <= max(1024, len(_batch(3, size=100)))


async def test_a_graceful_stop_lets_a_request_in_flight_finish(tmp_path):
    import trio

    config = BrokerConfig.from_properties({"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "d")})
    b = Broker(config)
    result = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(b.serve)
        peer = await _connect(b)
        await _call(peer, 19, 4, {"topics": [{"name": "t", "num_partitions": 1, "replication_factor": 1}]})
        request = {"replica_id": -1, "max_wait_ms": 500, "min_bytes": 1, "max_bytes": 1 << 20,
                   "topics": [{"topic": "t", "partitions": [{"partition": 0, "fetch_offset": 0,
                                                              "partition_max_bytes": 1 << 20}]}]}  # fmt: skip

        async def long_poll():
            result["body"] = (await _call(peer, 1, 10, request))[1]

        nursery.start_soon(long_poll)
        await trio.sleep(0.1)  # the fetch is parked, waiting for data
        b.request_stop()
    # serve() returned: the parked fetch was answered (after its wait), not cut off.
    assert result["body"]["responses"][0]["partitions"][0]["error_code"] == 0
    assert (tmp_path / "d" / ".riverlog_cleanshutdown").exists()


async def test_a_fetch_answer_whose_file_vanished_closes_only_that_connection(broker, monkeypatch):
    from broker.net import connection

    peer = await _connect(broker)
    await _produce(peer, _batch())

    async def broken_sendfile(sock, fd, offset, count):
        raise OSError(9, "Bad file descriptor")  # as if the segment's fd had been closed

    monkeypatch.setattr(connection, "_sendfile", broken_sendfile)
    request = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
               "topics": [{"topic": "t", "partitions": [{"partition": 0, "fetch_offset": 0,
                                                          "partition_max_bytes": 1 << 20}]}]}  # fmt: skip
    from client.protocol import encode_frame
    from client.protocol.api import encode_request
    from client.protocol.headers import RequestHeader

    await peer.send_all(encode_frame(encode_request(RequestHeader(1, 10, 7, "t"), request)))
    import trio

    with trio.fail_after(5):  # the start of the answer may arrive; then the connection ends
        while await peer.receive_some(65536):
            pass
    monkeypatch.undo()
    other = await _connect(broker)
    assert (await _fetch(other))["high_watermark"] == 3  # the broker serves on
