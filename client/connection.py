"""One TCP connection to one broker: pipelined requests over Trio streams.

Requests are written in order under a send lock; the broker answers in the
order it received them (as Kafka's protocol guide promises), and each answer is
matched to its request by correlation id. At most ``max_in_flight`` requests
wait for answers at once. One reader task per connection decodes frames and
wakes the waiting caller.

Anything that leaves the byte stream in doubt (a send cut short by
cancellation, a request timeout, a malformed or unexpected frame) closes the
whole connection and fails every request on it with KafkaConnectionError or
KafkaTimeoutError, as the Java client does: the caller retries on a fresh
connection, and nothing after a broken frame is trusted.

On connect, ApiVersions fixes the broker's version ranges; `version_for`
then picks the highest version both sides speak. A broker's throttle_time_ms
(KIP-219: the broker answers at once and expects the client to wait) delays
this connection's next request by that long.
"""

from __future__ import annotations

import math
import struct

import trio

from riverlog.client.errors import KafkaConnectionError, KafkaTimeoutError, UnsupportedVersionError
from riverlog.client.protocol import RequestHeader, decode_response
from riverlog.client.protocol.api import encode_request_frame
from riverlog.client.protocol.api_keys import ApiKey
from riverlog.client.protocol.framing import read_frame_size
from riverlog.client.protocol.errors import ErrorCode, ProtocolError
from riverlog.client.protocol.messages import APIS

API_VERSIONS = ApiKey.API_VERSIONS
_CID = struct.Struct(">i")
_READ_AHEAD = 65536  # frames up to this size are cut from one read-ahead buffer


try:  # a large frame's buffer without zeroing it first: recv_into fills it all
    from riverlog.native._native_api import ffi as _ffi

    _uninit = _ffi.new_allocator(should_clear_after_alloc=False)

    def _frame_buffer(size: int):
        return _ffi.buffer(_uninit("char[]", size))  # keeps the memory alive as long as any view of it
except ImportError:  # no extension: a zeroed bytearray
    _frame_buffer = bytearray

# The highest version of each API this client uses. Fetch 13+ and Metadata
# by topic id name topics by id only; we address topics by name.
CLIENT_MAX_VERSION = {ApiKey.FETCH: 12}

_NETWORK_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


def _client_range(api_key: int) -> tuple[int, int]:
    api = APIS[api_key]
    versions = api.request.valid
    hi = min(versions[1], CLIENT_MAX_VERSION.get(api_key, versions[1]))
    return versions[0], hi


class _Pending:
    __slots__ = ("api_key", "version", "event", "result", "error")

    def __init__(self, api_key: int, version: int) -> None:
        self.api_key = api_key
        self.version = version
        self.event = trio.Event()
        self.result: dict | None = None
        self.error: BaseException | None = None


