"""Whole requests and responses (header + body, unframed): the entry points.

Brokers call `decode_request` on each frame and `encode_response` for the
answer; clients do the opposite. For an API or version without a table,
`decode_request` raises UnsupportedApi carrying the parsed header, so the
broker can still answer ApiVersions with UNSUPPORTED_VERSION.
"""

from __future__ import annotations

from . import codec
from .errors import LocalProtocolError, UnsupportedApi
from .headers import (
    RequestHeader,
    decode_request_header,
    decode_response_header,
    encode_request_header,
    encode_response_header,
)
from .messages import APIS
from .primitives import SegmentedBuffer
from .schema import Api


def _api(api_key: int, api_version: int) -> Api:
    api = APIS.get(api_key)
    if api is None or not api.request.is_valid(api_version):
        raise UnsupportedApi(api_key, api_version)
    return api


def encode_request(header: RequestHeader, body: dict) -> bytes:
    try:
        api = _api(header.api_key, header.api_version)
    except UnsupportedApi as exc:
        raise LocalProtocolError(str(exc)) from None
    out = bytearray()
    encode_request_header(out, header)
    codec.encode_into(out, api.request, header.api_version, body)
    return bytes(out)


def encode_request_frame(header: RequestHeader, body: dict) -> bytearray:
    """The request with its int32 size prefix, built in one buffer: a
    producer's megabyte of records is copied once, not three times."""
    try:
        api = _api(header.api_key, header.api_version)
    except UnsupportedApi as exc:
        raise LocalProtocolError(str(exc)) from None
    out = bytearray(4)
    encode_request_header(out, header)
    codec.encode_into(out, api.request, header.api_version, body)
    size = len(out) - 4
    if size > 0x7FFFFFFF:
        raise LocalProtocolError("frame payload above 2**31-1 bytes")
    out[:4] = size.to_bytes(4, "big")
    return out


def decode_request(data: bytes | memoryview) -> tuple[RequestHeader, dict]:
    buf = memoryview(data)
    header, pos = decode_request_header(buf)
    try:
        api = _api(header.api_key, header.api_version)
    except UnsupportedApi as exc:
        exc.header = header  # type: ignore[attr-defined]
        raise
    return header, codec.decode(api.request, header.api_version, buf[pos:])


def encode_response(api_key: int, api_version: int, correlation_id: int, body: dict) -> bytes:
    out = encode_response_segments(api_key, api_version, correlation_id, body)
    if out.deferred:
        raise LocalProtocolError("the response has deferred records: use encode_response_segments")
    return bytes(out)


def encode_response_segments(api_key: int, api_version: int, correlation_id: int, body: dict) -> SegmentedBuffer:
    """The response with its deferred ``records`` values left out (see
    SegmentedBuffer): a broker sends those straight from its files."""
    api = APIS.get(api_key)
    if api is None or not api.response.is_valid(api_version):
        raise LocalProtocolError(f"no response table for api_key={api_key} v{api_version}")
    out = SegmentedBuffer()
    encode_response_header(out, api_key, api_version, correlation_id)
    codec.encode_into(out, api.response, api_version, body)
    return out


def decode_response(api_key: int, api_version: int, data: bytes | memoryview) -> tuple[int, dict]:
    """Returns (correlation_id, body). The caller knows the key and version
    from the request it sent with that correlation id."""
    api = _api(api_key, api_version)
    buf = memoryview(data)
    correlation_id, pos = decode_response_header(buf, api_key, api_version)
    return correlation_id, codec.decode(api.response, api_version, buf[pos:])
