"""A multi-broker cluster of real processes on loopback: it forms, spreads
partition leaders, routes librdkafka to them, survives a kill -9 of the
active controller, fences a killed broker and brings its partitions back,
keeps everything over a full stop and start, takes a broker-only node, and
keeps waiting (without crashing) for a quorum it cannot reach.

Every node is ``python -m riverlog.broker.cli broker start`` with its own data
directory under tmp_path, started by a fixture that stops it by PID. Short
broker timings (session 2 s, heartbeat 200 ms) keep the fencing tests quick;
the Raft timeouts stay at their defaults.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from riverlog.client.protocol import ErrorCode

from .broker_process import call, free_port

METADATA, CREATE_TOPICS = 3, 19
SESSION_TIMEOUT_MS = 2000
FAST = {"broker.session.timeout.ms": str(SESSION_TIMEOUT_MS), "broker.heartbeat.interval.ms": "200",
        "log.flush.interval.messages": "1"}  # fmt: skip
START_TIMEOUT_S = 60.0


# ------------------------------------------------------------------ the wire


def metadata(port: int, timeout_s: float = 10.0) -> dict:
    """This broker's Metadata (v6: all topics, no auto-creation), from its own image."""
    return call(port, METADATA, 6, {"topics": None, "allow_auto_topic_creation": False}, timeout_s)


def create_topics(port: int, names: list[str], partitions: int = 3, timeout_s: float = 35.0) -> dict[str, int]:
    """CreateTopics sent to this broker (it forwards to the active controller): name -> error code."""
    body = {"topics": [{"name": n, "num_partitions": partitions, "replication_factor": 1, "assignments": [],
                        "configs": []} for n in names], "timeout_ms": 30_000, "validate_only": False}  # fmt: skip
    answer = call(port, CREATE_TOPICS, 4, body, timeout_s)
    return {t["name"]: t["error_code"] for t in answer["topics"]}


def leaders(meta: dict, topic: str) -> dict[int, int]:
    """partition -> leader id (-1: none) of ``topic`` in a Metadata answer; {} if it is not there."""
    for t in meta["topics"]:
        if t["name"] == topic and t["error_code"] == 0:
            return {p["partition_index"]: p["leader_id"] for p in t["partitions"]}
    return {}


