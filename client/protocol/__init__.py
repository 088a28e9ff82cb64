"""Kafka wire protocol: primitives, message tables, codec, headers, framing.

Pure: no I/O. See api.py for the request/response entry points.
"""

from .api import decode_request, decode_response, encode_request, encode_response
from .api_keys import ApiKey
from .errors import (
    ErrorCode,
    FrameTooLarge,
    KafkaError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    UnsupportedApi,
    error_for_code,
)
from .framing import FrameDecoder, encode_frame
from .headers import RequestHeader

__all__ = [
    "ApiKey", "ErrorCode", "FrameDecoder", "FrameTooLarge", "KafkaError", "LocalProtocolError",
    "ProtocolError", "RemoteProtocolError", "RequestHeader", "UnsupportedApi",
    "decode_request", "decode_response", "encode_frame", "encode_request",
    "encode_response", "error_for_code",
]
