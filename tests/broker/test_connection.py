"""The connection loop: ApiVersions, order of responses, and bad input that
closes one connection while the broker keeps serving the others."""

from __future__ import annotations

import os
import struct

import pytest
import trio

from riverlog.broker.config import BrokerConfig
from riverlog.broker.server import Broker
from riverlog.client.protocol import ErrorCode, FrameDecoder, encode_frame
from riverlog.client.protocol.api import decode_response, encode_request
from riverlog.client.protocol.headers import RequestHeader


@pytest.fixture
async def broker(tmp_path, nursery):
    config = BrokerConfig.from_properties(
        {"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "data"), "socket.request.max.bytes": "2097152"}
    )
    return await nursery.start(Broker(config).serve)


class Peer:
    """A raw protocol connection with its own frame decoder."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.decoder = FrameDecoder(1 << 24)

    async def send_all(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def receive_some(self, n: int) -> bytes:
        return await self.stream.receive_some(n)

    async def aclose(self) -> None:
        await self.stream.aclose()


async def _connect(broker) -> Peer:
    return Peer(await trio.open_tcp_stream("127.0.0.1", broker.port))


async def _call(peer: Peer, api_key: int, version: int, body: dict, correlation_id: int = 1) -> tuple[int, dict]:
    await peer.send_all(encode_frame(encode_request(RequestHeader(api_key, version, correlation_id, "t"), body)))
    return await _response(peer, api_key, version)


async def _response(peer: Peer, api_key: int, version: int) -> tuple[int, dict]:
    while (frame := peer.decoder.next_frame()) is None:
        data = await peer.receive_some(65536)
        assert data, "connection closed before a response"
        peer.decoder.feed(data)
    return decode_response(api_key, version, frame)


async def _is_closed(stream) -> bool:
    with trio.move_on_after(5):
        try:
            return await stream.receive_some(1) == b""
        except trio.BrokenResourceError:
            return True
    return False


async def _serves_and_others_closed(broker) -> None:
    """A new connection is answered, and every other one is gone."""
    stream = await _connect(broker)
    assert (await _call(stream, 18, 3, {}))[1]["error_code"] == 0
    with trio.fail_after(5):
        while broker.connections > 1:
            await trio.sleep(0.01)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
async def test_api_versions_lists_what_the_handlers_serve(broker, version):
    stream = await _connect(broker)
    corr, body = await _call(stream, 18, version, {"client_software_name": "t", "client_software_version": "1"})
    assert corr == 1 and body["error_code"] == 0
    keys = {k["api_key"]: (k["min_version"], k["max_version"]) for k in body["api_keys"]}
    assert keys == {s.api_key: (s.min_version, s.max_version) for s in broker.registry.values()}
    assert keys[18] == (0, 3)


async def test_a_too_new_api_versions_gets_the_kip_511_reply(broker):
    stream = await _connect(broker)
    await stream.send_all(encode_frame(encode_request(RequestHeader(18, 4, 9, "t"), {})))
    corr, body = await _response(stream, 18, 0)  # the reply is a v0 body whatever was asked
    assert corr == 9 and body["error_code"] == ErrorCode.UNSUPPORTED_VERSION
    assert body["api_keys"] == [{"api_key": 18, "min_version": 0, "max_version": 3}]
    corr, body = await _call(stream, 18, 3, {}, correlation_id=10)  # and the connection stays usable
    assert corr == 10 and body["error_code"] == 0


async def test_pipelined_requests_are_answered_in_order(broker):
    stream = await _connect(broker)
    frames = b"".join(
        encode_frame(encode_request(RequestHeader(18, 2, corr, "t"), {})) for corr in range(100, 150)
    )
    await stream.send_all(frames)
    got = [(await _response(stream, 18, 2))[0] for _ in range(100, 150)]
    assert got == list(range(100, 150))


BAD_INPUTS = {
    "random bytes": os.urandom(64),
    "2 GiB length prefix": struct.pack(">i", 2**31 - 1) + b"x" * 10,
    "negative length": struct.pack(">i", -5),
    "over socket.request.max.bytes": struct.pack(">i", 2097153),
    "unknown api key": encode_frame(struct.pack(">hhih", 999, 0, 1, -1)),
    "unsupported version": encode_frame(encode_request(RequestHeader(3, 12, 1, "t"), {"topics": []})),
    "body that does not decode": encode_frame(struct.pack(">hhih", 18, 3, 1, -1) + b"\xff\xff\xff"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
async def test_bad_input_closes_only_its_connection(broker, name):
    bystander = await _connect(broker)
    bad = await _connect(broker)
    await bad.send_all(BAD_INPUTS[name])
    assert await _is_closed(bad), f"{name}: the connection should be closed"
    corr, body = await _call(bystander, 18, 3, {})
    assert body["error_code"] == 0


async def test_a_truncated_frame_then_hang_up_leaves_the_broker_serving(broker):
    bad = await _connect(broker)
    await bad.send_all(encode_frame(encode_request(RequestHeader(18, 3, 1, "t"), {}))[:7])
    await bad.aclose()
    stream = await _connect(broker)
    assert (await _call(stream, 18, 3, {}))[1]["error_code"] == 0


async def test_a_thousand_connections_opened_and_dropped(broker):
    for _ in range(1000):
        s = await _connect(broker)
        await s.aclose()
    await _serves_and_others_closed(broker)


async def test_pipelining_beyond_socket_request_max_bytes_waits_and_completes(tmp_path, nursery):
    config = BrokerConfig.from_properties(
        {"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "d"),
         "socket.request.max.bytes": "200", "message.max.bytes": "100"}
    )  # fmt: skip
    b = await nursery.start(Broker(config).serve)
    stream = await _connect(b)
    frames = b"".join(encode_frame(encode_request(RequestHeader(18, 2, corr, "t"), {})) for corr in range(300))
    await stream.send_all(frames)  # far more than 200 bytes in flight: the broker reads as it answers
    with trio.fail_after(10):
        got = [(await _response(stream, 18, 2))[0] for _ in range(300)]
    assert got == list(range(300))


async def test_an_inline_answer_waits_behind_an_earlier_parked_request(broker):
    """Produce is answered inline, at once, but its response still goes out
    after that of the long-polling Fetch pipelined before it, which the
    produce itself completes."""
    from riverlog.client.records import build_batch, iter_batches

    stream = await _connect(broker)
    _, body = await _call(stream, 19, 4, {"topics": [{"name": "t", "num_partitions": 1, "replication_factor": 1}]})
    assert body["topics"][0]["error_code"] == 0
    fetch = {"replica_id": -1, "max_wait_ms": 5000, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 0,
             "topics": [{"topic": "t", "partitions": [{"partition": 0, "fetch_offset": 0,
                                                        "partition_max_bytes": 1 << 20}]}]}  # fmt: skip
    batch = build_batch([(b"k", b"v", 1_700_000_000_000, [])])
    produce = {"acks": 1, "timeout_ms": 1000, "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": batch}]}]}
    await stream.send_all(
        encode_frame(encode_request(RequestHeader(1, 10, 7, "t"), fetch))
        + encode_frame(encode_request(RequestHeader(18, 3, 8, "t"), {}))
        + encode_frame(encode_request(RequestHeader(0, 7, 9, "t"), produce))
    )
    with trio.fail_after(4):  # well before max_wait_ms: the produce woke the fetch
        corr_fetch, fetched = await _response(stream, 1, 10)
        corr_versions, _ = await _response(stream, 18, 3)
        corr_produce, produced = await _response(stream, 0, 7)
    assert (corr_fetch, corr_versions, corr_produce) == (7, 8, 9)
    assert produced["responses"][0]["partition_responses"][0]["base_offset"] == 0
    records = [r for b in iter_batches(fetched["responses"][0]["partitions"][0]["records"]) for r in b.records()]
    assert [(r.key, r.value) for r in records] == [(b"k", b"v")]


class _FaultyInline:
    API_KEY, MIN_VERSION, MAX_VERSION = 18, 0, 3

    @staticmethod
    def handle(ctx, request):
        raise RuntimeError("boom")


async def test_a_fault_in_an_inline_handler_closes_only_its_connection(tmp_path, nursery):
    from riverlog.broker.handlers import metadata

    config = BrokerConfig.from_properties({"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "d")})
    b = await nursery.start(Broker(config, handler_modules=[_FaultyInline, metadata]).serve)
    assert b.registry[18].inline and not b.registry[3].inline
    bad, bystander = await _connect(b), await _connect(b)
    await bad.send_all(encode_frame(encode_request(RequestHeader(18, 3, 1, "t"), {})))
    assert await _is_closed(bad)
    _, body = await _call(bystander, 3, 4, {"topics": [], "allow_auto_topic_creation": False})
    assert body["brokers"][0]["node_id"] == b.config.node_id


def test_a_handler_that_parks_must_be_async():
    from riverlog.broker.handlers import build_registry

    class Parks(_FaultyInline):
        PARKS = True

    with pytest.raises(ValueError, match="must be async"):
        build_registry([Parks])


async def test_a_large_request_arriving_in_pieces_is_served(tmp_path, nursery):
    """A frame beyond the read-ahead buffer is received into its own buffer,
    however the bytes are cut on the way."""
    from riverlog.client.records import build_batch, iter_batches

    config = BrokerConfig.from_properties(
        {"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "d"), "message.max.bytes": str(8 << 20)}
    )
    b = await nursery.start(Broker(config).serve)
    stream = await _connect(b)
    _, body = await _call(stream, 19, 4, {"topics": [{"name": "t", "num_partitions": 1, "replication_factor": 1}]})
    assert body["topics"][0]["error_code"] == 0
    values = [os.urandom(1000) for _ in range(3000)]  # a 3 MB batch: past the first 1 MiB of buffer
    batch = build_batch([(None, v, 1_700_000_000_000, []) for v in values])
    produce = {"acks": 1, "timeout_ms": 1000, "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": batch}]}]}
    frame = encode_frame(encode_request(RequestHeader(0, 7, 5, "t"), produce))
    for cut in range(0, len(frame), 700_001):  # uneven pieces, with pauses between them
        await stream.send_all(frame[cut : cut + 700_001])
        await trio.sleep(0.01)
    corr, produced = await _response(stream, 0, 7)
    assert corr == 5 and produced["responses"][0]["partition_responses"][0]["error_code"] == 0
    fetch = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 8 << 20, "isolation_level": 0,
             "topics": [{"topic": "t", "partitions": [{"partition": 0, "fetch_offset": 0,
                                                        "partition_max_bytes": 8 << 20}]}]}  # fmt: skip
    _, fetched = await _call(stream, 1, 10, fetch, correlation_id=6)
    records = [r for x in iter_batches(fetched["responses"][0]["partitions"][0]["records"]) for r in x.records()]
    assert [r.value for r in records] == values


async def test_a_peer_hanging_up_inside_a_large_frame_leaves_the_broker_serving(broker):
    bad = await _connect(broker)
    await bad.send_all(struct.pack(">i", 1_500_000) + b"\0" * 200_000)
    await bad.aclose()
    await _serves_and_others_closed(broker)


class _TrickleSocket:
    """Gives `recv_into` at most `chunk` bytes a call, recording the size of
    the buffer it was handed each time."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self.data, self.chunk, self.buffer_sizes = data, chunk, []

    async def recv_into(self, room: memoryview) -> int:
        self.buffer_sizes.append(len(room.obj))
        n = min(len(room), self.chunk, len(self.data))
        room[:n] = self.data[:n]
        self.data = self.data[n:]
        return n


async def test_a_large_frame_buffer_grows_with_what_arrives_not_with_its_size_prefix():
    from riverlog.broker.net.connection import LARGE_FRAME_START, _receive_frame

    charged: list[tuple[int, int]] = []  # (bytes charged to the pool, what the buffer held before)

    async def charge(n: int, held: int) -> None:
        assert held == sum(c for c, _ in charged)  # each step charged before the buffer grows
        charged.append((n, held))

    async def _receive_large(sock, size, have):
        return await _receive_frame(sock, have, size, charge)

    size = 64 << 20
    sock = _TrickleSocket(b"\1" * (3 << 20), chunk=256 << 10)  # 3 MiB arrive, then the peer is gone
    assert await _receive_large(sock, size, memoryview(b"\1" * 100)) is None
    assert sock.buffer_sizes[0] == LARGE_FRAME_START
    assert max(sock.buffer_sizes) <= 2 * (3 << 20) + LARGE_FRAME_START  # never the 64 MiB announced
    assert sum(c for c, _ in charged) <= 2 * (3 << 20) + LARGE_FRAME_START  # the pool is charged what is allocated
    charged.clear()
    body = os.urandom(5 << 20)
    whole = await _receive_large(_TrickleSocket(body[1000:], chunk=300_000), len(body), memoryview(body[:1000]))
    assert whole == body
    assert sum(c for c, _ in charged) == len(body)


async def test_requests_arriving_a_few_bytes_at_a_time_are_served(broker):
    """Pieces smaller than a size prefix, with pauses between them: the
    connection waits between pieces without its read buffer (keeping the part
    of a size prefix, or moving a part-read frame to a buffer of its own),
    and every request is answered in order."""
    stream = await _connect(broker)
    frames = b"".join(encode_frame(encode_request(RequestHeader(18, 3, corr, "t"), {})) for corr in range(20, 23))
    for cut in range(0, len(frames), 3):
        await stream.send_all(frames[cut : cut + 3])
        await trio.sleep(0.005)
    with trio.fail_after(10):
        got = [(await _response(stream, 18, 3))[0] for _ in range(3)]
    assert got == [20, 21, 22]


async def test_a_large_answer_taken_slowly_but_steadily_is_sent_whole():
    """A response far larger than the socket buffers, to a client that takes
    a little of it at a time for longer than connections.max.idle.ms in all:
    any bytes taken are activity (as for records sent by sendfile), so it is
    sent whole rather than the connection closed."""
    import socket
    from types import SimpleNamespace

    from riverlog.broker.net.connection import Connection

    a, b = trio.socket.socketpair()
    for s in (a, b):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn = SimpleNamespace(_fd=a.fileno(), stream=trio.SocketStream(a), listener=SimpleNamespace(max_idle_ms=300))
    data = os.urandom(256 * 1024)
    got = bytearray()

    async def take_slowly() -> None:
        while len(got) < len(data):
            got.extend(await b.recv(16 * 1024))
            await trio.sleep(0.05)  # 1 s or more in all, each piece well within 300 ms

    async with trio.open_nursery() as nursery:
        nursery.start_soon(take_slowly)
        with trio.fail_after(60):
            await Connection._send(conn, data)
    assert got == data
    a.close()
    b.close()