def wait_for(condition: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.05):
    """Poll until ``condition()`` is truthy (errors count as not yet); its value."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (OSError, ConnectionError) as e:
            value, last = None, e
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last error: {last!r})")


# ------------------------------------------------------------------ processes


class Node:
    """One ``broker start`` process: a combined voter (with a controller
    listener) or, if its id is not in the quorum, a broker-only observer."""

    def __init__(self, node_id: int, root: Path, voters: dict[int, int], settings: dict[str, str]) -> None:
        self.node_id = node_id
        self.port = free_port()
        self.controller_port = voters.get(node_id)
        self.voters = voters
        self.data_dir = root / f"node-{node_id}"
        self.log_path = root / f"node-{node_id}.log"
        self.settings = settings
        self.proc: subprocess.Popen | None = None
        self._log_start = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        quorum = ",".join(f"{n}@127.0.0.1:{p}" for n, p in sorted(self.voters.items()))
        argv = [sys.executable, "-m", "riverlog.broker.cli", "broker", "start", "--node-id", str(self.node_id),
                "--listen", self.bootstrap, "--controller-quorum", quorum,
                "--data-dir", str(self.data_dir)]  # fmt: skip
        if self.controller_port is not None:
            argv += ["--controller-listen", f"127.0.0.1:{self.controller_port}"]
        if not (self.data_dir / "__cluster_metadata-0").is_dir():
            argv += ["--initial-cluster"]  # a voter's first start: a new cluster
        for key, value in self.settings.items():
            argv += ["--set", f"{key}={value}"]
        return argv

    def launch(self) -> Node:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
        return self

    def log_text(self) -> str:
        """This run's log lines (a restarted node appends to the same file)."""
        with open(self.log_path, errors="replace") as f:
            f.seek(self._log_start)
            return f.read()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "ready on" in self.log_text():
                return
            if not self.running():
                break
            time.sleep(0.05)
        raise AssertionError(f"node {self.node_id} did not become ready:\n{self.log_text()[-4000:]}")

    def kill(self) -> None:
        """kill -9: no controlled shutdown, no flush."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> None:
        if self.running():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGTERM)

    def close(self) -> None:
        """Never leave the process behind: SIGKILL by PID if it still runs."""
        if self.running():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


class Cluster:
    """N combined voters (ids 1..N) started together: a voter only reports
    ready once a quorum elected a controller and registered it."""

    def __init__(self, root: Path, size: int = 3, settings: dict[str, str] | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.settings = FAST | (settings or {})
        self.voters = {n: free_port() for n in range(1, size + 1)}
        self.nodes = {n: Node(n, root, self.voters, self.settings) for n in self.voters}

    def start(self) -> Cluster:
        for node in self.nodes.values():
            node.launch()
        for node in self.nodes.values():
            node.wait_ready()
        return self

    def add_observer(self, node_id: int) -> Node:
        assert node_id not in self.voters
        node = self.nodes[node_id] = Node(node_id, self.root, self.voters, self.settings)
        return node

    def running(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.running()]

    def controller(self) -> int:
        """The active controller every running node agrees on (waits for agreement)."""

        def agreed() -> int | None:
            ids = {metadata(n.port)["controller_id"] for n in self.running()}
            return ids.pop() if len(ids) == 1 and -1 not in ids else None

        return wait_for(agreed, 20, "every running node to name the same controller")

    def stop(self, timeout_s: float = 30) -> dict[int, int]:
        """SIGTERM to every running node at once; their exit codes."""
        running = self.running()
        for node in running:
            node.terminate()
        codes = {}
        for node in running:
            assert node.proc is not None
            codes[node.node_id] = node.proc.wait(timeout=timeout_s)
        return codes

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()


@pytest.fixture
def new_cluster(tmp_path) -> Iterator[Callable[..., Cluster]]:
    """Starts clusters for one test; every node is killed by PID afterwards."""
    made: list[Cluster] = []

    def make(size: int = 3, settings: dict[str, str] | None = None) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster-{len(made)}", size, settings)
        made.append(cluster)
        return cluster.start()

    try:
        yield make
    finally:
        for cluster in made:
            cluster.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Iterator[Cluster]:
    """One 3-voter cluster for the tests that do not kill anything."""
    cluster = Cluster(tmp_path_factory.mktemp("shared-cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.close()


# ------------------------------------------------------------------ records through librdkafka


def produce(bootstrap: str, topic: str, records: list[tuple[int, bytes, bytes]]) -> list[tuple[int, int, bytes, bytes]]:
    """acks=all, one record at a time per partition as given: (partition, offset, key, value) of each acknowledged."""
    from confluent_kafka import Producer

    acked: list[tuple[int, int, bytes, bytes]] = []
    failed: list[str] = []

    def on_delivery(err, msg) -> None:
        if err is not None:
            failed.append(str(err))
        else:
            acked.append((msg.partition(), msg.offset(), msg.key(), msg.value()))

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "message.timeout.ms": 30_000, "on_delivery": on_delivery})  # fmt: skip
    for partition, key, value in records:
        producer.produce(topic, value, key, partition=partition)
        producer.poll(0)
    assert producer.flush(40) == 0, "records left undelivered"
    assert not failed, failed[:3]
    return acked


def consume(bootstrap: str, topic: str, partitions: int, expected: int,
            timeout_s: float = 30) -> list[tuple[int, int, bytes, bytes]]:  # fmt: skip
    """Every record of the topic's partitions from the beginning, by assign()."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{topic}-{time.monotonic_ns()}",
                         "enable.auto.commit": False, "enable.partition.eof": False})  # fmt: skip
    got: list[tuple[int, int, bytes, bytes]] = []
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + timeout_s
        while len(got) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            got.append((msg.partition(), msg.offset(), msg.key(), msg.value()))
    finally:
        consumer.close()
    return got


