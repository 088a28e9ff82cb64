"""One connection of a listener: frames in, requests worked on
concurrently, responses out strictly in request order.

Both listeners run this loop: the client listener and the controller
listener (the quorum's RPCs, broker registration, forwarded admin requests).
Each gives its connections a ``Listener``: its registry of handlers (what
it serves, and all its ApiVersions answer advertises), the context its
handlers get, and its bounds.

The reader decodes frames (bounded by ``socket.request.max.bytes``) and gives
each request a slot in a bounded channel (``max_in_flight`` per connection:
the reader blocks when it is full, which is the backpressure on a client that
pipelines too much; it also waits while the requests in flight add up to
``socket.request.max.bytes``). A worker task per request fills its slot; the
writer sends the slots' responses in order, skipping requests that have none
(Produce acks=0).

The hot path takes no scheduling round beyond the socket's own wake-up:
a handler that answers at once (a plain ``def handle``: Produce, ListOffsets,
ApiVersions) runs inline in the reader, and when no earlier response is still
queued the reader writes the answer itself, straight into the socket buffer.
Each round of Trio's scheduler costs tens of microseconds here, and a task
per request plus a hand-off to the writer took six of them per Produce.
A large frame (megabytes of batches) is received straight into a buffer of
its own rather than 64 KiB at a time through a decoder: one copy, by the
kernel, instead of three.

What bounds a connection (Kafka's configs): the memory a frame takes is
charged to the listener's memory pool (``queued.max.request.bytes``,
memory_pool.py) as its bytes arrive and until it is answered; the 64 KiB
read buffer is lent only while bytes are arriving, so an idle connection
holds none; ``connections.max.idle.ms`` closes a connection that sends no
request for that long, takes longer than that to send one whole request (a
trickle of bytes does not reset the clock), or leaves a response untaken for
that long.

What closes the connection (logged with the peer address, and touching
nothing else): a malformed or oversized frame, an unknown API key, a version
we do not serve (except ApiVersions, which gets KIP-511's UNSUPPORTED_VERSION
reply), a body that does not decode, or a handler fault. Kafka does the
same: there is no error response a client could parse for an API or version
the broker does not know.
"""

from __future__ import annotations

import logging
import math
import os
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from riverlog.broker.handlers import HandlerSpec, api_versions
from riverlog.broker.net.memory_pool import MemoryPool
from riverlog.client.protocol import ProtocolError, codec
from riverlog.client.protocol.api import encode_response, encode_response_segments
from riverlog.client.protocol.framing import encode_frame, read_frame_size
from riverlog.client.protocol.primitives import SegmentedBuffer
from riverlog.client.protocol.headers import RequestHeader, decode_request_header
from riverlog.client.protocol.messages import APIS

log = logging.getLogger(__name__)

RECEIVE_BYTES = 64 * 1024  # the read buffer; a frame not whole in it gets its own
SPARE_READ_BUFFERS = 16  # read buffers kept for reuse across connections
LARGE_FRAME_START = 1 << 20  # a large frame's buffer at first, doubled as its bytes arrive


_NOT_TAKEN = "a response not taken by the client within connections.max.idle.ms ({} ms)"


class ReadBuffers:
    """The 64 KiB read buffers, lent to a connection while bytes are arriving
    and kept for the next one (a few spares: allocating and zeroing one for
    every read would cost more than the read)."""

    def __init__(self) -> None:
        self._spares: list[bytearray] = []

    def take(self) -> bytearray:
        return self._spares.pop() if self._spares else bytearray(RECEIVE_BYTES)

    def give(self, buf: bytearray) -> None:
        if len(self._spares) < SPARE_READ_BUFFERS:
            self._spares.append(buf)


@dataclass(eq=False)
class Listener:
    """What a listener gives the connections it accepts."""

    name: str  # for the log: "client listener", "controller listener"
    registry: Mapping[int, HandlerSpec]  # what it serves, by API key
    context: Callable[[RequestHeader, str], Any]  # (header, peer) -> what its handlers get as ctx
    memory_pool: MemoryPool  # queued.max.request.bytes
    read_buffers: ReadBuffers
    request_max_bytes: int  # socket.request.max.bytes
    max_idle_ms: int  # connections.max.idle.ms
    request_limiter: trio.CapacityLimiter | None  # queued.max.requests; None: no bound
    max_in_flight: int = 32  # pipelined requests one connection may have in work
    requests_in_flight: int = 0  # read and not yet answered, across its connections


