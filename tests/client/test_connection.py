"""The connection layer and the cluster cache, against a real broker process
and against scripted fake brokers for what ours never does (throttling,
garbage, silence)."""

from __future__ import annotations

import struct
from functools import partial

import pytest
import trio

from riverlog.client.cluster import Cluster
from riverlog.client.config import ClientConfig
from riverlog.client.connection import connect
from riverlog.client.errors import KafkaConnectionError, KafkaTimeoutError, UnsupportedVersionError
from riverlog.client.protocol import FrameDecoder, decode_request, encode_frame, encode_response
from riverlog.client.protocol.errors import UnknownTopicOrPartitionError
from tests.integration.broker_process import free_port

METADATA, API_VERSIONS, CREATE_TOPICS = 3, 18, 19


def _host_port(bootstrap: str) -> tuple[str, int]:
    host, port = bootstrap.rsplit(":", 1)
    return host, int(port)


async def test_negotiates_versions_and_pipelines_requests(bootstrap, nursery):
    conn = await connect(nursery, *_host_port(bootstrap))
    assert conn.api_versions[METADATA][1] >= 6
    assert conn.version_for(METADATA) == min(12, conn.api_versions[METADATA][1])
    results = []

    async def one(i):
        body = await conn.request(METADATA, {"topics": [], "allow_auto_topic_creation": False})
        results.append((i, body["brokers"][0]["port"]))

    async with trio.open_nursery() as n:
        for i in range(20):  # more than max_in_flight (5): the rest queue
            n.start_soon(one, i)
    assert sorted(results) == [(i, _host_port(bootstrap)[1]) for i in range(20)]
    await conn.aclose()
    assert conn.closed
    with pytest.raises(KafkaConnectionError):
        await conn.request(METADATA, {"topics": []})


async def test_connect_refused_is_a_clear_error(nursery):
    with pytest.raises(KafkaConnectionError, match="cannot connect to 127.0.0.1"):
        await connect(nursery, "127.0.0.1", free_port())


class FakeBroker:
    """Answers ApiVersions like a broker, then runs `script(header, body)`
    for every other request: it returns a response body, None (no answer),
    or raw bytes to send instead of a frame."""

    def __init__(self, script, api_versions=None):
        self.script = script
        self.api_versions = api_versions or {METADATA: (0, 12), API_VERSIONS: (0, 3)}
        self.requests: list = []

    async def serve(self, nursery) -> int:
        listeners = await nursery.start(partial(trio.serve_tcp, self.handle, 0, host="127.0.0.1"))
        return listeners[0].socket.getsockname()[1]

    async def handle(self, stream):
        try:
            await self._handle(stream)
        except trio.BrokenResourceError:
            pass  # the client hung up

    async def _handle(self, stream):
        decoder = FrameDecoder(1 << 20)
        while data := await stream.receive_some(65536):
            decoder.feed(data)
            while (frame := decoder.next_frame()) is not None:
                header, body = decode_request(frame)
                self.requests.append((header, body))
                if header.api_key == API_VERSIONS:
                    keys = [{"api_key": k, "min_version": lo, "max_version": hi}
                            for k, (lo, hi) in self.api_versions.items()]  # fmt: skip
                    answer = {"error_code": 0, "api_keys": keys, "throttle_time_ms": 0}
                else:
                    answer = await self.script(header, body)
                if answer is None:
                    continue
                if isinstance(answer, bytes):
                    await stream.send_all(answer)
                    continue
                await stream.send_all(
                    encode_frame(encode_response(header.api_key, header.api_version, header.correlation_id, answer))
                )


def _metadata_answer(port=1):
    return {"throttle_time_ms": 0, "brokers": [{"node_id": 1, "host": "127.0.0.1", "port": port}],
            "cluster_id": "c", "controller_id": 1, "topics": []}  # fmt: skip


async def test_throttle_time_delays_the_next_request(nursery, autojump_clock):
    async def script(header, body):
        return {**_metadata_answer(), "throttle_time_ms": 2000}

    fake = FakeBroker(script)
    port = await fake.serve(nursery)
    conn = await connect(nursery, "127.0.0.1", port)
    await conn.request(METADATA, {"topics": []})
    start = trio.current_time()
    await conn.request(METADATA, {"topics": []})
    assert trio.current_time() - start >= 2.0


async def test_timeout_closes_the_connection_and_fails_all_waiting(nursery, autojump_clock):
    async def script(header, body):
        return None  # never answers

    fake = FakeBroker(script)
    port = await fake.serve(nursery)
    conn = await connect(nursery, "127.0.0.1", port, request_timeout=5)
    errors = []

    async def one(timeout):
        try:
            await conn.request(METADATA, {"topics": []}, timeout=timeout)
        except (KafkaTimeoutError, KafkaConnectionError) as e:
            errors.append(type(e))

    async with trio.open_nursery() as n:
        n.start_soon(one, 1)
        n.start_soon(one, 100)
    assert sorted(e.__name__ for e in errors) == ["KafkaConnectionError", "KafkaTimeoutError"]
    assert conn.closed


