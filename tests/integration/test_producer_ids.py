"""Producer ids are unique across a cluster of real processes (KIP-730).

Idempotence keys a partition's deduplication on (producer id, epoch): two
producers given the same id by two brokers have one's batches taken for
retries of the other's, acknowledged and never appended. The ids come in
blocks the active controller allocates and records in the metadata log, so
they stay unique across brokers, a kill -9 of the active controller and a
restart of every node.

The clusters are test_cluster.py's: combined voters started as
``broker start`` processes, killed by PID afterwards.
"""

from __future__ import annotations

import socket
import struct
import time

from riverlog.client.protocol import ErrorCode, RequestHeader
from riverlog.client.protocol.api import decode_response, encode_request_frame

from .broker_process import read_exactly
from .test_cluster import consume, create_topics, leaders, metadata, new_cluster, wait_for  # noqa: F401

INIT_PRODUCER_ID = 22
RECORDS_PER_PRODUCER = 50


def idempotent_produce(bootstrap: str, topic: str, name: str, count: int) -> list[tuple[int, bytes, bytes]]:
    """``count`` records from one confluent-kafka idempotent producer bootstrapped on ``bootstrap``:
    (offset, key, value) of each acknowledged, after asserting none failed."""
    from confluent_kafka import Producer

    acked: list[tuple[int, bytes, bytes]] = []
    failed: list[str] = []

    def on_delivery(err, msg) -> None:
        if err is not None:
            failed.append(str(err))
        else:
            acked.append((msg.offset(), msg.key(), msg.value()))

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                         "message.timeout.ms": 30_000, "on_delivery": on_delivery})  # fmt: skip
    for i in range(count):
        producer.produce(topic, b"%s-value-%d" % (name.encode(), i), b"%s-%d" % (name.encode(), i), partition=0)
        producer.poll(0)
    assert producer.flush(40) == 0, f"{name}: records left undelivered"
    assert not failed, f"{name}: {failed[:3]}"
    return acked


def test_three_idempotent_producers_on_three_brokers_lose_no_acknowledged_record(new_cluster):
    """The issue's regression: before, every broker handed out ids from 0, two
    producers shared (id 0, epoch 0) and 50 to 100 of 150 acknowledged records
    were missing."""
    cluster = new_cluster()
    topic = "one-partition"
    assert create_topics(cluster.nodes[1].port, [topic], partitions=1) == {topic: 0}
    for node in cluster.nodes.values():
        wait_for(lambda: leaders(metadata(node.port), topic).get(0, -1) >= 0, 10, f"the topic on {node.node_id}")
    acked: list[tuple[int, bytes, bytes]] = []
    for node in cluster.nodes.values():
        acked += idempotent_produce(node.bootstrap, topic, f"p{node.node_id}", RECORDS_PER_PRODUCER)
    assert len(acked) == 3 * RECORDS_PER_PRODUCER
    assert len({offset for offset, _, _ in acked}) == len(acked), "two records acknowledged at one offset"
    got = consume(cluster.nodes[2].bootstrap, topic, 1, len(acked))
    assert sorted((offset, key, value) for _, offset, key, value in got) == sorted(acked)


class _Peer:
    """One connection to one broker, for many InitProducerId requests."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=35)
        self.correlation = 0

    def init_producer_id(self) -> dict:
        self.correlation += 1
        body = {"transactional_id": None, "transaction_timeout_ms": 60_000}
        self.sock.sendall(encode_request_frame(RequestHeader(INIT_PRODUCER_ID, 1, self.correlation, "pids"), body))
        (size,) = struct.unpack(">i", read_exactly(self.sock, 4))
        correlation, answer = decode_response(INIT_PRODUCER_ID, 1, read_exactly(self.sock, size))
        assert correlation == self.correlation
        return answer

    def close(self) -> None:
        self.sock.close()


def producer_ids(port: int, count: int, timeout_s: float = 30) -> list[int]:
    """``count`` producer ids from the broker on ``port``. COORDINATOR_LOAD_IN_PROGRESS
    (no block yet, or the next one on its way) is retried, as clients do; every
    id comes with epoch 0."""
    ids: list[int] = []
    deadline = time.monotonic() + timeout_s
    peer = _Peer(port)
    try:
        while len(ids) < count:
            assert time.monotonic() < deadline, f"only {len(ids)} of {count} producer ids within {timeout_s} s"
            answer = peer.init_producer_id()
            if answer["error_code"] == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
                time.sleep(0.02)
                continue
            assert answer["error_code"] == ErrorCode.NONE, ErrorCode(answer["error_code"]).name
            assert answer["producer_epoch"] == 0
            ids.append(answer["producer_id"])
    finally:
        peer.close()
    return ids


def test_producer_ids_are_unique_across_brokers_a_controller_failover_and_a_restart_of_every_node(new_cluster):
    cluster = new_cluster()
    handed_out: list[int] = []
    # More than a block (1000) from one broker: it moves on to its next block.
    handed_out += producer_ids(cluster.nodes[1].port, 1100)
    for node in cluster.nodes.values():
        handed_out += producer_ids(node.port, 20)
    assert len(set(handed_out)) == len(handed_out), "a producer id handed out twice before any failure"

    old = cluster.controller()
    cluster.nodes[old].kill()
    survivors = [n for n in cluster.nodes.values() if n.node_id != old]
    wait_for(lambda: cluster.controller() != old, 20, "a new active controller")
    for node in survivors:  # through their current blocks and into blocks from the new controller
        handed_out += producer_ids(node.port, 1001)
    cluster.nodes[old].launch().wait_ready()
    handed_out += producer_ids(cluster.nodes[old].port, 20)
    assert len(set(handed_out)) == len(handed_out), "a producer id handed out twice across the failover"

    assert set(cluster.stop().values()) == {0}
    cluster.start()
    for node in cluster.nodes.values():
        handed_out += producer_ids(node.port, 20)
    assert len(set(handed_out)) == len(handed_out), "a producer id handed out twice across a restart of every node"
