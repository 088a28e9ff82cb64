"""Consumer groups against a real riverlog broker process: membership and
rebalances as confluent-kafka and kafka-python see them, no record lost or
processed twice across a rebalance, committed offsets across restarts, a
bounded __consumer_offsets, and the admin view of groups."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer
from kafka import TopicPartition as KTopicPartition

from .broker_process import BrokerProcess

# Members that are killed have short sessions, so the tests see them expire.
SESSION_TIMEOUT_MS = 4000
HEARTBEAT_INTERVAL_MS = 300
# Every other member has Kafka's default session.timeout.ms: a loaded machine
# can stall a client or the broker for a second or two, and a member stalled
# out of a short session is removed (and cannot commit what it processed),
# which is not what the tests that keep it are about.
KAFKA_SESSION_TIMEOUT_MS = 45_000
# No initial rebalance delay, and session timeouts short enough for tests.
def group_settings(offsets_partitions: int = 4) -> list[str]:
    # Each key once: the CLI refuses a --set key given twice.
    return [
        "--set", "group.initial.rebalance.delay.ms=0",
        "--set", "group.min.session.timeout.ms=500",
        "--set", f"offsets.topic.num.partitions={offsets_partitions}",
    ]  # fmt: skip


GROUP_SETTINGS = group_settings()


@pytest.fixture
def group_broker(tmp_path):
    b = BrokerProcess(tmp_path / "data", extra=GROUP_SETTINGS).start()
    yield b
    b.close()


def wait_until(condition, timeout_s: float, what: str) -> float:
    """Poll ``condition`` until true; the seconds it took. Fails with ``what`` on timeout."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def removals(broker: BrokerProcess, group: str) -> list[str]:
    """Why the broker removed members of `group`, in order (from its log)."""
    pattern = re.compile(rf"removing member \S+ from group {re.escape(group)} in state \S+: (.*)$")
    return [m.group(1) for line in broker.log_path.read_text().splitlines() if (m := pattern.search(line))]


SESSION_EXPIRED = f"no heartbeat within its session timeout ({SESSION_TIMEOUT_MS} ms)"
LEFT = "left the group (LeaveGroup)"


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)]).values():
        future.result(timeout=30)


def member_conf(bootstrap: str, group: str, **extra) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "session.timeout.ms": KAFKA_SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **extra,
    }


def is_partition_of_all(assignments: list[frozenset[int]], partitions: int) -> bool:
    """Every partition assigned exactly once across the members."""
    flat = [p for a in assignments for p in a]
    return sorted(flat) == list(range(partitions))


def is_balanced(assignments: list[frozenset[int]], partitions: int) -> bool:
    return is_partition_of_all(assignments, partitions) and {len(a) for a in assignments} == {
        partitions // len(assignments)
    }


class ConfluentMember(threading.Thread):
    """A confluent-kafka group member polling in its own thread; ``assigned``
    is its latest ``assignment()``. ``stop()`` closes it (a LeaveGroup)."""

    def __init__(self, conf: dict, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(conf)
        self.topic = topic
        self.assigned: frozenset[int] = frozenset()
        self._halt = threading.Event()
        self.start()

    def run(self) -> None:
        self.consumer.subscribe([self.topic])
        while not self._halt.is_set():
            msg = self.consumer.poll(0.05)
            assert msg is None or msg.error() is None, msg.error()
            self.assigned = frozenset(tp.partition for tp in self.consumer.assignment())
        self.consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)
        assert not self.is_alive()


# A member in its own process, so that it can be killed without a LeaveGroup;
# it prints its assignment after every poll.
_MEMBER_SCRIPT = """
import json, sys
from confluent_kafka import Consumer
consumer = Consumer(json.loads(sys.argv[1]))
consumer.subscribe([sys.argv[2]])
while True:
    consumer.poll(0.05)
    print(json.dumps(sorted(tp.partition for tp in consumer.assignment())), flush=True)
"""


