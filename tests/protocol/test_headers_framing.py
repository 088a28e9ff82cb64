"""Header versions, whole requests/responses, and the frame decoder."""

from __future__ import annotations

import pytest
from kafka.protocol.metadata import ApiVersionsRequest

from riverlog.client.protocol import (
    FrameDecoder,
    FrameTooLarge,
    ProtocolError,
    RequestHeader,
    UnsupportedApi,
    decode_request,
    decode_response,
    encode_frame,
    encode_request,
    encode_response,
)
from riverlog.client.protocol.headers import request_header_version, response_header_version


def test_flexible_versions_use_request_header_v2_and_response_header_v1():
    assert request_header_version(3, 8) == 1 and request_header_version(3, 9) == 2
    assert response_header_version(3, 8) == 0 and response_header_version(3, 9) == 1
    assert request_header_version(1, 12) == 2 and response_header_version(1, 11) == 0


def test_api_versions_response_always_uses_header_v0():
    assert request_header_version(18, 3) == 2
    assert all(response_header_version(18, v) == 0 for v in range(5))


def test_controlled_shutdown_v0_uses_request_header_v0():
    assert request_header_version(7, 0) == 0


def test_request_round_trips_with_header():
    header = RequestHeader(18, 3, 42, "riverlog")
    body = {"client_software_name": "rl", "client_software_version": "0.1"}
    got_header, got_body = decode_request(encode_request(header, body))
    assert got_header == header
    assert got_body == body


def test_response_round_trips_with_header():
    raw = encode_response(3, 9, 7, {"brokers": [{"node_id": 1, "host": "h", "port": 9092}]})
    corr, body = decode_response(3, 9, raw)
    assert corr == 7 and body["brokers"][0]["host"] == "h" and body["brokers"][0]["rack"] is None


def test_kafka_python_api_versions_v3_probe_is_parsed():
    req = ApiVersionsRequest[3](client_software_name="kp", client_software_version="3")
    req.with_header(correlation_id=5, client_id="cli")
    header, body = decode_request(bytes(req.encode(header=True)))
    assert header == RequestHeader(18, 3, 5, "cli")
    assert body["client_software_name"] == "kp"


def test_unsupported_version_keeps_the_header_for_the_error_reply():
    raw = encode_request(RequestHeader(18, 3, 9, "c"), {})
    raw = raw[:2] + b"\x00\x63" + raw[4:]  # version 99
    with pytest.raises(UnsupportedApi) as info:
        decode_request(raw)
    assert info.value.header.correlation_id == 9 and info.value.api_version == 99


def test_frames_reassemble_from_every_split_point():
    frames = [b"hello", b"", b"x" * 300]
    wire = b"".join(encode_frame(f) for f in frames)
    for cut in range(len(wire) + 1):
        dec = FrameDecoder(1024)
        got = []
        for part in (wire[:cut], wire[cut:]):
            dec.feed(part)
            while (frame := dec.next_frame()) is not None:
                got.append(frame)
        assert got == frames, cut


def test_frames_reassemble_byte_by_byte():
    wire = encode_frame(b"abc") + encode_frame(b"defg")
    dec, got = FrameDecoder(16), []
    for i in range(len(wire)):
        dec.feed(wire[i : i + 1])
        while (frame := dec.next_frame()) is not None:
            got.append(frame)
    assert got == [b"abc", b"defg"]
    assert dec.buffered_bytes == 0


def test_oversize_length_prefix_is_refused_before_the_body():
    dec = FrameDecoder(100 * 1024 * 1024)
    with pytest.raises(FrameTooLarge):
        dec.feed(b"\x7f\xff\xff\xff")  # 2 GiB


def test_negative_length_prefix_is_refused_at_once():
    dec = FrameDecoder(1024)
    with pytest.raises(ProtocolError):
        dec.feed(b"\xff\xff\xff\xfe")


def test_frame_at_exactly_the_maximum_is_accepted():
    dec = FrameDecoder(4)
    dec.feed(encode_frame(b"abcd"))
    assert dec.next_frame() == b"abcd"