def payloads(partitions: int, per_partition: int, seed: int) -> list[tuple[int, bytes, bytes]]:
    """Records for explicit partitions; values of every size class, all byte values."""
    out = []
    for i in range(partitions * per_partition):
        size = (i * 131 + seed) % 3000
        value = bytes((i * 7 + j + seed) % 256 for j in range(size))
        out.append((i % partitions, b"k-%d-%d" % (seed, i), value))
    return out


# ------------------------------------------------------------------ one shared cluster


def test_three_voters_form_one_cluster_every_broker_lists_all_three_and_one_controller(shared):
    controller = shared.controller()
    for node in shared.nodes.values():
        meta = metadata(node.port)
        assert sorted(b["node_id"] for b in meta["brokers"]) == [1, 2, 3], node.node_id
        ports = {(b["node_id"], b["port"]) for b in meta["brokers"]}
        assert ports == {(n.node_id, n.port) for n in shared.nodes.values()}
        assert meta["controller_id"] == controller
    assert len({metadata(n.port)["cluster_id"] for n in shared.nodes.values()}) == 1


def test_topics_created_through_each_broker_exist_on_every_broker_with_leaders_spread(shared):
    names = {node_id: f"made-via-{node_id}" for node_id in shared.nodes}
    for node_id, name in names.items():
        assert create_topics(shared.nodes[node_id].port, [name], partitions=3) == {name: 0}
    for node in shared.nodes.values():
        for name in names.values():
            got = wait_for(lambda: leaders(metadata(node.port), name), 10, f"{name} on broker {node.node_id}")
            assert sorted(got) == [0, 1, 2]
            assert sorted(got.values()) == [1, 2, 3], f"{name}'s leaders are not spread: {got}"
    # Every broker answers the same layout from its own image.
    layouts = [{n: leaders(metadata(node.port), n) for n in names.values()} for node in shared.nodes.values()]
    assert layouts[0] == layouts[1] == layouts[2]
    # Creating it again, through another broker, is refused by the controller.
    again = create_topics(shared.nodes[2].port, [names[1]])
    assert again == {names[1]: ErrorCode.TOPIC_ALREADY_EXISTS}


def test_consumer_offsets_cannot_be_deleted_through_any_broker_and_others_can(shared):
    """DeleteTopics v5 (flexible, with messages) forwarded to the controller by the brokers that are not it."""
    first = shared.nodes[1].port
    found = wait_for(lambda: call(first, 10, 1, {"key": "g", "key_type": 0})["error_code"] == 0, 30,
                     "a coordinator (__consumer_offsets made)")  # fmt: skip
    assert found
    assert create_topics(first, ["deleted-via-a-broker"]) == {"deleted-via-a-broker": 0}
    for node in shared.nodes.values():
        answer = call(node.port, 20, 5, {"topic_names": ["__consumer_offsets"], "timeout_ms": 30_000})
        assert [(r["error_code"], r["error_message"]) for r in answer["responses"]] == [
            (ErrorCode.INVALID_TOPIC_EXCEPTION, "Cannot delete internal topic __consumer_offsets")], node.node_id
    other = next(n for n in shared.nodes.values() if n.node_id != shared.controller())
    answer = call(other.port, 20, 5, {"topic_names": ["deleted-via-a-broker"], "timeout_ms": 30_000})
    assert [(r["name"], r["error_code"]) for r in answer["responses"]] == [("deleted-via-a-broker", 0)]
    for node in shared.nodes.values():
        assert leaders(metadata(node.port), "__consumer_offsets")


def test_librdkafka_moves_records_across_partitions_led_by_different_brokers_byte_for_byte(shared):
    topic, partitions = "librdkafka-across", 6
    entry = shared.nodes[1]
    assert create_topics(entry.port, [topic], partitions=partitions) == {topic: 0}
    layout = wait_for(lambda: all(len(leaders(metadata(n.port), topic)) == partitions
                                  for n in shared.nodes.values()) and leaders(metadata(entry.port), topic),
                      10, "the topic on every broker")  # fmt: skip
    assert set(layout.values()) == {1, 2, 3}
    sent = payloads(partitions, 40, seed=3)
    acked = produce(entry.bootstrap, topic, sent)  # bootstrap on one broker only
    assert sorted((p, k, v) for p, _, k, v in acked) == sorted(sent)
    got = consume(entry.bootstrap, topic, partitions, len(sent))
    assert sorted(got) == sorted(acked)
    for p in range(partitions):  # each partition in its own order, offsets from 0 without gaps
        mine = sorted((o, k, v) for part, o, k, v in got if part == p)
        assert [o for o, _, _ in mine] == list(range(len(mine)))
        assert [(k, v) for _, k, v in mine] == [(k, v) for part, k, v in sent if part == p]