class BrokerConnection:
    """Use `connect()` to make one. Requests from many tasks may share it."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        host: str,
        port: int,
        *,
        client_id: str | None,
        max_in_flight: int,
        request_timeout: float,
        max_response_bytes: int,
    ) -> None:
        self.host = host
        self.port = port
        self.node_id: int | None = None  # set by the cluster once known
        self.client_id = client_id
        self.request_timeout = request_timeout
        self.api_versions: dict[int, tuple[int, int]] = {}
        self._stream = stream
        self._max_frame_bytes = max_response_bytes
        self._send_lock = trio.Lock()
        self._slots = trio.Semaphore(max_in_flight)
        self._pending: dict[int, _Pending] = {}
        self._next_cid = 0
        self._throttled_until = 0.0
        self._failure: BaseException | None = None
        self._reader_scope = trio.CancelScope()
        self._reader_done = trio.Event()

    def __repr__(self) -> str:
        return f"<BrokerConnection node={self.node_id} {self.host}:{self.port}>"

    @property
    def closed(self) -> bool:
        return self._failure is not None

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def version_for(self, api_key: int, min_version: int = 0, max_version: int | None = None) -> int:
        """The highest version of `api_key` that both we and the broker speak,
        within [min_version, max_version]."""
        lo, hi = _client_range(api_key)
        if max_version is not None:
            hi = min(hi, max_version)
        lo = max(lo, min_version)
        theirs = self.api_versions.get(api_key)
        if theirs is None:
            raise UnsupportedVersionError(f"broker {self.host}:{self.port} does not support {APIS[api_key].name}")
        version = min(hi, theirs[1])
        if version < max(lo, theirs[0]):
            raise UnsupportedVersionError(
                f"no common version of {APIS[api_key].name}: we speak v{lo}-{hi}, "
                f"broker {self.host}:{self.port} v{theirs[0]}-{theirs[1]}"
            )
        return version

    async def request(
        self,
        api_key: int,
        body: dict,
        *,
        version: int | None = None,
        timeout: float | None = None,
        expect_response: bool = True,
    ) -> dict | None:
        """Send one request and return the decoded response body (None when
        `expect_response` is false: Produce with acks=0)."""
        if self._failure is not None:
            raise self._failure_error()
        if version is None:
            version = self.version_for(api_key)
        timeout = self.request_timeout if timeout is None else timeout
        async with self._slots:
            if self._throttled_until > trio.current_time():
                await trio.sleep_until(self._throttled_until)
            if self._failure is not None:
                raise self._failure_error()
            cid = self._next_cid
            self._next_cid = (cid + 1) & 0x7FFFFFFF
            frame = encode_request_frame(RequestHeader(api_key, version, cid, self.client_id), body)
            pending = None
            if expect_response:
                pending = self._pending[cid] = _Pending(api_key, version)
            await self._send(frame)
            if pending is None:
                return None
            with trio.move_on_after(timeout) as scope:
                await pending.event.wait()
            if scope.cancelled_caught:
                error = KafkaTimeoutError(
                    f"{APIS[api_key].name} to {self.host}:{self.port} got no answer in {timeout:.1f} s"
                )
                self._fail(error)
                raise error
            if pending.error is not None:
                raise pending.error
            result = pending.result
            assert result is not None
            throttle = result.get("throttle_time_ms", 0)
            if throttle:
                self._throttled_until = max(self._throttled_until, trio.current_time() + throttle / 1000)
            return result

    async def _send(self, frame: bytes | bytearray) -> None:
        async with self._send_lock:
            try:
                await self._stream.send_all(frame)
            except trio.Cancelled:
                # Part of the frame may be on the wire: the stream is unusable.
                self._fail(KafkaConnectionError(f"send to {self.host}:{self.port} was cancelled mid-frame"))
                raise
            except _NETWORK_ERRORS as exc:
                error = KafkaConnectionError(f"connection to {self.host}:{self.port} lost: {exc}")
                self._fail(error)
                raise error from exc

    async def read_loop(self) -> None:
        """Run by `connect` in the caller's nursery until the connection ends."""
        try:
            with self._reader_scope:
                await self._read_frames()
        finally:
            if self._failure is None:  # cancelled from outside: shutting down
                self._fail(KafkaConnectionError(f"connection to {self.host}:{self.port} closed"))
            with trio.CancelScope(shield=True):
                await self._stream.aclose()
            self._reader_done.set()

    async def _read_frames(self) -> None:
        """Frames off the socket. Small ones are cut from a read-ahead buffer;
        a large one (a Fetch answer) gets its own buffer, filled straight from
        the socket with recv_into, so its bytes are copied by the kernel only."""
        sock = self._stream.socket  # type: ignore[attr-defined]
        scratch = bytearray(_READ_AHEAD)
        view = memoryview(scratch)
        start = end = 0  # unread bytes are scratch[start:end]
        try:
            while True:
                while end - start >= 4:
                    size = read_frame_size(scratch, start, self._max_frame_bytes)
                    if end - start - 4 >= size:
                        frame = bytes(view[start + 4 : start + 4 + size])
                        start += 4 + size
                        self._deliver(frame)
                    elif 4 + size > len(scratch):
                        big = _frame_buffer(size)
                        have = end - start - 4
                        big[:have] = view[start + 4 : end]
                        start = end = 0
                        await self._fill(sock, memoryview(big)[have:])
                        self._deliver(big)
                    else:
                        break
                if start:
                    scratch[: end - start] = view[start:end]
                    end -= start
                    start = 0
                n = await sock.recv_into(view[end:])
                if not n:
                    raise EOFError
                end += n
        except EOFError:
            self._fail(KafkaConnectionError(f"broker {self.host}:{self.port} closed the connection"))
        except OSError as exc:
            self._fail(KafkaConnectionError(f"connection to {self.host}:{self.port} lost: {exc}"))
        except ProtocolError as exc:
            self._fail(KafkaConnectionError(f"bad response from {self.host}:{self.port}: {exc}"))

    @staticmethod
    async def _fill(sock, view: memoryview) -> None:
        while view:
            n = await sock.recv_into(view)
            if not n:
                raise EOFError
            view = view[n:]

    def _deliver(self, frame: bytes | bytearray) -> None:
        if len(frame) < 4:
            raise ProtocolError(f"response frame of {len(frame)} bytes")
        (cid,) = _CID.unpack_from(frame)
        pending = self._pending.pop(cid, None)
        if pending is None:
            raise ProtocolError(f"response with unknown correlation id {cid}")
        try:
            try:
                _, pending.result = decode_response(pending.api_key, pending.version, frame)
            except ProtocolError:
                if pending.api_key != API_VERSIONS:
                    raise
                # A broker that does not know our ApiVersions version answers
                # UNSUPPORTED_VERSION in the v0 layout (KIP-511).
                _, pending.result = decode_response(API_VERSIONS, 0, frame)
        except ProtocolError as exc:
            pending.error = KafkaConnectionError(f"bad response from {self.host}:{self.port}: {exc}")
            pending.event.set()
            raise
        pending.event.set()

    def _failure_error(self) -> BaseException:
        failure = self._failure
        if isinstance(failure, KafkaTimeoutError):
            return KafkaConnectionError(f"connection to {self.host}:{self.port} was closed after a timeout")
        assert failure is not None
        return type(failure)(*failure.args)

    def _fail(self, error: BaseException) -> None:
        """Close the connection: fail every waiting request, stop the reader."""
        if self._failure is not None:
            return
        self._failure = error
        for pending in self._pending.values():
            pending.error = self._failure_error()
            pending.event.set()
        self._pending.clear()
        self._reader_scope.cancel()

    async def aclose(self) -> None:
        self._fail(KafkaConnectionError(f"connection to {self.host}:{self.port} closed"))
        await self._reader_done.wait()

    async def negotiate(self) -> None:
        """ApiVersions: newest version first; on UNSUPPORTED_VERSION the
        broker's (v0-format) answer says which version to fall back to."""
        version = _client_range(API_VERSIONS)[1]
        self.api_versions = {API_VERSIONS: (0, version)}
        body = {"client_software_name": "riverlog-python", "client_software_version": _client_version()}
        response = await self.request(API_VERSIONS, body, version=version)
        assert response is not None
        if response["error_code"] == ErrorCode.UNSUPPORTED_VERSION:
            theirs = {k["api_key"]: k["max_version"] for k in response["api_keys"]}
            version = min(theirs.get(API_VERSIONS, 0), version)
            response = await self.request(API_VERSIONS, body, version=version)
            assert response is not None
        if response["error_code"] != 0:
            raise UnsupportedVersionError(
                f"ApiVersions to {self.host}:{self.port} failed: {ErrorCode(response['error_code']).name}"
            )
        self.api_versions = {k["api_key"]: (k["min_version"], k["max_version"]) for k in response["api_keys"]}


