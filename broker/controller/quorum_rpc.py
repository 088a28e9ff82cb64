"""The controller listener's transport: Kafka frames over TCP between the
members of the quorum, one request at a time per connection.

Kafka answers the requests on a connection in order, and a leader holds a
Fetch for up to fetch_max_wait_ms, so a driver keeps Fetch and the election
RPCs on separate connections (see raft_driver.py): a Vote never waits
behind a long-polled Fetch.

- ``controller_listener``: what the listener serves (its registry of
  handlers) and its bounds, for the one connection loop both listeners run
  (broker/net/connection.py). A frame it cannot decode or an API it does
  not serve closes the connection (there is no request to answer).
- ``PeerLink``: one outbound connection, reconnected on demand.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping

import trio

from riverlog.broker.handlers import HandlerSpec, api_versions
from riverlog.broker.net.connection import CloseConnection, Listener, NoAnswer, ReadBuffers
from riverlog.broker.net.memory_pool import MemoryPool
from riverlog.client.protocol import (
    FrameDecoder,
    ProtocolError,
    RequestHeader,
    decode_response,
    encode_frame,
    encode_request,
)

from .wire import READ_VERSIONS

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 16 * 1024 * 1024  # a fetch answer or a snapshot chunk (1 MiB each) with room to spare
DEFAULT_MAX_IDLE_MS = 600_000  # Kafka's connections.max.idle.ms
_RECEIVE_BYTES = 64 * 1024

Handler = Callable[[RequestHeader, dict], Awaitable[dict | None]]
Extra = Mapping[int, tuple[int, int, Handler]]  # api key -> (min version, max version, handler)


def controller_listener(handle: Handler, extra: Extra | None = None, *, max_frame_bytes: int = MAX_FRAME_BYTES,
                        max_idle_ms: int = DEFAULT_MAX_IDLE_MS,
                        memory_pool: MemoryPool | None = None) -> Listener:  # fmt: skip
    """The controller listener, served by the client listener's connection
    loop (broker/net/connection.py) with its own registry: ``handle`` serves
    the quorum's own RPCs, ``extra`` the other APIs (broker registration,
    forwarded admin requests), and ApiVersions advertises exactly these.

    A handler answering None has nothing to say (the core did not answer in
    time, or this node is not the active controller): the connection is
    closed and the peer retries. The client listener's bounds apply:
    ``memory_pool`` (queued.max.request.bytes; None: unbounded) and
    ``max_idle_ms`` (connections.max.idle.ms); no queued.max.requests, so
    a client flood never holds up the quorum."""
    registry: dict[int, HandlerSpec] = {}
    for key, (lo, hi) in READ_VERSIONS.items():
        registry[key] = HandlerSpec(key, lo, hi, _closing_on_none(handle))
    for key, (lo, hi, other) in (extra or {}).items():
        registry[key] = HandlerSpec(key, lo, hi, _closing_on_none(other))

    def versions(header: RequestHeader, request: dict) -> dict:
        return api_versions.answer(registry)

    registry[api_versions.API_KEY] = HandlerSpec(api_versions.API_KEY, api_versions.MIN_VERSION,
                                                 api_versions.MAX_VERSION, versions, inline=True)  # fmt: skip
    return Listener("controller listener", registry, _header_only, memory_pool or MemoryPool(-1), ReadBuffers(),
                    max_frame_bytes, max_idle_ms, request_limiter=None)  # fmt: skip


def _header_only(header: RequestHeader, peer: str) -> RequestHeader:
    return header  # what the controller listener's handlers are given besides the request


def _closing_on_none(handle: Handler) -> Callable[[RequestHeader, dict], Awaitable[dict]]:
    async def answer(header: RequestHeader, request: dict) -> dict:
        try:
            response = await handle(header, request)
        except ValueError as exc:  # a request the quorum's wire rules refuse (wire.py)
            raise CloseConnection(f"bad request: {exc}") from None
        if response is None:
            raise NoAnswer("no answer to give (the peer retries)")
        return response

    return answer


def peer_name(stream: trio.SocketStream) -> str:
    try:
        host, port, *_ = stream.socket.getpeername()
        return f"{host}:{port}"
    except (OSError, ValueError):
        return "?"


class PeerLink:
    """One connection to a quorum member, used for one request at a time."""

    def __init__(self, host: str, port: int, client_id: str, max_frame_bytes: int = MAX_FRAME_BYTES,
                 max_idle_ms: int = DEFAULT_MAX_IDLE_MS) -> None:  # fmt: skip
        self.host, self.port = host, port
        self.client_id = client_id
        self.max_frame_bytes = max_frame_bytes
        # A connection unused for half of connections.max.idle.ms is replaced
        # rather than used: the listener may be closing it as we send (Kafka's
        # clients close theirs before the broker does, for the same reason).
        self.reuse_s = max_idle_ms / 2000
        self._last_used = 0.0
        self._stream: trio.SocketStream | None = None
        self._decoder = FrameDecoder(max_frame_bytes)
        self._correlation = 0

    async def request(self, api_key: int, version: int, body: dict, timeout_s: float) -> dict:
        """Send one request and return the decoded response body. Any failure
        (no connection, a timeout, a bad frame) closes the connection and
        raises ConnectionError."""
        try:
            with trio.fail_after(timeout_s if math.isfinite(timeout_s) else 3600):
                if self._stream is not None and trio.current_time() - self._last_used > self.reuse_s:
                    await self.aclose()
                if self._stream is None:
                    self._stream = await trio.open_tcp_stream(self.host, self.port)
                    self._decoder = FrameDecoder(self.max_frame_bytes)
                self._correlation = (self._correlation + 1) & 0x7FFFFFFF
                header = RequestHeader(api_key, version, self._correlation, self.client_id)
                await self._stream.send_all(encode_frame(encode_request(header, body)))
                while (frame := self._decoder.next_frame()) is None:
                    data = await self._stream.receive_some(_RECEIVE_BYTES)
                    if not data:
                        raise ConnectionError("connection closed by the peer")
                    self._decoder.feed(data)
                correlation, answer = decode_response(api_key, version, frame)
                if correlation != self._correlation:
                    raise ProtocolError(f"correlation id {correlation}, expected {self._correlation}")
                self._last_used = trio.current_time()
                return answer
        except (OSError, trio.TooSlowError, trio.BrokenResourceError, ProtocolError, ValueError, ConnectionError) as exc:
            await self.aclose()
            raise ConnectionError(f"{self.host}:{self.port}: {exc or type(exc).__name__}") from None
        except BaseException:
            await self.aclose()  # cancelled mid-request: an answer is still owed on this stream
            raise

    async def aclose(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with trio.CancelScope(shield=True):
                await stream.aclose()