def test_a_request_for_a_partition_another_broker_leads_gets_not_leader_or_follower(shared):
    topic = "who-leads"
    assert create_topics(shared.nodes[1].port, [topic], partitions=3) == {topic: 0}
    layout = wait_for(lambda: all(len(leaders(metadata(n.port), topic)) == 3 for n in shared.nodes.values())
                      and leaders(metadata(shared.nodes[1].port), topic), 10, "the topic everywhere")  # fmt: skip
    for partition, leader in layout.items():
        for node in shared.nodes.values():
            body = {"replica_id": -1, "isolation_level": 0,
                    "topics": [{"name": topic, "partitions": [{"partition_index": partition, "current_leader_epoch": -1,
                                                                "timestamp": -1}]}]}  # fmt: skip
            answer = call(node.port, 2, 4, body)  # ListOffsets v4
            code = answer["topics"][0]["partitions"][0]["error_code"]
            expected = 0 if node.node_id == leader else ErrorCode.NOT_LEADER_OR_FOLLOWER
            assert code == expected, (partition, node.node_id)


def test_a_broker_only_observer_joins_registers_leads_partitions_of_a_new_topic_and_serves_them(shared):
    observer = shared.add_observer(4)
    assert observer.controller_port is None and "--controller-listen" not in observer.argv()
    try:
        observer.launch().wait_ready()
        assert "an observer of the metadata quorum" in observer.log_text()
        for node in shared.nodes.values():
            wait_for(lambda: 4 in {b["node_id"] for b in metadata(node.port)["brokers"]}, 10,
                     f"broker 4 in broker {node.node_id}'s Metadata")  # fmt: skip
        topic, partitions = "with-observer", 8
        assert create_topics(observer.port, [topic], partitions=partitions) == {topic: 0}  # forwarded by it
        layout = wait_for(lambda: leaders(metadata(observer.port), topic), 10, "the topic on the observer")
        assert set(layout.values()) == {1, 2, 3, 4}, layout
        mine = [p for p, leader in layout.items() if leader == 4]
        sent = payloads(partitions, 10, seed=4)
        acked = produce(observer.bootstrap, topic, sent)
        got = consume(shared.nodes[2].bootstrap, topic, partitions, len(sent))
        assert sorted(got) == sorted(acked) and len(got) == len(sent)
        assert any(p in mine for p, _, _, _ in got)
        # The quorum is still the three voters.
        assert metadata(observer.port)["controller_id"] in (1, 2, 3)
    finally:
        observer.terminate()
        if observer.proc is not None:
            observer.proc.wait(timeout=30)
        observer.close()
        del shared.nodes[4]
    for node in shared.nodes.values():  # gone from Metadata after its controlled shutdown
        wait_for(lambda: 4 not in {b["node_id"] for b in metadata(node.port)["brokers"]}, 10,
                 f"broker 4 gone from broker {node.node_id}'s Metadata")  # fmt: skip


