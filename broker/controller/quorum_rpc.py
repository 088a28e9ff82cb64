"""The controller listener's transport: Kafka frames over TCP between the
members of the quorum, one request at a time per connection.

Kafka answers the requests on a connection in order, and a leader holds a
Fetch for up to fetch_max_wait_ms, so a driver keeps Fetch and the election
RPCs on separate connections (see raft_driver.py): a Vote never waits
behind a long-polled Fetch.

- ``serve_connection``: read frames (bounded by ``max_frame_bytes``), decode
  them, answer ApiVersions itself, hand the rest to ``handle``, write the
  answer. A frame it cannot decode or an API it does not serve closes the
  connection (there is no request to answer); nothing raises out of it.
- ``PeerLink``: one outbound connection, reconnected on demand.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping

import trio

from riverlog.broker.net.memory_pool import MemoryPool
from riverlog.client.protocol import (
    ApiKey,
    FrameDecoder,
    ProtocolError,
    RequestHeader,
    UnsupportedApi,
    decode_request,
    decode_response,
    encode_frame,
    encode_request,
    encode_response,
)

from .wire import READ_VERSIONS

log = logging.getLogger(__name__)

API_VERSIONS = ApiKey.API_VERSIONS
MAX_FRAME_BYTES = 16 * 1024 * 1024  # a fetch answer or a snapshot chunk (1 MiB each) with room to spare
DEFAULT_MAX_IDLE_MS = 600_000  # Kafka's connections.max.idle.ms
_RECEIVE_BYTES = 64 * 1024

Handler = Callable[[RequestHeader, dict], Awaitable[dict | None]]
Extra = Mapping[int, tuple[int, int, Handler]]  # api key -> (min version, max version, handler)


def api_versions_body(extra: Extra | None = None) -> dict:
    ranges = {API_VERSIONS: (0, 3), **READ_VERSIONS, **{k: (lo, hi) for k, (lo, hi, _) in (extra or {}).items()}}
    keys = [{"api_key": k, "min_version": lo, "max_version": hi} for k, (lo, hi) in sorted(ranges.items())]
    return {"error_code": 0, "api_keys": keys, "throttle_time_ms": 0}


async def serve_connection(stream: trio.abc.Stream, handle: Handler, max_frame_bytes: int = MAX_FRAME_BYTES,
                           extra: Extra | None = None, *, max_idle_ms: int = DEFAULT_MAX_IDLE_MS,
                           memory_pool: MemoryPool | None = None) -> None:  # fmt: skip
    """``handle`` serves the quorum's own RPCs; ``extra`` other APIs of the
    controller listener (broker registration, forwarded admin requests).

    The client listener's bounds apply here too: what is read is charged to
    ``memory_pool`` (queued.max.request.bytes) as it arrives and given back
    once its request is answered, reading nothing more while the pool has
    none free (memory_pool.py: a size prefix alone costs nothing); a
    connection is closed after ``max_idle_ms`` (connections.max.idle.ms)
    without a request, when a request has not arrived whole that long after
    its first byte (time held back by the pool not counted), or when the
    peer takes none of an answer for that long."""
    decoder = FrameDecoder(max_frame_bytes)
    peer = _peer_name(stream)
    idle_s = max_idle_ms / 1000
    held = 0  # of memory_pool: bytes read and not yet answered
    since = trio.current_time()  # the last answer, or the first byte of the frame being read
    try:
        async with stream:
            while True:
                with trio.move_on_at(since + idle_s) as waited:
                    data = await stream.receive_some(_RECEIVE_BYTES)
                if waited.cancelled_caught:
                    log.info("controller listener: closing the connection from %s: %s within "
                             "connections.max.idle.ms (%d ms)", peer,
                             "a request not received whole" if decoder.buffered_bytes else "no request",
                             max_idle_ms)  # fmt: skip
                    return
                if not data:
                    return
                if not decoder.buffered_bytes:
                    since = trio.current_time()  # a request begins: it has idle_s to arrive whole
                if memory_pool is not None:
                    if not memory_pool.try_reserve(len(data)):
                        await memory_pool.reserve(len(data), held)
                        since = trio.current_time()  # held back by the pool, not slow
                    held += len(data)  # only once granted: a cancel while waiting holds nothing
                decoder.feed(data)
                while (frame := decoder.next_frame()) is not None:
                    header, body = decode_request(frame)
                    if header.api_key == API_VERSIONS:
                        answer: dict | None = api_versions_body(extra)
                        version = min(header.api_version, 3)
                    elif extra and header.api_key in extra:
                        lo, hi, other = extra[header.api_key]
                        if not lo <= header.api_version <= hi:
                            raise UnsupportedApi(header.api_key, header.api_version)
                        answer, version = await other(header, body), header.api_version
                    else:
                        if header.api_key not in READ_VERSIONS:
                            raise UnsupportedApi(header.api_key, header.api_version)
                        answer, version = await handle(header, body), header.api_version
                    if answer is None:
                        return  # nothing to say (the core did not answer in time): the peer retries
                    response = encode_frame(encode_response(header.api_key, version, header.correlation_id, answer))
                    if not await _send_all(stream, response, idle_s):
                        log.info("controller listener: closing the connection from %s: an answer not taken "
                                 "within connections.max.idle.ms (%d ms)", peer, max_idle_ms)  # fmt: skip
                        return
                    if memory_pool is not None:
                        answered = held - decoder.buffered_bytes
                        memory_pool.release(answered)
                        held -= answered
                    since = trio.current_time()
    except UnsupportedApi as exc:
        log.warning("controller listener: %s from %s: closing", exc, peer)
    except (ProtocolError, ValueError) as exc:
        log.warning("controller listener: bad request from %s: %s: closing", peer, exc)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    except Exception:  # noqa: BLE001 - a fault in serving one request must not take the node down
        log.exception("controller listener: internal error serving %s: closing the connection", peer)
    finally:
        if memory_pool is not None and held:
            memory_pool.release(held)


async def _send_all(stream: trio.abc.Stream, data: bytes, stall_s: float) -> bool:
    """``data`` to the peer, which must take some of it every ``stall_s``
    (any bytes moved are activity, as on the client listener); False if it
    does not."""
    with memoryview(data) as view:
        for start in range(0, len(view), _RECEIVE_BYTES):
            with trio.move_on_after(stall_s):
                await stream.send_all(view[start : start + _RECEIVE_BYTES])
                continue
            return False
    return True


def _peer_name(stream: trio.abc.Stream) -> str:
    try:
        host, port, *_ = stream.socket.getpeername()  # type: ignore[attr-defined]
        return f"{host}:{port}"
    except (AttributeError, OSError, ValueError):
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
