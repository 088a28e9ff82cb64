"""Request and response headers, and which header version an API version uses.

Rule (KIP-482): a request uses header v2 when its API version is
flexible, else v1; a response uses header v1 when flexible, else v0. Two
exceptions: ApiVersions responses always use v0, so a client that asked for
too new a version can read the error; ControlledShutdown v0 requests use
request header v0. The request header's client_id keeps its int16 length
even in v2.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from . import primitives as p
from .api_keys import ApiKey
from .messages import APIS

API_VERSIONS_KEY = ApiKey.API_VERSIONS
CONTROLLED_SHUTDOWN_KEY = ApiKey.CONTROLLED_SHUTDOWN

_read_client_id, _write_client_id = p.string_codec(compact=False, nullable=True)


class RequestHeader(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None = None


def _is_flexible(api_key: int, api_version: int) -> bool:
    api = APIS.get(api_key)
    # An API without a table: assume classic. Its body cannot be decoded
    # anyway; the header's fixed part and client_id read the same either way.
    return api is not None and api.request.is_flexible(api_version)


def request_header_version(api_key: int, api_version: int) -> int:
    if api_key == CONTROLLED_SHUTDOWN_KEY and api_version == 0:
        return 0
    return 2 if _is_flexible(api_key, api_version) else 1


# (api key, version) -> request header version, for every version in the tables.
_REQUEST_HEADER_VERSIONS = {
    (key, version): request_header_version(key, version)
    for key, api in APIS.items()
    for version in range(api.request.valid[0], api.request.valid[1] + 1)
}
_FIXED_HEADER = struct.Struct(">hhi")


def response_header_version(api_key: int, api_version: int) -> int:
    if api_key == API_VERSIONS_KEY:
        return 0
    return 1 if _is_flexible(api_key, api_version) else 0


def encode_request_header(out: bytearray, header: RequestHeader) -> None:
    version = request_header_version(header.api_key, header.api_version)
    p.write_int16(out, header.api_key)
    p.write_int16(out, header.api_version)
    p.write_int32(out, header.correlation_id)
    if version >= 1:
        _write_client_id(out, header.client_id)
    if version >= 2:
        p.write_tagged_fields(out, [])


def decode_request_header(buf: memoryview, pos: int = 0) -> tuple[RequestHeader, int]:
    """Read api key and version first, then the rest as that version needs."""
    if len(buf) - pos >= 8:  # every request on a broker's hot path: one unpack
        api_key, api_version, correlation_id = _FIXED_HEADER.unpack_from(buf, pos)
        pos += 8
    else:  # too short: the readers raise the protocol error
        api_key, pos = p.read_int16(buf, pos)
        api_version, pos = p.read_int16(buf, pos)
        correlation_id, pos = p.read_int32(buf, pos)
    version = _REQUEST_HEADER_VERSIONS.get((api_key, api_version))
    if version is None:
        version = request_header_version(api_key, api_version)
    client_id = None
    if version >= 1:
        client_id, pos = _read_client_id(buf, pos)
    if version >= 2:
        pos = p.read_tagged_fields(buf, pos, {}, {})
    return RequestHeader(api_key, api_version, correlation_id, client_id), pos


def encode_response_header(out: bytearray, api_key: int, api_version: int, correlation_id: int) -> None:
    p.write_int32(out, correlation_id)
    if response_header_version(api_key, api_version) >= 1:
        p.write_tagged_fields(out, [])


def decode_response_header(
    buf: memoryview, api_key: int, api_version: int, pos: int = 0
) -> tuple[int, int]:
    """Returns (correlation_id, position after the header)."""
    correlation_id, pos = p.read_int32(buf, pos)
    if response_header_version(api_key, api_version) >= 1:
        pos = p.read_tagged_fields(buf, pos, {}, {})
    return correlation_id, pos
