"""One broker serves 10,000 partitions under the open-file limit many machines
and containers start with (``ulimit -n 1024``): the soft limit is raised to
the hard one at start, and segment files are opened on demand through a
bounded cache, so a partition at rest holds no descriptor."""

from __future__ import annotations

import os
import resource
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .broker_process import BrokerProcess

TOPICS = 100
PARTITIONS = 100  # 100 x 100: 10,000 partitions
SOFT_LIMIT = 1024


def _sample() -> list[tuple[str, int]]:
    """Three partitions of every topic, spread over the partition numbers: 300 in all."""
    return [(f"t{t:03d}", (t * 37 + k * 33) % PARTITIONS) for t in range(TOPICS) for k in range(3)]


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _start(tmp_path, hard: int, port: int | None = None) -> BrokerProcess:
    broker = BrokerProcess(tmp_path / "data", port=port, extra=["--set", "riverlog.max.partitions=20000"])
    broker.preexec_fn = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT_LIMIT, hard))
    return broker.start(timeout=120)


def _create_topics(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [f"t{t:03d}" for t in range(TOPICS)]
    for i in range(0, TOPICS, 10):
        futures = admin.create_topics([NewTopic(n, num_partitions=PARTITIONS, replication_factor=1)
                                       for n in names[i : i + 10]], request_timeout=120)  # fmt: skip
        for future in futures.values():
            future.result(timeout=120)
    # The metadata lists every partition once the broker has acted on it.
    topics = admin.list_topics(timeout=60).topics
    assert sum(len(topics[n].partitions) for n in names) == TOPICS * PARTITIONS


def _produce(bootstrap: str, round_: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    errors = []
    for topic, p in _sample():
        producer.produce(topic, value=f"{topic}/{p}/{round_}".encode(), partition=p,
                         on_delivery=lambda err, msg: err and errors.append(err))  # fmt: skip
        producer.poll(0)
    assert producer.flush(120) == 0
    assert errors == []


def _consume(bootstrap: str, rounds: int) -> dict[tuple[str, int], list[bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fd-test", "enable.auto.commit": False})
    consumer.assign([TopicPartition(t, p, 0) for t, p in _sample()])
    got: dict[tuple[str, int], list[bytes]] = {}
    want = len(_sample()) * rounds
    count = 0
    deadline = time.monotonic() + 120
    while count < want and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        got.setdefault((msg.topic(), msg.partition()), []).append(msg.value())
        count += 1
    consumer.close()
    return got


def _expected(rounds: int) -> dict[tuple[str, int], list[bytes]]:
    return {(t, p): [f"{t}/{p}/{r}".encode() for r in range(rounds)] for t, p in _sample()}


@pytest.mark.parametrize("hard", ["high", "1024"])
def test_ten_thousand_partitions_under_a_soft_limit_of_1024(tmp_path, hard):
    # "high": the broker raises its soft limit to the hard one (and says so);
    # "1024": it cannot, and opening segment files on demand is what carries it.
    hard_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1] if hard == "high" else SOFT_LIMIT
    if hard == "high" and hard_limit != resource.RLIM_INFINITY and hard_limit <= SOFT_LIMIT:
        hard_limit = SOFT_LIMIT  # nothing to raise to here: the lazy case still runs below
    broker = _start(tmp_path, hard_limit)
    try:
        if hard == "high" and hard_limit > SOFT_LIMIT:
            assert f"raised the open-file limit (RLIMIT_NOFILE) from {SOFT_LIMIT}" in broker.log_path.read_text()
        _create_topics(broker.bootstrap)
        _produce(broker.bootstrap, 0)
        assert _consume(broker.bootstrap, 1) == _expected(1)
        assert broker.proc.poll() is None
        # At rest, a partition holds no descriptor: the count stays far below
        # one per partition (a bounded cache of open segment files, sockets,
        # the metadata log).
        assert _open_fds(broker.proc.pid) < SOFT_LIMIT
        if hard == "1024":
            # A restart opens all 10,000 logs again under the same limit.
            assert broker.stop(timeout=120) == 0
            broker = _start(tmp_path, hard_limit, port=broker.port)
            _produce(broker.bootstrap, 1)
            assert _consume(broker.bootstrap, 2) == _expected(2)
            assert _open_fds(broker.proc.pid) < SOFT_LIMIT
    finally:
        broker.close()