class CloseConnection(Exception):
    """The request at this slot ends the connection (the reason is logged)."""


class _Idle(CloseConnection):
    """An idle client closed: routine (Kafka logs it at debug), not a warning."""


class NoAnswer(CloseConnection):
    """A handler has no answer (the controller listener: not the active
    controller, or the quorum did not answer in time): the connection is
    closed, which tells the sender to find the leader and retry; routine."""


class _Slot:
    __slots__ = ("done", "response", "close", "request_bytes")

    def __init__(self, request_bytes: int) -> None:
        # Set when a task works on the request; None: answered already.
        self.done: trio.Event | None = None
        self.response: bytes | SegmentedBuffer | None = None  # framed bytes, or a body with file slices; None: no response
        self.close: CloseConnection | None = None  # what the request ends the connection with
        self.request_bytes = request_bytes


@dataclass
class _Work:
    spec: HandlerSpec
    ctx: Any
    header: RequestHeader
    request: dict


class Connection:
    def __init__(self, listener: Listener, stream: trio.SocketStream, peer: str) -> None:
        self.listener = listener
        self.stream = stream
        self._fd = stream.socket.fileno()
        # Slots handed to the writer and not yet sent: while there are any, a
        # new answer queues behind them (responses go out in request order).
        self._queued = 0
        self.peer = peer
        # Requests read but not yet answered on the wire; the listener's total
        # lets a graceful stop wait for them.
        self.outstanding = 0
        # Bytes of those requests: the reader waits while they reach
        # socket.request.max.bytes, so pipelining cannot multiply that bound.
        self.bytes_in_flight = 0
        # What this connection holds of the listener's memory pool: the frames
        # reserved and not yet answered (given back when the connection ends).
        self.reserved_bytes = 0
        self.last_active = trio.current_time()  # the last bytes read or answer sent
        self._answered = trio.lowlevel.ParkingLot()
        # Answers made inline while the frames of one read are cut, written
        # together once they are (one write, one wake-up of the client, for
        # what it pipelined), and always before the reader waits or hands a
        # request to the writer: responses stay in request order.
        self._out: list[_Slot] = []
        # The reader's one deadline (connections.max.idle.ms): armed only
        # while it waits for the peer's bytes, moved rather than a cancel
        # scope made per wait; its expiry ends the reader (see _expired).
        self._deadline = trio.CancelScope()
        self._deadline_for = 0  # 0: the next request; -1: a request part read; else a large request's size
        self._idle_wait = False  # the reader waits between requests: an answer moves the deadline
        self._idle_s = listener.max_idle_ms / 1000

    def _track(self, delta: int) -> None:
        self.outstanding += delta
        self.listener.requests_in_flight += delta

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                send, receive = trio.open_memory_channel[_Slot](self.listener.max_in_flight)
                nursery.start_soon(self._write, receive)
                async with send:
                    with self._deadline:
                        await self._read(send, nursery)
                    if self._deadline.cancelled_caught:
                        raise self._expired()
        except* (_Idle, NoAnswer) as group:
            log.debug("%s: closing connection from %s: %s", self.listener.name, self.peer, group.exceptions[0])
        except* CloseConnection as group:
            log.warning("%s: closing connection from %s: %s", self.listener.name, self.peer, group.exceptions[0])
        except* ProtocolError as group:
            log.warning("%s: closing connection from %s: malformed request: %s", self.listener.name, self.peer,
                        group.exceptions[0])  # fmt: skip
        except* (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            pass  # the peer went away
        except* Exception as group:  # anything else costs this connection, never the broker
            log.error("%s: closing connection from %s after an unexpected fault", self.listener.name, self.peer,
                      exc_info=group)  # fmt: skip
        finally:
            self._track(-self.outstanding)
            self.listener.memory_pool.release(self.reserved_bytes)  # requests never answered, a frame part read
            self.reserved_bytes = 0
            with trio.CancelScope(shield=True):
                await self.stream.aclose()

    # size: the read loop's buffer state lives in locals (hot path); split, it would go through attributes
    async def _read(self, send: trio.MemorySendChannel[_Slot], nursery: trio.Nursery) -> None:
        """Frames off the socket, each charged to the listener's memory pool
        (queued.max.request.bytes) for the memory it takes, as it takes it
        (memory_pool.py); while the pool has no room, nothing more is read.

        Small frames are cut from a 64 KiB read buffer, which is taken from
        the listener's spares when bytes arrive and given back when the socket
        has no more, or while the connection waits for the pool: an idle or
        held-back connection holds none (a frame part read then moves to a
        buffer of its own). A large frame (a produce request's batches) gets
        its own buffer, filled straight from the socket: its bytes are
        copied once, by the kernel, and it takes a scheduling round per
        socket buffer's worth, not per 64 KiB."""
        limit = self.listener.request_max_bytes
        pool = self.listener.memory_pool
        spares = self.listener.read_buffers
        scratch: bytearray | None = None
        view = memoryview(b"")
        start = end = 0  # unread bytes are scratch[start:end]
        carry = b""  # unread bytes while no buffer is held
        # When the bytes at scratch[start] began, or the broker stopped holding
        # the client back, if later: a request must arrive whole within the idle limit.
        since = 0.0
        waited = False
        try:
            while True:
                if self.bytes_in_flight >= limit:
                    while self.bytes_in_flight >= limit:
                        await self._answered.park()
                    since = trio.current_time()  # the client was held back, not slow
                if scratch is None:
                    scratch = spares.take()
                    view = memoryview(scratch)
                    end = len(carry)
                    view[:end] = carry
                n = _read_now(self._fd, view[end:])
                if n is None:  # the socket has nothing more now: wait without holding the buffer
                    carry = _unlend(spares, scratch, view, start, end)
                    scratch, start, end = None, 0, 0
                    if len(carry) >= 4:  # a frame part read: into its own buffer
                        if not await self._receive_large(carry, limit, since, send, nursery):
                            return  # peer closed in the middle of a frame
                        carry = b""
                        since = trio.current_time()
                    else:
                        await self._wait_readable(since if carry else None)
                    waited = True
                    continue
                if not waited:
                    await trio.lowlevel.cancel_shielded_checkpoint()  # a busy peer must not starve the others
                waited = False
                if not n:
                    return  # peer closed; responses already queued still go out
                now = trio.current_time()
                if start == end:
                    since = now
                self.last_active = now
                end += n
                while end - start >= 4:
                    size = read_frame_size(scratch, start, limit)
                    if 4 + size > len(scratch):  # the read buffer goes back meanwhile
                        await self._flush()
                        carry = _unlend(spares, scratch, view, start, end)
                        scratch, start, end = None, 0, 0
                        if not await self._receive_large(carry, limit, since, send, nursery):
                            return  # peer closed in the middle of a frame
                        carry = b""
                        since = trio.current_time()
                        waited = True  # _receive_large took its scheduling rounds
                        break
                    if end - start - 4 < size:
                        break
                    if not pool.try_reserve(size):
                        # Wait for the pool without the read buffer, then cut the frame.
                        await self._flush()
                        carry = _unlend(spares, scratch, view, start, end)
                        scratch = None  # lent back: a cancel while waiting must not give it twice
                        await self._charge(size)
                        scratch = spares.take()
                        view = memoryview(scratch)
                        start, end = 0, len(carry)
                        view[:end] = carry
                        carry = b""
                    else:
                        self.reserved_bytes += size
                    frame = bytes(view[start + 4 : start + 4 + size])
                    start += 4 + size
                    await self._accept(frame, send, nursery)
                    since = trio.current_time()  # the next frame's clock: not while we were busy
                await self._flush()
                if scratch is not None and start:
                    scratch[: end - start] = view[start:end]
                    end -= start
                    start = 0
        finally:
            view.release()
            if scratch is not None:
                spares.give(scratch)
            if self._out:  # the answers before a malformed frame, as far as the socket takes them now
                try:
                    os.write(self._fd, b"".join([slot.response for slot in self._out if slot.response is not None]))
                except OSError:
                    pass
                self._out = []

    async def _charge(self, size: int, held: int = 0) -> None:
        """Take ``size`` bytes from the listener's memory pool, waiting while it
        has none free (``held``: what this connection's partial frame holds)."""
        pool = self.listener.memory_pool
        if not pool.try_reserve(size):
            await pool.reserve(size, held)
        self.reserved_bytes += size  # only once granted: a cancel while waiting holds nothing

    async def _wait_readable(self, frame_since: float | None) -> None:
        """Wait for the peer's next bytes, up to connections.max.idle.ms: since
        its last request (or our last answer) between requests, or since the
        request began when it is part read. A trickle of bytes does not
        reset that clock, so a request must arrive whole within the limit;
        nor is a client idle while it waits for our answer (the deadline is
        set by the answer that leaves none outstanding, in _sent)."""
        if frame_since is not None:
            self._deadline_for = -1
            self._deadline.deadline = frame_since + self._idle_s
        else:
            self._deadline_for = 0
            self._deadline.deadline = math.inf if self.outstanding else self.last_active + self._idle_s
            self._idle_wait = True
        try:
            await trio.lowlevel.wait_readable(self.stream.socket)
        finally:
            self._idle_wait = False
            self._deadline.deadline = math.inf

    def _expired(self) -> CloseConnection:
        """Why the reader's deadline ended the connection."""
        limit = f"connections.max.idle.ms ({self.listener.max_idle_ms} ms)"
        if self._deadline_for == 0:
            return _Idle(f"idle for {limit}")
        if self._deadline_for < 0:
            return CloseConnection(f"a request not received whole within {limit}")
        return CloseConnection(f"a request of {self._deadline_for} bytes not received whole within {limit}")

    async def _receive_large(self, have: bytes, limit: int, since: float,
                             send: trio.MemorySendChannel[_Slot], nursery: trio.Nursery) -> bool:  # fmt: skip
        """A frame whose first bytes (size prefix included) are ``have``,
        received into a buffer of its own and accepted; False if the peer
        closes first. The buffer starts at the frame's size up to 1 MiB once
        its bytes arrive and doubles as they do, each step charged to the
        pool first: a size prefix alone (up to socket.request.max.bytes)
        costs nothing. Waiting for the pool does not count against the
        client's time to send the frame."""
        size = read_frame_size(have, 0, limit)
        scope = self._deadline

        async def charge(n: int, held: int) -> None:
            scope.deadline, deadline = math.inf, scope.deadline
            await self._charge(n, held)
            scope.deadline = max(deadline, trio.current_time() + self._idle_s)

        self._deadline_for = size
        scope.deadline = since + self._idle_s
        try:
            buf = await _receive_frame(self.stream.socket, memoryview(have)[4:], size, charge)
        finally:
            scope.deadline = math.inf
        if buf is None:
            return False
        self.last_active = trio.current_time()
        await self._accept(buf, send, nursery)
        await self._flush()
        return True

    async def _accept(self, frame: bytes | bytearray, send: trio.MemorySendChannel[_Slot], nursery: trio.Nursery) -> None:
        slot = _Slot(request_bytes=len(frame))
        self._track(1)
        self.bytes_in_flight += len(frame)
        work = self._start(frame, slot)
        if work is None and self._queued == 0:  # answered inline, nothing ahead of it: no hand-off
            if slot.close is None and type(slot.response) is not SegmentedBuffer:
                self._out.append(slot)  # written with the others of this read (_flush)
            else:
                await self._flush()
                await self._answer(slot)
            return
        await self._flush()  # the writer's answers go after these
        self._queued += 1
        try:
            send.send_nowait(slot)
        except trio.WouldBlock:
            await send.send(slot)
        if work is not None:
            nursery.start_soon(self._work, work, slot)

    async def _write(self, receive: trio.MemoryReceiveChannel[_Slot]) -> None:
        async with receive:
            async for slot in receive:
                if slot.done is not None:
                    await slot.done.wait()
                await self._answer(slot)
                self._queued -= 1

    async def _answer(self, slot: _Slot) -> None:
        """Send one slot's response (the reader or the writer, never both at once)."""
        if slot.close is not None:
            raise slot.close
        if isinstance(slot.response, SegmentedBuffer):
            await self._send_segments(slot.response)
        elif slot.response is not None:
            await self._send(slot.response)
        self._sent(slot)

    def _sent(self, slot: _Slot) -> None:
        """A slot's response is on its way: what its request held is given back."""
        self._track(-1)
        self.bytes_in_flight -= slot.request_bytes
        self.reserved_bytes -= slot.request_bytes
        self.listener.memory_pool.release(slot.request_bytes)
        self.last_active = trio.current_time()
        if self._answered:  # the reader waits for requests in flight to be answered
            self._answered.unpark_all()
        if self._idle_wait and not self.outstanding:  # the client waited for us; now its idle clock runs
            self._deadline.deadline = self.last_active + self._idle_s

    async def _flush(self) -> None:
        """Write the answers made inline since the last write, in one go."""
        if self._out:
            slots, self._out = self._out, []
            data = b"".join([slot.response for slot in slots if slot.response is not None])
            if data:
                await self._send(data)
            for slot in slots:
                self._sent(slot)

    async def _send(self, data: bytes) -> None:
        """Write what the socket buffer takes now without a scheduling round;
        the rest (a large response to a slow reader) by ``send_all``."""
        try:
            sent = os.write(self._fd, data)
        except BlockingIOError:
            sent = 0
        except OSError as e:  # as send_all would say it: the peer is gone
            raise trio.BrokenResourceError(str(e)) from e
        if sent < len(data):
            await _send_rest(self.stream.socket, memoryview(data)[sent:], self.listener.max_idle_ms)

    async def _send_segments(self, body: SegmentedBuffer) -> None:
        """A response whose records come straight from log files, by sendfile."""
        view = memoryview(body)
        start = 0
        head = struct.pack(">i", body.total_length)
        for position, file_slice in body.deferred:
            await self._send(head + view[start:position])
            head = b""
            await _sendfile(self.stream.socket, file_slice.fd, file_slice.position, file_slice.length,
                            self.listener.max_idle_ms)  # fmt: skip
            start = position
        await self._send(head + view[start:])

    def _start(self, frame: bytes, slot: _Slot) -> _Work | None:
        """Answer the request now if its handler is inline (or it is refused);
        otherwise what ``_work`` is to run in a task."""
        try:
            work = self._prepare(frame)
            if isinstance(work, bytes):
                slot.response = work
            elif work.spec.inline:
                slot.response = self._encode(work.header, work.spec.handle(work.ctx, work.request))
            else:
                slot.done = trio.Event()
                return work
        except Exception as e:
            self._fail(slot, e)
        return None

    async def _work(self, work: _Work, slot: _Slot) -> None:
        try:
            limiter = self.listener.request_limiter
            if work.spec.parks or limiter is None:  # waits on other clients: no queued.max.requests slot (see HandlerSpec)
                body = await work.spec.handle(work.ctx, work.request)
            else:
                async with limiter:
                    body = await work.spec.handle(work.ctx, work.request)
            slot.response = self._encode(work.header, body)
        except Exception as e:
            self._fail(slot, e)
        finally:
            assert slot.done is not None
            slot.done.set()

    def _fail(self, slot: _Slot, e: Exception) -> None:
        if isinstance(e, CloseConnection):
            slot.close = e
        elif isinstance(e, ProtocolError):
            slot.close = CloseConnection(f"malformed request: {e}")
        else:  # a handler fault costs this connection, never the broker
            log.error("%s: handler fault for a request from %s", self.listener.name, self.peer, exc_info=e)
            slot.close = CloseConnection(f"internal error: {e!r}")

    def _prepare(self, frame: bytes) -> _Work | bytes:
        """The decoded request and its handler, or the framed refusal of an
        ApiVersions version we lack; raises CloseConnection for what has no
        answer a client could parse."""
        buf = memoryview(frame)
        header, pos = decode_request_header(buf)
        spec = self.listener.registry.get(header.api_key)
        if spec is None:
            raise CloseConnection(f"unknown api key {header.api_key}")
        if not spec.supports(header.api_version):
            if header.api_key == api_versions.API_KEY:
                body = api_versions.unsupported_version_body()
                return encode_frame(encode_response(header.api_key, 0, header.correlation_id, body))
            raise CloseConnection(f"unsupported version {header.api_version} of api key {header.api_key}")
        request = codec.decode(APIS[header.api_key].request, header.api_version, buf[pos:])
        return _Work(spec, self.listener.context(header, self.peer), header, request)

    @staticmethod
    def _encode(header, body: dict | None) -> bytes | SegmentedBuffer | None:
        if body is None:
            return None
        out = encode_response_segments(header.api_key, header.api_version, header.correlation_id, body)
        return out if out.deferred else encode_frame(out)


async def _recv_into(sock: trio.socket.SocketType, room: memoryview) -> int:
    """``sock.recv_into``, with socket errors said as the stream would say
    them (BrokenResourceError: the peer went away, closed quietly) rather
    than as faults."""
    try:
        return await sock.recv_into(room)
    except OSError as e:
        raise trio.BrokenResourceError(str(e)) from e


def _read_now(fd: int, room: memoryview) -> int | None:
    """What the socket has now, without waiting (None: nothing yet)."""
    try:
        return os.readv(fd, [room])
    except BlockingIOError:
        return None
    except OSError as e:  # as the stream would say it: the peer went away
        raise trio.BrokenResourceError(str(e)) from e


def _unlend(spares: ReadBuffers, scratch: bytearray, view: memoryview, start: int, end: int) -> bytes:
    """The unread bytes of a read buffer, copied out; the buffer goes back to the spares."""
    carry = bytes(view[start:end])
    view.release()
    spares.give(scratch)
    return carry


async def _receive_frame(sock: trio.socket.SocketType, have: memoryview, size: int,
                         charge: Callable[[int, int], Awaitable[None]]) -> bytearray | None:  # fmt: skip
    """A ``size``-byte frame whose first bytes are ``have``, the rest from
    the socket into a buffer of its own; None if the peer closes first. The
    buffer is allocated once bytes arrive, at the frame's size up to 1 MiB,
    and grows by doubling as they do, each step ``charge``d first (its size,
    and what the buffer holds already): a size prefix alone (up to
    socket.request.max.bytes) costs nothing."""
    filled = len(have)
    if not filled:
        await trio.lowlevel.wait_readable(sock)
    first = min(size, max(LARGE_FRAME_START, 2 * filled))
    await charge(first, 0)
    buf = bytearray(first)
    buf[:filled] = have
    while filled < size:
        if filled == len(buf):
            grow = min(len(buf), size - len(buf))
            await charge(grow, len(buf))
            buf += bytes(grow)
        with memoryview(buf) as whole, whole[filled:] as room:
            n = await _recv_into(sock, room)
        if not n:
            return None
        filled += n
    return buf


async def _send_rest(sock: trio.socket.SocketType, data: memoryview, stall_ms: int) -> None:
    """``data`` to the socket; the client must take some of it every
    ``stall_ms`` (any bytes moved are activity, as for ``_sendfile``)."""
    while data:
        with trio.move_on_after(stall_ms / 1000) as scope:
            try:
                sent = await sock.send(data)
            except OSError as e:  # as send_all would say it: the peer is gone
                raise trio.BrokenResourceError(str(e)) from e
        if scope.cancelled_caught:
            raise CloseConnection(_NOT_TAKEN.format(stall_ms))
        data = data[sent:]


async def _sendfile(sock: trio.socket.SocketType, fd: int, offset: int, count: int, stall_ms: int) -> None:
    """``count`` bytes of file ``fd`` from ``offset`` to the socket, kernel to
    kernel; the client must take some of them every ``stall_ms``."""
    while count > 0:
        try:
            sent = os.sendfile(sock.fileno(), fd, offset, count)
        except BlockingIOError:
            with trio.move_on_after(stall_ms / 1000) as scope:
                await trio.lowlevel.wait_writable(sock)  # only when the socket buffer is full
            if scope.cancelled_caught:
                raise CloseConnection(_NOT_TAKEN.format(stall_ms)) from None
            continue
        if sent == 0:
            # The file ended early (truncated under us): the frame's length is
            # already on the wire, so the only way out is to drop the connection.
            raise CloseConnection("a log file shrank while it was being sent")
        offset += sent
        count -= sent