def _client_version() -> str:
    try:
        from importlib.metadata import version

        return version("riverlog")
    except Exception:  # noqa: BLE001 - an uninstalled checkout still connects
        return "0"


async def connect(
    nursery: trio.Nursery,
    host: str,
    port: int,
    *,
    client_id: str | None = "riverlog",
    connect_timeout: float = 10.0,
    request_timeout: float = 30.0,
    max_in_flight: int = 5,
    max_response_bytes: int = 200 * 1024 * 1024,
) -> BrokerConnection:
    """Open a connection, start its reader in `nursery`, negotiate versions.
    Raises KafkaConnectionError (unreachable) or KafkaTimeoutError."""
    try:
        with trio.fail_after(connect_timeout):
            stream = await trio.open_tcp_stream(host, port)
    except trio.TooSlowError:
        raise KafkaTimeoutError(f"connecting to {host}:{port} took over {connect_timeout:.1f} s") from None
    except OSError as exc:
        raise KafkaConnectionError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
    conn = BrokerConnection(
        stream, host, port,
        client_id=client_id, max_in_flight=max_in_flight,
        request_timeout=request_timeout, max_response_bytes=max_response_bytes,
    )  # fmt: skip
    nursery.start_soon(conn.read_loop)
    try:
        await conn.negotiate()
    except BaseException:
        conn._fail(KafkaConnectionError(f"connection to {host}:{port} failed during ApiVersions"))
        raise
    return conn


def jittered_backoff(base_ms: int, max_ms: int, attempts: int) -> float:
    """Exponential backoff in seconds with ±20% jitter, as the Java client."""
    import random

    if attempts <= 0:
        return 0.0
    exp = min(base_ms * math.pow(2, attempts - 1), max_ms)
    return exp * random.uniform(0.8, 1.2) / 1000