@pytest.mark.parametrize(
    "garbage",
    [
        struct.pack(">i", -5),  # negative frame size
        struct.pack(">ii", 4, 12345),  # a correlation id nobody asked for
        struct.pack(">i", 6) + b"\x00\x00\x00\x01\xff\xff",  # truncated body
    ],
)
async def test_garbage_from_the_broker_fails_the_connection_cleanly(nursery, garbage):
    async def script(header, body):
        if header.correlation_id == 1:
            return garbage.replace(b"\x00\x00\x00\x01", struct.pack(">i", header.correlation_id), 1)
        return None

    fake = FakeBroker(script)
    port = await fake.serve(nursery)
    conn = await connect(nursery, "127.0.0.1", port)
    with pytest.raises(KafkaConnectionError):
        await conn.request(METADATA, {"topics": []})
    assert conn.closed


async def test_no_common_version_is_refused_before_sending(nursery):
    fake = FakeBroker(None, api_versions={API_VERSIONS: (0, 3), METADATA: (13, 13)})
    port = await fake.serve(nursery)
    conn = await connect(nursery, "127.0.0.1", port)
    with pytest.raises(UnsupportedVersionError, match="no common version of Metadata"):
        conn.version_for(METADATA)
    with pytest.raises(UnsupportedVersionError, match="does not support Produce"):
        conn.version_for(0)


async def test_cluster_caches_metadata_and_raises_topic_errors(bootstrap, nursery):
    cluster = Cluster(ClientConfig(bootstrap_servers=bootstrap), nursery)
    md = await cluster.refresh()
    assert [b.port for b in md.brokers.values()] == [_host_port(bootstrap)[1]]
    conn = await cluster.connection(next(iter(md.brokers)))
    body = {"topics": [{"name": "cached", "num_partitions": 3, "replication_factor": 1}], "timeout_ms": 5000}
    answer = await conn.request(CREATE_TOPICS, body)
    assert answer["topics"][0]["error_code"] == 0
    info = await cluster.topic("cached")
    assert sorted(info.partitions) == [0, 1, 2] and info.available_partitions == [0, 1, 2]
    assert cluster.metadata.leader_for("cached", 1) == conn.node_id
    with pytest.raises(UnknownTopicOrPartitionError):
        await cluster.topic("no-such-topic")
    await cluster.aclose()


async def test_cluster_unreachable_gives_a_clear_error_after_the_timeout(nursery, autojump_clock):
    port = free_port()
    cluster = Cluster(ClientConfig(bootstrap_servers=f"127.0.0.1:{port}", default_api_timeout_ms=3000), nursery)
    start = trio.current_time()
    with pytest.raises(KafkaConnectionError, match=f"no broker reachable at 127.0.0.1:{port} within 3.0 s"):
        await cluster.refresh()
    assert 3.0 <= trio.current_time() - start < 4.0


async def test_list_offsets_earliest_latest_and_unknown(bootstrap, nursery):
    from riverlog.client.offsets import list_offsets
    from riverlog.client.records import build_batch
    from riverlog.client.types import TopicPartition

    cluster = Cluster(ClientConfig(bootstrap_servers=bootstrap), nursery)
    await cluster.refresh()
    conn = await cluster.any_connection()
    body = {"topics": [{"name": "offs", "num_partitions": 2, "replication_factor": 1}], "timeout_ms": 5000}
    await conn.request(CREATE_TOPICS, body)
    batch = build_batch([(None, b"v", 1_000 + i, []) for i in range(3)])
    produce = {"acks": 1, "timeout_ms": 5000, "transactional_id": None,
               "topic_data": [{"name": "offs", "partition_data": [{"index": 1, "records": batch}]}]}  # fmt: skip
    await (await cluster.connection(cluster.metadata.leader_for("offs", 1) if cluster.metadata.topics.get("offs")
                                    else next(iter(cluster.metadata.brokers)))).request(0, produce)
    tp0, tp1 = TopicPartition("offs", 0), TopicPartition("offs", 1)
    got = await list_offsets(cluster, {tp0: "earliest", tp1: "latest"})
    assert (got[tp0].offset, got[tp1].offset) == (0, 3)
    by_time = await list_offsets(cluster, {tp1: 1_001})
    assert by_time[tp1].offset == 1
    with pytest.raises(UnknownTopicOrPartitionError):
        await list_offsets(cluster, {TopicPartition("nope", 0): "latest"})
    await cluster.aclose()