class MemberProcess:
    def __init__(self, conf: dict, topic: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MEMBER_SCRIPT, json.dumps(conf), topic],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.assigned: frozenset[int] = frozenset()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.assigned = frozenset(json.loads(line))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def test_confluent_members_share_partitions_and_take_over_after_leave_and_crash(group_broker):
    create_topic(group_broker.bootstrap, "shared", 6)
    conf = member_conf(group_broker.bootstrap, "g-membership")
    a = ConfluentMember(conf, "shared")
    b = ConfluentMember(conf, "shared")
    crashing = MemberProcess({**conf, "session.timeout.ms": SESSION_TIMEOUT_MS}, "shared")
    c = None
    try:
        wait_until(lambda: is_balanced([a.assigned, b.assigned, crashing.assigned], 6), 20,
                   "three members with two partitions each")  # fmt: skip

        # A member that leaves (LeaveGroup) is replaced at once, not after its
        # session timeout: the broker removed it for its LeaveGroup, and the
        # others took over well within its session.
        start = time.monotonic()
        a.stop()
        wait_until(lambda: is_balanced([b.assigned, crashing.assigned], 6), 20, "two members after a leave")
        assert time.monotonic() - start < KAFKA_SESSION_TIMEOUT_MS / 1000
        assert removals(group_broker, "g-membership") == [LEFT]

        # A member that dies silently is removed when its session times out.
        start = time.monotonic()
        crashing.kill()
        wait_until(lambda: b.assigned == frozenset(range(6)), 15, "the survivor owning every partition")
        elapsed = time.monotonic() - start
        assert removals(group_broker, "g-membership") == [LEFT, SESSION_EXPIRED]
        # Its last heartbeat was at most one interval before the kill, or a
        # second more if the machine held it back.
        assert elapsed >= (SESSION_TIMEOUT_MS - HEARTBEAT_INTERVAL_MS) / 1000 - 1, elapsed

        # A new member gets its share.
        c = ConfluentMember(conf, "shared")
        wait_until(lambda: is_balanced([b.assigned, c.assigned], 6), 10, "a new member taking three partitions")
    finally:
        crashing.kill()
        for m in (a, b, c):
            if m is not None and m.is_alive():
                m.stop()


class KafkaPythonMember(threading.Thread, ConsumerRebalanceListener):
    """A kafka-python group member polling in its own thread; a rebalance
    listener keeps ``assigned`` current while ``poll()`` blocks.

    Long polls on purpose: kafka-python 3.0.12 can lose a member when
    ``poll()`` times out while its JoinGroup/SyncGroup is in flight (the
    SyncGroup answer arrives, but the member never heartbeats or rejoins
    again, and its session expires; its issue #2610 was the 2.x form of it).
    With ``poll(timeout_ms=50)`` about one run in fifteen lost a member so;
    with ``timeout_ms=5``, one in two. A join here takes well under a second.
    """

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        threading.Thread.__init__(self, daemon=True)
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, fetch_max_wait_ms=100,
            session_timeout_ms=KAFKA_SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        )  # fmt: skip
        self.consumer.subscribe([topic], listener=self)
        self.assigned: frozenset[int] = frozenset()
        self.halt = threading.Event()
        self.start()

    def on_partitions_revoked(self, revoked) -> None:
        self.assigned = frozenset()

    def on_partitions_assigned(self, assigned) -> None:
        self.assigned = frozenset(tp.partition for tp in assigned)

    def run(self) -> None:
        while not self.halt.is_set():
            self.consumer.poll(timeout_ms=2000)
        self.consumer.close()  # sends LeaveGroup


def stop_all(members: list[KafkaPythonMember]) -> None:
    for m in members:
        m.halt.set()
    for m in members:
        m.join(timeout=30)
        assert not m.is_alive()


# A kafka-python member in its own process (killed without a LeaveGroup);
# it prints its assignment whenever it changes. Long polls: see KafkaPythonMember.
_KAFKA_PYTHON_MEMBER_SCRIPT = """
import json, sys
from kafka import ConsumerRebalanceListener, KafkaConsumer
bootstrap, group, topic, session, heartbeat = sys.argv[1:6]
class Listener(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):
        print("[]", flush=True)
    def on_partitions_assigned(self, assigned):
        print(json.dumps(sorted(tp.partition for tp in assigned)), flush=True)
consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                         fetch_max_wait_ms=100, session_timeout_ms=int(session),
                         heartbeat_interval_ms=int(heartbeat))
consumer.subscribe([topic], listener=Listener())
while True:
    consumer.poll(timeout_ms=2000)
"""