def test_the_whole_cluster_stopped_and_started_again_keeps_topics_partitions_and_records(shared):
    """Runs last on the shared cluster: it stops every node (SIGTERM) and starts them again."""
    topic, partitions = "survives-restart", 6
    assert create_topics(shared.nodes[3].port, [topic], partitions=partitions) == {topic: 0}
    wait_for(lambda: all(len(leaders(metadata(n.port), topic)) == partitions for n in shared.nodes.values()), 10,
             "the topic everywhere")  # fmt: skip
    acked = produce(shared.nodes[3].bootstrap, topic, payloads(partitions, 30, seed=5))
    # Every topic's layout, leaders included (a partition of the observer's
    # topic whose only replica was broker 4 stays offline: -1 before and after).
    first = metadata(shared.nodes[1].port)
    before = {t["name"]: leaders(first, t["name"]) for t in first["topics"]}
    assert before[topic] and all(leader >= 0 for leader in before[topic].values())
    started = time.monotonic()
    assert shared.stop() == {1: 0, 2: 0, 3: 0}
    stop_s = time.monotonic() - started
    started = time.monotonic()
    shared.start()
    print(f"\nwhole cluster: stopped in {stop_s:.2f} s, started again in {time.monotonic() - started:.2f} s")
    controller = shared.controller()
    for node in shared.nodes.values():
        def same_as_before() -> dict | None:
            meta = metadata(node.port)
            layout = {t["name"]: leaders(meta, t["name"]) for t in meta["topics"]}
            return meta if len(meta["brokers"]) == 3 and layout == before else None

        meta = wait_for(same_as_before, 20, f"broker {node.node_id}: every broker back and every topic as before")
        assert meta["controller_id"] == controller
    got = consume(shared.nodes[1].bootstrap, topic, partitions, len(acked))
    assert sorted(got) == sorted(acked)


# ------------------------------------------------------------------ clusters of their own


FAILOVER_BOUND_S = 10.0


def test_after_a_kill_9_of_the_active_controller_a_new_one_is_elected_and_create_topics_works(new_cluster):
    cluster = new_cluster()
    old = cluster.controller()
    survivors = [n for n in cluster.nodes.values() if n.node_id != old]
    cluster.nodes[old].kill()
    killed_at = time.monotonic()

    def created() -> bool:
        try:
            return create_topics(survivors[0].port, ["after-failover"], timeout_s=5) == {"after-failover": 0}
        except OSError:
            return False

    wait_for(created, FAILOVER_BOUND_S, "CreateTopics through a survivor after the controller's kill -9",
             interval_s=0.02)  # fmt: skip
    failover_s = time.monotonic() - killed_at
    print(f"\ncontroller failover (kill -9 of node {old} until CreateTopics through node "
          f"{survivors[0].node_id} succeeded): {failover_s:.3f} s")  # fmt: skip
    new = cluster.controller()
    assert new != old and new in {n.node_id for n in survivors}
    for node in survivors:
        wait_for(lambda: leaders(metadata(node.port), "after-failover"), 10, "the topic on a survivor")
    # The new controller's sessions start afresh (as Kafka's), so the dead
    # node may still get partitions until its session expires; then it is fenced.
    for node in survivors:
        wait_for(lambda: old not in {b["node_id"] for b in metadata(node.port)["brokers"]},
                 SESSION_TIMEOUT_MS / 1000 + 8, f"the old controller fenced in {node.node_id}'s Metadata")  # fmt: skip


