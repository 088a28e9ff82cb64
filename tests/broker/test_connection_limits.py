"""What bounds a connection's memory and life, over real sockets against an
in-process broker: the broker-wide pool of request memory
(queued.max.request.bytes), idle and stalled connections
(connections.max.idle.ms), connections per address (max.connections.per.ip)
and the read buffer, which idle connections do not hold."""

from __future__ import annotations

import gc
import struct
import tracemalloc

import pytest
import trio

from riverlog.broker.config import BrokerConfig
from riverlog.broker.net.connection import RECEIVE_BYTES
from riverlog.broker.server import Broker
from riverlog.client.protocol import encode_frame
from riverlog.client.protocol.api import encode_request
from riverlog.client.protocol.headers import RequestHeader

from .test_connection import _call, _connect, _is_closed, _response



def _api_versions_of_size(size: int, correlation_id: int) -> bytes:
    """An ApiVersions v3 request of exactly ``size`` bytes (a long client software name)."""
    def request(n: int) -> bytes:
        body = {"client_software_name": "x" * n, "client_software_version": "1"}
        return encode_request(RequestHeader(18, 3, correlation_id, "t"), body)

    n = size - len(request(0))
    while len(request(n)) > size:
        n -= 1
    assert len(request(n)) == size
    return request(n)


