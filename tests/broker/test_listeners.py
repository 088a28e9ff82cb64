"""The client listener and the controller listener run one connection loop,
each with its own registry: ApiVersions advertises what the listener asked
serves, and bad input is handled alike on both. A one-voter broker in this
Trio run, with real sockets on loopback."""

from __future__ import annotations

import struct

import pytest
import trio

from riverlog.broker.config import BrokerConfig
from riverlog.broker.controller.wire import READ_VERSIONS
from riverlog.broker.server import Broker
from riverlog.client.protocol import FrameDecoder, encode_frame
from riverlog.client.protocol.api import decode_response, encode_request
from riverlog.client.protocol.headers import RequestHeader
from tests.integration.broker_process import free_ports

# What only the controller listener serves: BrokerRegistration, BrokerHeartbeat, AllocateProducerIds.
REGISTRATION_APIS = {62, 63, 67}
# Forwarded by brokers to the active controller: CreateTopics, DeleteTopics,
# AlterConfigs, CreatePartitions, IncrementalAlterConfigs, DescribeQuorum.
FORWARDED = {19, 20, 33, 37, 44, 55}


@pytest.fixture
async def broker(tmp_path, nursery):
    (controller_port,) = free_ports(1)
    config = BrokerConfig.from_properties({
        "node.id": "1", "listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "data"),
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "controller.listener": f"127.0.0.1:{controller_port}", "riverlog.initial.cluster": "true",
    })  # fmt: skip
    b = await nursery.start(Broker(config).serve)
    b.controller_port = controller_port
    return b


async def _api_versions(port: int) -> dict[int, tuple[int, int]]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(encode_frame(encode_request(RequestHeader(18, 3, 1, "t"), {})))
        decoder = FrameDecoder(1 << 20)
        with trio.fail_after(10):
            while (frame := decoder.next_frame()) is None:
                data = await stream.receive_some(65536)
                assert data, "closed before an answer"
                decoder.feed(data)
    _, body = decode_response(18, 3, frame)
    assert body["error_code"] == 0
    return {k["api_key"]: (k["min_version"], k["max_version"]) for k in body["api_keys"]}


async def test_each_listener_advertises_only_what_it_serves(broker):
    client = await _api_versions(broker.port)
    controller = await _api_versions(broker.controller_port)
    assert client == {s.api_key: (s.min_version, s.max_version) for s in broker.registry.values()}
    # The controller listener: the quorum's RPCs, registration, forwarded admin requests and ApiVersions.
    assert set(controller) == set(READ_VERSIONS) | REGISTRATION_APIS | FORWARDED | {18}
    for key, versions in READ_VERSIONS.items():
        assert controller[key] == versions
    for key in FORWARDED | {18}:
        assert controller[key] == client[key]  # served by the same handlers
    assert not REGISTRATION_APIS & set(client)
    assert 0 not in controller and 3 not in controller  # no Produce, no Metadata on the quorum's listener


BAD_INPUTS = {
    "negative size": struct.pack(">i", -5),
    "oversized frame": struct.pack(">i", 1 << 30),
    "unknown api key": encode_frame(struct.pack(">hhih", 9999, 0, 1, -1)),
    "unsupported version": encode_frame(struct.pack(">hhih", 1, 99, 1, -1)),  # Fetch v99: both serve Fetch
    "body that does not decode": encode_frame(struct.pack(">hhih", 18, 3, 1, -1) + b"\xff\xff\xff"),
    "an api only the other listener serves": encode_frame(struct.pack(">hhih", 0, 9, 1, -1)),  # Produce
}


async def _closed(stream: trio.SocketStream) -> bool:
    with trio.move_on_after(5):
        try:
            while await stream.receive_some(65536):
                pass  # (no answer is expected; read to the end)
            return True
        except trio.BrokenResourceError:
            return True
    return False


@pytest.mark.parametrize("listener", ["client", "controller"])
@pytest.mark.parametrize("name", list(BAD_INPUTS))
async def test_bad_input_closes_only_its_connection_on_either_listener(broker, listener, name):
    port = broker.port if listener == "client" else broker.controller_port
    bad = await trio.open_tcp_stream("127.0.0.1", port)
    data = BAD_INPUTS[name]
    if name == "an api only the other listener serves" and listener == "client":
        data = encode_frame(struct.pack(">hhih", 62, 0, 1, -1))  # BrokerRegistration
    await bad.send_all(data)
    assert await _closed(bad), f"{name}: the connection should be closed"
    await bad.aclose()
    assert (await _api_versions(port))[18] == (0, 3)  # the listener still serves


@pytest.mark.parametrize("listener", ["client", "controller"])
async def test_a_too_new_api_versions_gets_the_kip_511_reply_on_either_listener(broker, listener):
    """KIP-511: a v0 body with UNSUPPORTED_VERSION and our ApiVersions range,
    so the client retries with a version we speak; the connection stays."""
    port = broker.port if listener == "client" else broker.controller_port
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        decoder = FrameDecoder(1 << 20)
        answers = []
        await stream.send_all(encode_frame(encode_request(RequestHeader(18, 4, 9, "t"), {}))
                              + encode_frame(encode_request(RequestHeader(18, 3, 10, "t"), {})))  # fmt: skip
        with trio.fail_after(10):
            while len(answers) < 2:
                if (frame := decoder.next_frame()) is not None:
                    answers.append(frame)
                    continue
                data = await stream.receive_some(65536)
                assert data, "closed before both answers"
                decoder.feed(data)
    corr, body = decode_response(18, 0, answers[0])
    assert corr == 9 and body["error_code"] == 35  # UNSUPPORTED_VERSION
    assert body["api_keys"] == [{"api_key": 18, "min_version": 0, "max_version": 3}]
    corr, body = decode_response(18, 3, answers[1])
    assert corr == 10 and body["error_code"] == 0


@pytest.mark.parametrize("listener", ["client", "controller"])
async def test_requests_pipelined_before_a_malformed_frame_are_answered_then_the_connection_closed(broker, listener):
    """Answers made together are written together, but never lost: the
    requests ahead of a bad frame get theirs before the connection closes."""
    port = broker.port if listener == "client" else broker.controller_port
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    good = b"".join(encode_frame(encode_request(RequestHeader(18, 3, i, "t"), {})) for i in range(5))
    await stream.send_all(good + struct.pack(">i", -5))
    decoder = FrameDecoder(1 << 20)
    with trio.fail_after(10):
        while data := await stream.receive_some(65536):
            decoder.feed(data)
    answers = []
    while (frame := decoder.next_frame()) is not None:
        answers.append(decode_response(18, 3, frame)[0])
    assert answers == [0, 1, 2, 3, 4]
    await stream.aclose()