def test_a_killed_broker_is_fenced_its_partitions_go_offline_and_come_back_with_every_acknowledged_record(new_cluster):
    cluster = new_cluster()
    controller = cluster.controller()
    victim = next(n for n in cluster.nodes.values() if n.node_id != controller)
    survivor = cluster.nodes[controller]
    topic, partitions = "fenced-and-back", 6
    assert create_topics(survivor.port, [topic], partitions=partitions) == {topic: 0}
    layout = wait_for(lambda: all(len(leaders(metadata(n.port), topic)) == partitions
                                  for n in cluster.nodes.values()) and leaders(metadata(survivor.port), topic),
                      10, "the topic everywhere")  # fmt: skip
    theirs = sorted(p for p, leader in layout.items() if leader == victim.node_id)
    assert theirs, layout
    acked = produce(survivor.bootstrap, topic, payloads(partitions, 25, seed=6))

    victim.kill()
    killed_at = time.monotonic()
    for node in cluster.running():
        wait_for(lambda: victim.node_id not in {b["node_id"] for b in metadata(node.port)["brokers"]},
                 SESSION_TIMEOUT_MS / 1000 + 8, f"broker {victim.node_id} gone from {node.node_id}'s Metadata",
                 interval_s=0.02)  # fmt: skip
    fenced_s = time.monotonic() - killed_at
    print(f"\nbroker {victim.node_id} fenced {fenced_s:.3f} s after kill -9 "
          f"(broker.session.timeout.ms={SESSION_TIMEOUT_MS})")  # fmt: skip
    assert fenced_s >= SESSION_TIMEOUT_MS / 1000 * 0.5, "fenced before its session could have expired"
    for node in cluster.running():
        meta = metadata(node.port)
        parts = {p["partition_index"]: p for t in meta["topics"] if t["name"] == topic for p in t["partitions"]}
        for p in theirs:  # RF=1: nobody else has the data, so offline
            assert parts[p]["leader_id"] == -1 and parts[p]["error_code"] == ErrorCode.LEADER_NOT_AVAILABLE
        for p in set(layout) - set(theirs):
            assert parts[p]["leader_id"] == layout[p] and parts[p]["error_code"] == 0
    time.sleep(1)  # still offline a while later: no unclean election to another broker
    assert all(leaders(metadata(survivor.port), topic)[p] == -1 for p in theirs)
    described = subprocess.run([sys.executable, "-m", "riverlog.broker.cli", "cluster", "describe", "--bootstrap",
                                survivor.bootstrap], capture_output=True, text=True, timeout=60)  # fmt: skip
    states = {int(row.split()[0]): row.split()[-1] for row in described.stdout.splitlines()[3:6]}
    assert states[victim.node_id] == "fenced" and all(
        state == "active" for node, state in states.items() if node != victim.node_id), described.stdout  # fmt: skip

    victim.launch().wait_ready()
    for node in cluster.nodes.values():
        wait_for(lambda: all(leaders(metadata(node.port), topic).get(p) == victim.node_id for p in theirs), 20,
                 f"broker {victim.node_id}'s partitions led by it again, seen by {node.node_id}")  # fmt: skip
    got = consume(survivor.bootstrap, topic, partitions, len(acked))
    assert sorted(got) == sorted(acked)


def test_a_voter_that_cannot_reach_its_quorum_keeps_retrying_says_so_and_does_not_crash(tmp_path):
    voters = {1: free_port(), 2: free_port(), 3: free_port()}  # nobody listens on 2's and 3's ports
    node = Node(1, tmp_path, voters, FAST)
    try:
        node.launch()
        time.sleep(6)  # past the Raft election timeout and a registration attempt's timeout
        assert node.running(), f"exited {node.proc.returncode if node.proc else None}:\n{node.log_text()}"
        text = node.log_text()
        assert "Traceback" not in text
        assert "ready on" not in text
        assert "waiting to be registered and unfenced" in text, text
        assert "cannot register yet" in text and "retrying" in text, text
        with pytest.raises(OSError):  # the client listener is bound, but the broker does not serve yet
            metadata(node.port, timeout_s=1)
    finally:
        node.close()


def test_a_broker_restarted_at_once_after_kill_9_waits_for_its_old_session_and_rejoins(tmp_path):
    # Kafka's default session (9 s): a supervisor restarts the broker well within it.
    cluster = Cluster(tmp_path / "c", settings={"broker.session.timeout.ms": "9000",
                                                "broker.heartbeat.interval.ms": "2000"})
    try:
        cluster.start()
        controller = cluster.controller()
        victim = next(n for n in cluster.nodes.values() if n.node_id != controller)
        victim.kill()
        victim.launch()
        time.sleep(2)
        assert victim.running(), victim.log_text()[-3000:]
        victim.wait_ready(30)  # once the old registration's session has expired
        for node in cluster.nodes.values():
            wait_for(lambda: victim.node_id in {b["node_id"] for b in metadata(node.port)["brokers"]}, 20,
                     "the restarted broker listed")
    finally:
        cluster.close()


def test_a_voter_whose_data_was_wiped_refuses_to_rejoin_with_an_empty_log(tmp_path):
    cluster = Cluster(tmp_path / "c")
    try:
        cluster.start()
        victim = next(n for n in cluster.nodes.values() if n.node_id != cluster.controller())
        victim.kill()
        import shutil

        shutil.rmtree(victim.data_dir)
        argv = [a for a in victim.argv() if a != "--initial-cluster"]  # as an operator would restart it
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert "holds no metadata" in done.stderr and "--initial-cluster" in done.stderr
    finally:
        cluster.close()