async def _start(tmp_path, nursery, **props) -> Broker:
    """A broker with ``props`` given as Python names (queued_max_request_bytes="...")."""
    named = {name.replace("_", "."): value for name, value in props.items()}
    config = BrokerConfig.from_properties({"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "data"), **named})
    return await nursery.start(Broker(config).serve)


async def _wait_for(condition, seconds: float = 10) -> None:
    with trio.fail_after(seconds):
        while not condition():
            await trio.sleep(0.01)


# -- connections.max.idle.ms -------------------------------------------------------


async def test_a_connection_idle_past_connections_max_idle_ms_is_closed(tmp_path, nursery):
    b = await _start(tmp_path, nursery, connections_max_idle_ms="1000")
    peer = await _connect(b)
    assert (await _call(peer, 18, 3, {}))[1]["error_code"] == 0
    assert await _is_closed(peer.stream)  # well within _is_closed's 5 s
    await _wait_for(lambda: b.connections == 0)


async def test_a_request_trickling_in_a_byte_at_a_time_is_closed(tmp_path, nursery):
    """A slow-loris: every byte comes well within connections.max.idle.ms of
    the one before, but the request as a whole does not; the bytes arriving
    must not keep it open for ever."""
    b = await _start(tmp_path, nursery, connections_max_idle_ms="500")
    peer = await _connect(b)
    frame = struct.pack(">i", 10_000) + bytes(10_000)
    closed = False
    with trio.fail_after(10):
        for i in range(len(frame)):
            try:
                await peer.send_all(frame[i : i + 1])
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                closed = True
                break
            with trio.move_on_after(0.1):
                try:
                    closed = await peer.receive_some(1) == b""
                except trio.BrokenResourceError:
                    closed = True
            if closed:
                break
    assert closed
    await _wait_for(lambda: b.connections == 0)


async def test_a_connection_waiting_for_its_answer_is_not_idle(tmp_path, nursery):
    """A Fetch long-polling past connections.max.idle.ms: the client waits for
    the broker, so the connection is not idle and gets its answer."""
    b = await _start(tmp_path, nursery, connections_max_idle_ms="1000")
    peer = await _connect(b)
    _, body = await _call(peer, 19, 4, {"topics": [{"name": "t", "num_partitions": 1, "replication_factor": 1}]})
    assert body["topics"][0]["error_code"] == 0
    fetch = {"replica_id": -1, "max_wait_ms": 3000, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": 0,
             "topics": [{"topic": "t", "partitions": [{"partition": 0, "fetch_offset": 0,
                                                        "partition_max_bytes": 1 << 20}]}]}  # fmt: skip
    _, fetched = await _call(peer, 1, 10, fetch, correlation_id=2)
    assert fetched["responses"][0]["partitions"][0]["error_code"] == 0


# -- queued.max.request.bytes --------------------------------------------------------


async def test_partly_read_requests_are_bounded_by_queued_max_request_bytes(tmp_path, nursery):
    """A pool of 1 MB taken whole by the first 1 MiB of a request part sent:
    a second request of 600 KB is not read (its sender is held back, the
    socket stays open) until the first's memory comes back; then it is
    served."""
    b = await _start(tmp_path, nursery, queued_max_request_bytes=str(1_000_000),
                     socket_request_max_bytes=str(4 << 20))  # fmt: skip
    first = await _connect(b)
    await first.send_all(struct.pack(">i", 1_200_000) + bytes(1000))  # announced; most of it never sent
    await _wait_for(lambda: b.memory_pool.reserved == 1 << 20)  # its buffer's first 1 MiB
    second = await _connect(b)
    async with trio.open_nursery() as senders:
        senders.start_soon(second.send_all, encode_frame(_api_versions_of_size(600_000, 2)))
        await _wait_for(lambda: b.memory_pool.waiting == 1)
        assert b.memory_pool.reserved == 1 << 20  # the second frame has no memory yet
        await first.aclose()
        with trio.fail_after(10):
            corr, answer = await _response(second, 18, 3)
    assert corr == 2 and answer["error_code"] == 0
    await _wait_for(lambda: b.memory_pool.reserved == 0)


async def test_a_request_larger_than_the_whole_pool_is_served_when_the_pool_is_free(tmp_path, nursery):
    b = await _start(tmp_path, nursery, queued_max_request_bytes=str(100_000),
                     socket_request_max_bytes=str(4 << 20))  # fmt: skip
    peer = await _connect(b)
    await peer.send_all(encode_frame(_api_versions_of_size(1_000_000, 7)))
    with trio.fail_after(10):
        corr, answer = await _response(peer, 18, 3)
    assert corr == 7 and answer["error_code"] == 0
    await _wait_for(lambda: b.memory_pool.reserved == 0)


async def test_frames_announced_and_never_sent_hold_back_no_other_request(tmp_path, nursery):
    """Three connections announce a 100 MiB request each (the default
    socket.request.max.bytes) and send nothing more; with the default pool
    (256 MiB) they must cost nothing until their bytes arrive, and another
    connection's small requests are answered at once."""
    b = await _start(tmp_path, nursery)
    hogs = [await _connect(b) for _ in range(3)]
    for hog in hogs:
        await hog.send_all(struct.pack(">i", 100 * 1024 * 1024))
    await _wait_for(lambda: b.connections == 3)
    peer = await _connect(b)
    with trio.fail_after(10):
        for i in range(3):
            assert (await _call(peer, 18, 3, {}, correlation_id=i))[1]["error_code"] == 0


async def test_small_requests_are_served_while_a_large_one_cannot_have_the_pool(tmp_path, nursery):
    """A request larger than the whole pool, part sent, and another part
    sent: neither may hold back a small request while the pool has memory
    left (memory is given to whoever asks while some is free, never in a
    line behind a large request)."""
    b = await _start(tmp_path, nursery, queued_max_request_bytes=str(4_000_000),
                     socket_request_max_bytes=str(16 << 20))  # fmt: skip
    large = await _connect(b)
    await large.send_all(struct.pack(">i", 8_000_000) + bytes(100_000))
    await _wait_for(lambda: b.memory_pool.reserved > 0)
    other = await _connect(b)
    await other.send_all(struct.pack(">i", 2_000_000) + bytes(1000))
    await _wait_for(lambda: b.connections == 2)
    peer = await _connect(b)
    with trio.fail_after(10):
        for i in range(3):
            assert (await _call(peer, 18, 3, {}, correlation_id=i))[1]["error_code"] == 0
    await large.aclose()
    await other.aclose()
    await _wait_for(lambda: b.memory_pool.reserved == 0)


async def test_time_held_back_by_the_pool_does_not_count_against_the_next_request(tmp_path, nursery):
    """A request whole and the first half of the next, sent together, while
    the pool is taken: the broker holds the client back longer than
    connections.max.idle.ms. Once memory is back the first is answered, and
    the client, sending the rest of the second at once, is not closed for
    having taken too long over it."""
    b = await _start(tmp_path, nursery, connections_max_idle_ms="1000", queued_max_request_bytes=str(1_000_000),
                     socket_request_max_bytes=str(4 << 20))  # fmt: skip
    hog = await _connect(b)
    await hog.send_all(struct.pack(">i", 1_200_000) + bytes(1000))  # its buffer's first 1 MiB takes the pool
    await _wait_for(lambda: b.memory_pool.reserved >= 1_000_000)
    peer = await _connect(b)
    second = encode_frame(_api_versions_of_size(40_000, 2))
    await peer.send_all(encode_frame(_api_versions_of_size(40_000, 1)) + second[:20_000])
    await _wait_for(lambda: b.memory_pool.waiting == 1)
    await trio.sleep(1.5)  # held back past connections.max.idle.ms (the hog is not idle: part of a request)
    await hog.aclose()
    with trio.fail_after(10):
        assert (await _response(peer, 18, 3))[0] == 1
        await peer.send_all(second[20_000:])
        corr, answer = await _response(peer, 18, 3)
    assert corr == 2 and answer["error_code"] == 0


async def test_connections_held_back_by_the_pool_hold_no_read_buffer(tmp_path, nursery):
    """Fifty connections each with a request whole in their read buffer,
    waiting for the pool: what the connection module keeps for them is far
    below one 64 KiB read buffer each."""
    b = await _start(tmp_path, nursery, queued_max_request_bytes=str(1_000_000),
                     socket_request_max_bytes=str(4 << 20))  # fmt: skip
    hog = await _connect(b)
    await hog.send_all(struct.pack(">i", 1_200_000) + bytes(1000))
    await _wait_for(lambda: b.memory_pool.reserved >= 1_000_000)
    only_connections = [tracemalloc.Filter(True, "*/broker/net/*")]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces(only_connections)
        peers = [await _connect(b) for _ in range(50)]
        for i, peer in enumerate(peers):
            await peer.send_all(encode_frame(_api_versions_of_size(1000, i)))
        await _wait_for(lambda: b.memory_pool.waiting == 50)
        held = tracemalloc.take_snapshot().filter_traces(only_connections)
        grown = sum(s.size_diff for s in held.compare_to(before, "filename"))
        per_connection = (grown - len(b.read_buffers._spares) * RECEIVE_BYTES) / 50
        assert per_connection < 8 * 1024, f"{per_connection:.0f} bytes a connection"
    finally:
        tracemalloc.stop()
    await hog.aclose()
    with trio.fail_after(10):
        for i, peer in enumerate(peers):
            assert (await _response(peer, 18, 3))[0] == i


async def test_a_broker_stopped_while_connections_wait_for_the_pool_lends_no_buffer_twice(tmp_path):
    """Connections waiting for the pool when the broker stops: each read
    buffer goes back to the spares once (twice, two later connections would
    share one)."""
    async with trio.open_nursery() as nursery:
        b = await _start(tmp_path, nursery, queued_max_request_bytes=str(1_000_000),
                         socket_request_max_bytes=str(4 << 20))  # fmt: skip
        hog = await _connect(b)
        await hog.send_all(struct.pack(">i", 1_200_000) + bytes(1000))
        await _wait_for(lambda: b.memory_pool.reserved >= 1_000_000)
        peers = [await _connect(b) for _ in range(3)]
        for i, peer in enumerate(peers):
            await peer.send_all(encode_frame(_api_versions_of_size(1000, i)))
        await _wait_for(lambda: b.memory_pool.waiting == 3)
        nursery.cancel_scope.cancel()
    spares = b.read_buffers._spares
    assert len({id(buf) for buf in spares}) == len(spares)


# -- max.connections.per.ip ------------------------------------------------------------


async def test_max_connections_per_ip_refuses_beyond_the_limit_and_its_overrides(tmp_path, nursery):
    b = await _start(tmp_path, nursery, max_connections_per_ip="2",
                     max_connections_per_ip_overrides="127.0.0.2:3")  # fmt: skip
    held = [await _connect(b) for _ in range(2)]
    for peer in held:
        assert (await _call(peer, 18, 3, {}))[1]["error_code"] == 0
    refused = await _connect(b)
    assert await _is_closed(refused.stream)
    other = []
    for _ in range(3):  # another address, its own limit
        stream = await trio.open_tcp_stream("127.0.0.1", b.port, local_address="127.0.0.2")
        other.append(stream)
    extra = await trio.open_tcp_stream("127.0.0.1", b.port, local_address="127.0.0.2")
    assert await _is_closed(extra)
    await held.pop().aclose()  # a closed connection gives its place back
    await _wait_for(lambda: b.connections == 4)
    again = await _connect(b)
    assert (await _call(again, 18, 3, {}))[1]["error_code"] == 0


# -- the read buffer -------------------------------------------------------------------


async def test_idle_connections_hold_no_read_buffer_and_closed_ones_leave_nothing(tmp_path, nursery):
    """After a request each, 200 idle connections: what the connection
    module keeps for them is far below one 64 KiB read buffer each, and all
    of it goes when they close."""
    b = await _start(tmp_path, nursery)
    only_connections = [tracemalloc.Filter(True, "*/broker/net/*")]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces(only_connections)
        peers = [await _connect(b) for _ in range(200)]
        for peer in peers:
            assert (await _call(peer, 18, 3, {}))[1]["error_code"] == 0
        await _wait_for(lambda: b.connections == 200)
        idle = tracemalloc.take_snapshot().filter_traces(only_connections)
        per_connection = sum(s.size_diff for s in idle.compare_to(before, "filename")) / 200
        assert per_connection < 8 * 1024, f"{per_connection:.0f} bytes a connection"
        for peer in peers:
            await peer.aclose()
        await _wait_for(lambda: b.connections == 0)
        # Trio keeps up to a thousand stale deadlines until it prunes them,
        # each holding the cancel scope it was set on (a connection's one
        # read deadline, allocated here): prune them now, so that only what
        # the connections really left is counted.
        trio._core._run.GLOBAL_RUN_CONTEXT.runner.deadlines._prune()
        gc.collect()
        after = tracemalloc.take_snapshot().filter_traces(only_connections)
        diff = after.compare_to(before, "lineno")
        # The spare read buffers are kept for the next connections (a few).
        left = sum(s.size_diff for s in diff) - len(b.read_buffers._spares) * RECEIVE_BYTES
        assert left < 16 * 1024, f"{left} bytes left after the connections closed"
    finally:
        tracemalloc.stop()
    assert not b.connections_per_ip


async def test_a_client_that_never_reads_its_answers_is_closed(tmp_path, nursery):
    """Pipelined requests whose answers the client never reads: once the
    socket buffers are full the broker cannot send, and after
    connections.max.idle.ms without the client taking the answer it closes
    the connection rather than hold it (and what it read) for ever."""
    import socket

    b = await _start(tmp_path, nursery, connections_max_idle_ms="1000")
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
    await sock.connect(("127.0.0.1", b.port))
    stream = trio.SocketStream(sock)
    requests = b"".join(encode_frame(encode_request(RequestHeader(18, 3, i, "t"), {})) for i in range(20_000))

    async def send() -> None:
        try:
            await stream.send_all(requests)  # blocks once the broker stops reading
        except trio.BrokenResourceError:
            pass  # the broker closed the connection with our requests unread

    async with trio.open_nursery() as senders:
        senders.start_soon(send)
        await _wait_for(lambda: b.connections == 1)
        await _wait_for(lambda: b.connections == 0)
        senders.cancel_scope.cancel()
