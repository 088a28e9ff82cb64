"""Produce and Fetch on the wire: bad batches are refused whole, good ones read back."""

from __future__ import annotations

import pytest

from riverlog.broker.config import BrokerConfig
from riverlog.broker.server import Broker
from riverlog.client.protocol import ErrorCode
from riverlog.client.records import build_batch, iter_batches

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
    from riverlog.client.records import Compression

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
    from riverlog.broker.net import connection

    peer = await _connect(broker)
    await _produce(peer, _batch())

    async def broken_sendfile(sock, fd, offset, count):
        raise OSError(9, "Bad file descriptor")  # as if the segment's fd had been closed

    monkeypatch.setattr(connection, "_sendfile", broken_sendfile)
    request = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
               "topics": [{"topic": "t", "partitions": [{"partition": 0, "fetch_offset": 0,
                                                          "partition_max_bytes": 1 << 20}]}]}  # fmt: skip
    from riverlog.client.protocol import encode_frame
    from riverlog.client.protocol.api import encode_request
    from riverlog.client.protocol.headers import RequestHeader

    await peer.send_all(encode_frame(encode_request(RequestHeader(1, 10, 7, "t"), request)))
    import trio

    with trio.fail_after(5):  # the start of the answer may arrive; then the connection ends
        while await peer.receive_some(65536):
            pass
    monkeypatch.undo()
    other = await _connect(broker)
    assert (await _fetch(other))["high_watermark"] == 3  # the broker serves on


# ---- the records area is walked: a batch whose header and CRC are right but
# whose records do not parse is refused whole, whatever its codec.


def _with_area(batch: bytes, area: bytes, codec: int | None = None) -> bytes:
    """``batch`` with its records area replaced (and its codec bits, if given),
    length and CRC made right again: only the records are wrong."""
    import struct

    from crc32c import crc32c

    out = bytearray(batch[:61] + area)
    struct.pack_into(">i", out, 8, len(out) - 12)
    if codec is not None:
        attrs = struct.unpack_from(">h", out, 21)[0]
        struct.pack_into(">h", out, 21, (attrs & ~0x07) | codec)
    struct.pack_into(">I", out, 17, crc32c(bytes(out[21:])))
    return bytes(out)


def _area(batch: bytes) -> bytes:
    return batch[61:]


def _garbage(n: int = 200, seed: int = 13) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def _records_at(offset_deltas: list[int]) -> bytes:
    """A records area of well-formed records at the given offset deltas."""
    from riverlog.native.twin import write_varint

    out = bytearray()
    for delta in offset_deltas:
        body = bytearray(b"\x00")  # attributes
        for field in (0, delta, -1, 1):  # timestamp delta, offset delta, null key, value length 1
            write_varint(body, field)
        body += b"v\x00"  # the value, no headers
        write_varint(out, len(body))
        out += body
    return bytes(out)


def _compressed(codec: int, area: bytes) -> bytes:
    from riverlog.client.records import compress

    return compress(codec, area)