class KafkaPythonProcess(MemberProcess):
    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _KAFKA_PYTHON_MEMBER_SCRIPT, bootstrap, group, topic,
             str(SESSION_TIMEOUT_MS), str(HEARTBEAT_INTERVAL_MS)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.assigned = frozenset()
        threading.Thread(target=self._read, daemon=True).start()


def test_kafka_python_members_share_partitions_and_take_over_after_leave_and_crash(group_broker):
    bootstrap = group_broker.bootstrap
    create_topic(bootstrap, "shared", 6)
    members = [KafkaPythonMember(bootstrap, "g-kafka-python", "shared") for _ in range(2)]
    crashing = KafkaPythonProcess(bootstrap, "g-kafka-python", "shared")
    try:
        wait_until(lambda: is_balanced([m.assigned for m in members] + [crashing.assigned], 6), 30,
                   "three members with two each")  # fmt: skip
        stop_all([members.pop()])  # returns once close() has sent the LeaveGroup
        took = wait_until(lambda: is_balanced([members[0].assigned, crashing.assigned], 6), 20,
                          "two members after a leave")  # fmt: skip
        assert took < KAFKA_SESSION_TIMEOUT_MS / 1000
        assert removals(group_broker, "g-kafka-python") == [LEFT]

        crashing.kill()  # no LeaveGroup: the session timeout removes it
        wait_until(lambda: members[0].assigned == frozenset(range(6)), 15, "the survivor owning every partition")
        assert removals(group_broker, "g-kafka-python") == [LEFT, SESSION_EXPIRED]

        members.append(KafkaPythonMember(bootstrap, "g-kafka-python", "shared"))
        wait_until(lambda: is_balanced([m.assigned for m in members], 6), 15, "a new member taking three")
    finally:
        crashing.kill()
        stop_all(members)


class Processor(threading.Thread):
    """A member that processes batches and commits them synchronously before the next poll.

    Rebalances are eager (range assignor): on a revoke the client drops what it
    prefetched and the next owner starts at the last commit, so a record is
    processed twice only if a batch is processed and its commit then fails.
    With librdkafka that cannot happen in a clean rebalance:

    - librdkafka does not rejoin until the application has served the revoke
      inside ``consume()`` (the Python client always installs a rebalance
      callback). A batch returned before the revoke is therefore committed
      before this member's JoinGroup is even sent, while the group waits in
      PreparingRebalance for it, and a commit with the current generation is
      accepted then (Kafka's rule).
    - a batch never mixes generations: revoking bumps the partition's fetch
      version, and the barrier op that comes with it purges the messages of
      the older version already gathered into the batch
      (``rd_kafka_purge_outdated_messages``), so ``consume()`` hands out no
      record of a partition it no longer owns.

    So the test asserts exactly-once processing and that every commit succeeded
    (its members have Kafka's default session: none is stalled out of the group).
    """

    def __init__(self, conf: dict, topic: str, processed: list, lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(conf)
        self.topic = topic
        self.processed = processed
        self.lock = lock
        self.count = 0
        self.revocations = 0
        self.commit_errors: list = []
        self._halt = threading.Event()
        self.start()

    def _revoked(self, consumer, partitions) -> None:
        self.revocations += 1

    def run(self) -> None:
        self.consumer.subscribe([self.topic], on_revoke=self._revoked)
        while not self._halt.is_set():
            batch = self.consumer.consume(num_messages=10, timeout=0.05)
            if not batch:
                continue
            next_offsets: dict[int, int] = {}
            for msg in batch:
                assert msg.error() is None, msg.error()
                next_offsets[msg.partition()] = msg.offset() + 1
            time.sleep(0.015)  # the processing
            with self.lock:
                self.processed.extend(msg.value() for msg in batch)
            self.count += len(batch)
            try:
                result = self.consumer.commit(
                    offsets=[TopicPartition(self.topic, p, o) for p, o in next_offsets.items()], asynchronous=False
                )
                self.commit_errors.extend(tp.error for tp in result if tp.error is not None)
            except KafkaException as exc:
                self.commit_errors.append(exc)
        self.consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)
        assert not self.is_alive()


def test_no_record_is_lost_or_processed_twice_across_a_rebalance(group_broker):
    create_topic(group_broker.bootstrap, "work", 6)
    producer = Producer({"bootstrap.servers": group_broker.bootstrap, "linger.ms": 5})
    produced: list[bytes] = []

    def produce(n: int) -> None:
        for _ in range(n):
            i = len(produced)
            producer.produce("work", key=b"k%d" % (i % 101), value=b"v%d" % i)
            produced.append(b"v%d" % i)
        assert producer.flush(30) == 0

    produce(3000)
    conf = member_conf(group_broker.bootstrap, "g-work")
    processed: list[bytes] = []
    lock = threading.Lock()
    workers = [Processor(conf, "work", processed, lock) for _ in range(2)]
    check = Consumer(conf)  # reads the group's commits; never joins
    partitions = [TopicPartition("work", p) for p in range(6)]
    try:
        wait_until(lambda: len(processed) >= len(produced) // 4, 60, "a quarter of the records")
        workers.append(Processor(conf, "work", processed, lock))

        # Work keeps arriving until the third member has processed some of it:
        # the first two are busy while the group rebalances, however long the
        # join takes on a loaded machine.
        def third_member_working() -> bool:
            if len(produced) - len(processed) < 1000:
                produce(1000)
            return workers[2].count > 0

        wait_until(third_member_working, 60, "the third member processing records")
        wait_until(lambda: len(set(processed)) == len(produced), 60, "every record processed")

        # Once every partition's commit is its end, no member can be handed a
        # record again: whatever was processed twice is in `processed` now.
        ends = [check.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
        wait_until(lambda: [tp.offset for tp in check.committed(partitions, timeout=10)] == ends, 60,
                   "the group's commits to reach the end of every partition")  # fmt: skip
    finally:
        for w in workers:
            w.stop()
    assert [w.commit_errors for w in workers] == [[], [], []]
    assert workers[0].revocations >= 2 and workers[1].revocations >= 2  # the midway rebalance happened
    assert set(processed) == set(produced)
    assert len(processed) == len(produced), f"{len(processed) - len(produced)} records processed twice"

    # What the group committed is still the end of every partition.
    committed = check.committed(partitions, timeout=10)
    check.close()
    assert [tp.offset for tp in committed] == ends


@pytest.mark.parametrize("how", ["graceful", "kill -9"])
def test_committed_offsets_survive_a_broker_restart(tmp_path, how):
    broker = BrokerProcess(tmp_path / "data", extra=GROUP_SETTINGS).start()
    try:
        create_topic(broker.bootstrap, "resume", 3)
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        for p in range(3):
            for i in range(30):
                producer.produce("resume", value=b"p%d-%d" % (p, i), partition=p)
        assert producer.flush(30) == 0

        conf = member_conf(broker.bootstrap, "g-resume")
        commits = {0: 5, 1: 17, 2: 29}
        consumer = Consumer(conf)
        consumer.subscribe(["resume"])

        def assigned() -> bool:
            consumer.poll(0.05)
            return len(consumer.assignment()) == 3

        wait_until(assigned, 20, "the consumer's assignment")
        result = consumer.commit(
            offsets=[TopicPartition("resume", p, o, metadata=f"m{p}") for p, o in commits.items()], asynchronous=False
        )
        assert [tp.error for tp in result] == [None, None, None]
        consumer.close()

        if how == "graceful":
            assert broker.stop() == 0
        else:
            broker.kill()
        broker = BrokerProcess(tmp_path / "data", port=broker.port, extra=GROUP_SETTINGS).start()

        consumer = Consumer(conf)
        committed = consumer.committed([TopicPartition("resume", p) for p in range(3)], timeout=10)
        assert {tp.partition: (tp.offset, tp.metadata) for tp in committed} == {
            p: (o, f"m{p}") for p, o in commits.items()
        }
        consumer.subscribe(["resume"])
        first: dict[int, tuple[int, bytes]] = {}
        deadline = time.monotonic() + 20
        while len(first) < 3 and time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is not None:
                assert msg.error() is None, msg.error()
                first.setdefault(msg.partition(), (msg.offset(), msg.value()))
        consumer.close()
        assert first == {p: (o, b"p%d-%d" % (p, o)) for p, o in commits.items()}
    finally:
        broker.close()


def _offsets_partition_records(bootstrap: str) -> int:
    """How many records __consumer_offsets-0 holds, read from its start."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False})
    tp = TopicPartition("__consumer_offsets", 0)
    low, high = consumer.get_watermark_offsets(tp, timeout=10)
    consumer.assign([TopicPartition("__consumer_offsets", 0, low)])
    count, position = 0, low
    deadline = time.monotonic() + 20
    while position < high and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        count += 1
        position = msg.offset() + 1
    consumer.close()
    assert position >= high, "could not read __consumer_offsets-0 to its end"
    return count


def test_consumer_offsets_stays_bounded_after_many_commits_of_one_partition(tmp_path):
    commits = 5000
    segment_bytes = 16 * 1024
    extra = [
        *group_settings(offsets_partitions=1),  # every group in partition 0
        "--set", f"offsets.topic.segment.bytes={segment_bytes}",
        "--set", "log.cleaner.backoff.ms=200",  # the cleaner looks every 200 ms
    ]  # fmt: skip
    broker = BrokerProcess(tmp_path / "data", extra=extra).start()
    try:
        create_topic(broker.bootstrap, "t", 1)
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g-many", "enable.auto.commit": False})
        consumer.assign([TopicPartition("t", 0)])  # a simple consumer: commits without a generation
        for offset in range(1, commits):
            consumer.commit(offsets=[TopicPartition("t", 0, offset)], asynchronous=True)
            if offset % 500 == 0:
                consumer.poll(0)
        (last,) = consumer.commit(offsets=[TopicPartition("t", 0, commits)], asynchronous=False)
        assert last.error is None
        assert consumer.committed([TopicPartition("t", 0)], timeout=10)[0].offset == commits
        consumer.close()

        part_dir = tmp_path / "data" / "__consumer_offsets-0"

        def log_bytes() -> int:
            return sum(f.stat().st_size for f in Path(part_dir).glob("*.log"))

        # 5000 commits of ~100 bytes are ~30 segments; the cleaner keeps one
        # record per key (plus the active segment): far below the commit count.
        wait_until(lambda: log_bytes() < 3 * segment_bytes, 10, f"the cleaner to shrink {log_bytes()} bytes of commits")
        assert _offsets_partition_records(broker.bootstrap) < commits // 10
    finally:
        broker.close()


def test_admin_clients_see_groups_stable_then_empty_with_their_offsets(group_broker):
    bootstrap = group_broker.bootstrap
    create_topic(bootstrap, "watched", 4)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    members = [
        ConfluentMember(member_conf(bootstrap, "g-admin", **{"client.id": f"member-{i}"}), "watched") for i in range(2)
    ]
    try:
        wait_until(lambda: is_balanced([m.assigned for m in members], 4), 20, "two members with two each")
        listed = admin.list_consumer_groups().result(timeout=10)
        assert listed.errors == []
        assert {(g.group_id, g.state) for g in listed.valid} == {("g-admin", ConsumerGroupState.STABLE)}

        described = admin.describe_consumer_groups(["g-admin"])["g-admin"].result(timeout=10)
        assert described.state == ConsumerGroupState.STABLE
        assert described.partition_assignor == "range"
        assert sorted(m.client_id for m in described.members) == ["member-0", "member-1"]
        assert sorted(
            (tp.topic, tp.partition) for m in described.members for tp in m.assignment.topic_partitions
        ) == [("watched", p) for p in range(4)]
        assert described.coordinator.port == group_broker.port
    finally:
        for m in members:
            m.stop()

    # Both left: the group is Empty and has no members.
    listed = admin.list_consumer_groups().result(timeout=10)
    assert {(g.group_id, g.state) for g in listed.valid} == {("g-admin", ConsumerGroupState.EMPTY)}
    described = admin.describe_consumer_groups(["g-admin"])["g-admin"].result(timeout=10)
    assert (described.state, described.members) == (ConsumerGroupState.EMPTY, [])

    # Offsets committed to the empty group are what kafka-python's admin reads back
    # (list_group_offsets, its list_consumer_group_offsets).
    committer = Consumer({"bootstrap.servers": bootstrap, "group.id": "g-admin", "enable.auto.commit": False})
    result = committer.commit(offsets=[TopicPartition("watched", p, 10 * p + 1) for p in range(4)], asynchronous=False)
    assert [tp.error for tp in result] == [None] * 4
    committer.close()
    kadmin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = kadmin.list_group_offsets("g-admin")["g-admin"]
    finally:
        kadmin.close()
    expected = {KTopicPartition("watched", p): 10 * p + 1 for p in range(4)}
    assert {tp: meta.offset for tp, meta in offsets.items()} == expected