GOOD3 = _batch()  # three records, offset deltas 0..2
_EMPTY_GZIP = bytes.fromhex("1f8b0800000000000003" "0300" "00000000" "00000000")  # an empty member, 20 bytes
GARBAGE_CASES = {
    # what a hostile or buggy producer sends -> Kafka's answer
    "random-bytes": (lambda: _with_area(GOOD3, _garbage()), ErrorCode.INVALID_RECORD),
    "random-bytes-flagged-gzip": (lambda: _with_area(GOOD3, _garbage(), codec=1), ErrorCode.CORRUPT_MESSAGE),
    "random-bytes-flagged-snappy": (lambda: _with_area(GOOD3, _garbage(), codec=2), ErrorCode.CORRUPT_MESSAGE),
    "random-bytes-flagged-lz4": (lambda: _with_area(GOOD3, _garbage(), codec=3), ErrorCode.CORRUPT_MESSAGE),
    "random-bytes-flagged-zstd": (lambda: _with_area(GOOD3, _garbage(), codec=4), ErrorCode.CORRUPT_MESSAGE),
    "gzip-of-random-bytes": (lambda: _with_area(GOOD3, _compressed(1, _garbage()), codec=1), ErrorCode.INVALID_RECORD),
    "zstd-of-random-bytes": (lambda: _with_area(GOOD3, _compressed(4, _garbage()), codec=4), ErrorCode.INVALID_RECORD),
    "a-record-short": (lambda: _with_area(GOOD3, _area(_batch(2))), ErrorCode.INVALID_RECORD),
    "a-record-over": (lambda: _with_area(GOOD3, _area(_batch(4))), ErrorCode.INVALID_RECORD),
    "trailing-byte": (lambda: _with_area(GOOD3, _area(GOOD3) + b"\x00"), ErrorCode.INVALID_RECORD),
    # Good records, framed so they would cost a Python step per few bytes to read.
    "gzip-more-members-than-16": (
        lambda: _with_area(GOOD3, _compressed(1, _area(GOOD3)) + _EMPTY_GZIP * 16, codec=1),
        ErrorCode.CORRUPT_MESSAGE,
    ),
    # librdkafka's consumer reads only the first member: a second would be read short.
    "gzip-a-second-member": (
        lambda: _with_area(GOOD3, _compressed(1, _area(GOOD3)) + _EMPTY_GZIP, codec=1),
        ErrorCode.CORRUPT_MESSAGE,
    ),
    "snappy-an-empty-xerial-block": (lambda: _with_area(GOOD3, _compressed(2, _area(GOOD3)) + b"\x00\x00\x00\x01\x00",
                                                        codec=2), ErrorCode.CORRUPT_MESSAGE),
    "lz4-a-record-short": (lambda: _with_area(GOOD3, _compressed(3, _area(_batch(2))), codec=3),
                           ErrorCode.INVALID_RECORD),
    "offset-deltas-out-of-order": (lambda: _with_area(GOOD3, _records_at([0, 2, 1])), ErrorCode.INVALID_RECORD),
    "offset-deltas-not-from-0": (lambda: _with_area(GOOD3, _records_at([1, 2, 3])), ErrorCode.INVALID_RECORD),
    "offset-deltas-repeated": (lambda: _with_area(GOOD3, _records_at([0, 0, 2])), ErrorCode.INVALID_RECORD),
    "header-key-not-utf8": (
        lambda: _with_area(GOOD3, _area(GOOD3).replace(b"\x02h\x02x", b"\x02\xff\x02x")),
        ErrorCode.INVALID_RECORD,
    ),
}


@pytest.mark.parametrize("case", list(GARBAGE_CASES))
async def test_a_batch_whose_records_do_not_parse_is_refused_and_nothing_is_appended(broker, case):
    make, code = GARBAGE_CASES[case]
    peer = await _connect(broker)
    assert (await _produce(peer, _batch()))["error_code"] == 0
    result = await _produce(peer, make())
    assert result["error_code"] == code, result
    after = await _produce(peer, _batch(2))
    assert (after["error_code"], after["base_offset"]) == (0, 3)  # nothing of the refused batch took an offset
    part = await _fetch(peer)
    assert part["high_watermark"] == 5
    records = [r for b in iter_batches(part["records"]) for r in b.records()]
    assert [r.offset for r in records] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
async def test_every_codec_of_good_records_is_accepted(broker, codec):
    peer = await _connect(broker)
    result = await _produce(peer, build_batch([(b"k%d" % i, b"v" * 50, 1, [("h", b"x")]) for i in range(20)],
                                              compression=codec))  # fmt: skip
    assert result["error_code"] == 0, result
    records = [r for b in iter_batches((await _fetch(peer))["records"]) for r in b.records()]
    assert [r.value for r in records] == [b"v" * 50] * 20


async def test_a_decompression_bomb_is_refused_without_decompressing_it_whole(broker, monkeypatch):
    """message.max.bytes is 2000 here: a zstd batch under it whose records
    inflate to 16 MiB is past the bound tied to it (64 x 2000 bytes) and is
    refused; the decompressor is never asked for more than the bound."""
    from riverlog.client.records import compression

    asked = []
    real = compression.decompress

    def spy(codec, data, max_output_bytes=compression.DEFAULT_MAX_OUTPUT_BYTES, **options):
        asked.append(max_output_bytes)
        return real(codec, data, max_output_bytes, **options)

    monkeypatch.setattr(compression, "decompress", spy)
    value = bytes(16 << 20)
    bomb = build_batch([(None, value, 1, [])], compression=4)
    assert len(bomb) < 2000
    peer = await _connect(broker)
    result = await _produce(peer, bomb)
    assert result["error_code"] == ErrorCode.MESSAGE_TOO_LARGE, result
    assert asked == [64 * 2000]
    assert (await _fetch(peer))["high_watermark"] == 0
