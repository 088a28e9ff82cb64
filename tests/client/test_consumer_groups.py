"""Consumer groups end to end against real broker processes: riverlog
consumers (Trio and blocking) sharing topics, with each assignor, with
confluent-kafka members in the same group, commits, and rebalance callbacks.

The broker runs with group.initial.rebalance.delay.ms=0 and a small minimum
session timeout, and members use 2 s sessions and 200 ms heartbeats, so a
rebalance takes a fraction of a second and a dead member is noticed in ~2 s.
"""

from __future__ import annotations

import threading
import time

import pytest
import trio

from riverlog.client.consumer import CommitFailedError, Consumer, IllegalStateError
from riverlog.client.errors import ConfigError
from riverlog.client.producer import Producer
from riverlog.client.sync import SyncConsumer
from riverlog.client.types import TopicPartition
from tests.client.test_consumer import admin, create_topic, wait_until
from tests.integration.broker_process import BrokerProcess

FAST_GROUPS = ["--set", "group.initial.rebalance.delay.ms=0", "--set", "group.min.session.timeout.ms=500"]
MEMBER = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 200, "auto_offset_reset": "earliest"}


@pytest.fixture(scope="module")
def broker_process(tmp_path_factory):
    """This module's own broker, with group timings made fast."""
    b = BrokerProcess(tmp_path_factory.mktemp("broker") / "data", extra=FAST_GROUPS).start()
    yield b
    b.close()


async def make_topic(bootstrap: str, nursery, name: str, partitions: int) -> list[TopicPartition]:
    conn = await admin(nursery, bootstrap)
    await create_topic(conn, name, partitions)
    return [TopicPartition(name, p) for p in range(partitions)]


async def produce(bootstrap: str, topic: str, per_partition: int, partitions: int, tag: str = "") -> None:
    async with Producer(bootstrap_servers=bootstrap, linger_ms=0) as producer:
        for p in range(partitions):
            for i in range(per_partition):
                await producer.send(topic, f"{tag}{p}-{i}".encode(), partition=p)
        await producer.flush()


class Member:
    """A riverlog consumer in its own task, polling until stopped: `stop()`
    closes it gracefully (commit, LeaveGroup); `kill()` cancels it, so it
    neither commits nor leaves and just stops heartbeating."""

    def __init__(self, bootstrap: str, group: str, topics, name: str = "", process=None, **options) -> None:
        self.options = {"bootstrap_servers": bootstrap, "group_id": group, **MEMBER, **options}
        self.topics = topics
        self.name = name
        self.process = process  # per-batch hook: process(member, records) (may be async)
        self.records: list = []
        self.events: list[tuple[str, set[TopicPartition]]] = []
        self.consumer: Consumer | None = None
        self._stop = trio.Event()
        self._scope = trio.CancelScope()
        self.done = trio.Event()

    def assignment(self) -> set[TopicPartition]:
        return self.consumer.assignment() if self.consumer is not None else set()

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with self._scope:
            try:
                async with Consumer(**self.options) as c:
                    self.consumer = c
                    c.subscribe(self.topics, on_assigned=self._on("assigned"), on_revoked=self._on("revoked"),
                                on_lost=self._on("lost"))  # fmt: skip
                    task_status.started()
                    while not self._stop.is_set():
                        records = await c.poll(timeout=0.05)
                        self.records += records
                        if records and self.process is not None:
                            await self.process(self, records)
            finally:
                self.done.set()

    def _on(self, kind: str):
        async def callback(partitions: set[TopicPartition]) -> None:
            self.events.append((kind, partitions))

        return callback

    async def stop(self) -> None:
        self._stop.set()
        await self.done.wait()

    async def kill(self) -> None:
        self._scope.cancel()
        await self.done.wait()


def covers_exactly(members, tps) -> bool:
    """Every partition owned by exactly one member, and every member busy."""
    owned = [tp for m in members for tp in m.assignment()]
    return sorted(owned) == sorted(tps) and all(m.assignment() for m in members)


# -- sharing partitions --------------------------------------------------------


async def test_three_members_share_six_partitions_two_each_and_survivors_take_over_on_close(bootstrap, nursery):
    tps = await make_topic(bootstrap, nursery, "share6", 6)
    members = [Member(bootstrap, "g-share", ["share6"], name=str(i)) for i in range(3)]
    for m in members:
        await nursery.start(m.run)
    await wait_until(lambda: covers_exactly(members, tps), what="three-way split")
    assert sorted(len(m.assignment()) for m in members) == [2, 2, 2]
    await members[0].stop()
    await wait_until(lambda: covers_exactly(members[1:], tps), what="two survivors cover six")
    assert sorted(len(m.assignment()) for m in members[1:]) == [3, 3]
    for m in members[1:]:
        await m.stop()


async def test_a_member_that_dies_without_leaving_is_replaced_after_the_session_timeout(bootstrap, nursery):
    tps = await make_topic(bootstrap, nursery, "dies6", 6)
    members = [Member(bootstrap, "g-dies", ["dies6"]) for _ in range(3)]
    for m in members:
        await nursery.start(m.run)
    await wait_until(lambda: covers_exactly(members, tps), what="three-way split")
    await members[2].kill()  # no LeaveGroup, no more heartbeats
    start = trio.current_time()
    await wait_until(lambda: covers_exactly(members[:2], tps), what="takeover after the session timeout")
    assert trio.current_time() - start >= 1.0  # only the session timeout (2 s) could tell the group
    # a newcomer gets its share
    members.append(Member(bootstrap, "g-dies", ["dies6"]))
    await nursery.start(members[-1].run)
    live = [members[0], members[1], members[3]]
    await wait_until(lambda: covers_exactly(live, tps) and all(len(m.assignment()) == 2 for m in live),
                     what="newcomer gets two")  # fmt: skip
    for m in live:
        await m.stop()


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
async def test_every_assignor_splits_two_topics_and_rebalances_when_members_come_and_go(bootstrap, nursery, strategy):
    a = await make_topic(bootstrap, nursery, f"as-a-{strategy}", 3)
    b = await make_topic(bootstrap, nursery, f"as-b-{strategy}", 2)
    topics = [f"as-a-{strategy}", f"as-b-{strategy}"]
    await produce(bootstrap, topics[0], 5, 3)
    await produce(bootstrap, topics[1], 5, 2)
    group = f"g-as-{strategy}"
    opts = {"partition_assignment_strategy": [strategy]}
    first = Member(bootstrap, group, topics, **opts)
    await nursery.start(first.run)
    await wait_until(lambda: first.assignment() == set(a + b), what="a lone member owns all")
    second = Member(bootstrap, group, topics, **opts)
    await nursery.start(second.run)
    await wait_until(lambda: covers_exactly([first, second], a + b), what="two members split five")
    await first.stop()
    await wait_until(lambda: second.assignment() == set(a + b), what="the survivor owns all")
    await wait_until(lambda: len(first.records) + len(second.records) >= 25, what="every record read")
    await second.stop()
    seen = {(r.topic, r.partition, r.offset) for r in first.records + second.records}
    assert len(seen) == 25


async def test_eager_revokes_everything_before_assigning(bootstrap, nursery):
    tps = await make_topic(bootstrap, nursery, "eager4", 4)
    opts = {"partition_assignment_strategy": ["range"]}
    first = Member(bootstrap, "g-eager", ["eager4"], **opts)
    await nursery.start(first.run)
    await wait_until(lambda: first.assignment() == set(tps))
    second = Member(bootstrap, "g-eager", ["eager4"], **opts)
    await nursery.start(second.run)
    await wait_until(lambda: covers_exactly([first, second], tps))
    assert first.events[0] == ("assigned", set(tps))
    assert first.events[1] == ("revoked", set(tps))  # eager: everything, before the join
    assert first.events[2][0] == "assigned" and first.events[2][1] == first.assignment()
    assert second.events == [("assigned", second.assignment())]
    for m in (first, second):
        await m.stop()
    assert first.events[-1] == ("revoked", first.events[2][1])  # on close


async def test_cooperative_revokes_only_the_partitions_that_move(bootstrap, nursery):
    tps = await make_topic(bootstrap, nursery, "coop4", 4)
    opts = {"partition_assignment_strategy": ["cooperative-sticky"]}
    first = Member(bootstrap, "g-coop", ["coop4"], **opts)
    await nursery.start(first.run)
    await wait_until(lambda: first.assignment() == set(tps))
    second = Member(bootstrap, "g-coop", ["coop4"], **opts)
    await nursery.start(second.run)
    await wait_until(lambda: covers_exactly([first, second], tps) and len(second.assignment()) == 2)
    kept = first.assignment()
    moved = set(tps) - kept
    assert len(kept) == 2
    revoked = [parts for kind, parts in first.events if kind == "revoked"]
    assert revoked == [moved]  # only what moved, once
    assert ("assigned", set(tps)) == first.events[0]
    # the newcomer gets the moved partitions only in the second rebalance
    assert [parts for kind, parts in second.events if kind == "assigned" and parts] == [moved]
    for m in (first, second):
        await m.stop()


# -- commits ---------------------------------------------------------------------


async def test_commit_and_committed_round_trip_and_a_restarted_consumer_resumes_there(bootstrap, nursery):
    tps = await make_topic(bootstrap, nursery, "resume2", 2)
    await produce(bootstrap, "resume2", 10, 2)
    opts = {"bootstrap_servers": bootstrap, "group_id": "g-resume", "enable_auto_commit": False, **MEMBER}
    async with Consumer(**opts) as c:
        assert await c.committed(tps) == {tps[0]: None, tps[1]: None}
        c.subscribe(["resume2"])
        got: list = []
        with trio.fail_after(15):
            while len(got) < 20:
                got += await c.poll(timeout=0.5)
        await c.commit({tps[0]: 4})  # explicit offsets
        assert await c.committed(tps) == {tps[0]: 4, tps[1]: None}
        await c.commit()  # every assigned partition's position
        assert await c.committed(tps) == {tps[0]: 10, tps[1]: 10}
        await c.commit({tps[0]: 7, tps[1]: 3})
    await produce(bootstrap, "resume2", 2, 2, tag="new")
    async with Consumer(**opts) as c:
        c.subscribe(["resume2"])
        got = []
        with trio.fail_after(15):
            while len(got) < 3 + 7 + 4:
                got += await c.poll(timeout=0.5)
        assert sorted((r.partition, r.offset) for r in got) == (
            [(0, o) for o in range(7, 12)] + [(1, o) for o in range(3, 12)])
        assert await c.position(tps[0]) == 12


async def test_auto_commit_commits_positions_periodically_and_on_close(bootstrap, nursery):
    tps = await make_topic(bootstrap, nursery, "auto1", 1)
    await produce(bootstrap, "auto1", 5, 1)
    opts = {"bootstrap_servers": bootstrap, "group_id": "g-auto", "auto_commit_interval_ms": 200, **MEMBER}
    async with Consumer(**opts) as c:
        c.subscribe(["auto1"])
        got: list = []
        with trio.fail_after(15):
            while len(got) < 5:
                got += await c.poll(timeout=0.5)
            while (await c.committed(tps))[tps[0]] != 5:  # the periodic commit, made by a later poll
                await c.poll(timeout=0.1)
        await produce(bootstrap, "auto1", 3, 1)
        with trio.fail_after(15):
            while len(got) < 8:
                got += await c.poll(timeout=0.5)
    async with Consumer(bootstrap_servers=bootstrap, group_id="g-auto") as c:
        assert await c.committed(tps) == {tps[0]: 8}  # committed on close


async def test_commit_in_a_stale_generation_fails_with_commit_failed(bootstrap, nursery):
    await make_topic(bootstrap, nursery, "stale1", 1)
    opts = {"bootstrap_servers": bootstrap, "group_id": "g-stale", **MEMBER}
    async with Consumer(**opts) as c:
        c.subscribe(["stale1"])
        with trio.fail_after(10):
            while not c.assignment():
                await c.poll(timeout=0.1)
        c._g.generation += 7  # as if the group had moved on without us
        with pytest.raises(CommitFailedError):
            await c.commit({TopicPartition("stale1", 0): 0})
        with trio.fail_after(10):  # it rejoins and gets the partition back
            while not c.assignment() or c.generation < 0:
                await c.poll(timeout=0.1)


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
async def test_no_record_is_lost_or_duplicated_across_rebalances_with_commits_after_processing(
        bootstrap, nursery, strategy):  # fmt: skip
    topic = f"exact6-{strategy}"
    await make_topic(bootstrap, nursery, topic, 6)
    total = 6 * 200
    processed: list[tuple[int, int]] = []

    async def process(member: Member, records) -> None:
        processed.extend((r.partition, r.offset) for r in records)
        await member.consumer.commit({TopicPartition(r.topic, r.partition): r.offset + 1 for r in records})

    async def feed() -> None:
        async with Producer(bootstrap_servers=bootstrap, linger_ms=2) as producer:
            for i in range(200):
                for p in range(6):
                    await producer.send(topic, b"%d" % i, partition=p)
                if i % 20 == 0:
                    await producer.flush()
                    await trio.sleep(0.05)

    opts = {"enable_auto_commit": False, "max_poll_records": 7, "partition_assignment_strategy": [strategy]}
    members = [Member(bootstrap, f"g-{topic}", [topic], process=process, **opts)]
    await nursery.start(members[0].run)
    nursery.start_soon(feed)
    for _ in range(2):  # members come while records flow
        await trio.sleep(0.3)
        members.append(Member(bootstrap, f"g-{topic}", [topic], process=process, **opts))
        await nursery.start(members[-1].run)
    await trio.sleep(0.3)
    await members[0].stop()  # and one goes
    await wait_until(lambda: len(processed) >= total, timeout=30, what="every record processed")
    await trio.sleep(0.3)
    for m in members[1:]:
        await m.stop()
    assert sorted(processed) == sorted((p, o) for p in range(6) for o in range(200))


# -- mixed groups ------------------------------------------------------------------


class ConfluentMember:
    """A confluent-kafka consumer polling on a thread; `assignment` is read
    there after each poll."""

    def __init__(self, bootstrap: str, group: str, topic: str, strategy: str) -> None:
        from confluent_kafka import Consumer as CKConsumer

        self.consumer = CKConsumer({
            "bootstrap.servers": bootstrap, "group.id": group, "partition.assignment.strategy": strategy,
            "session.timeout.ms": 2000, "heartbeat.interval.ms": 200, "auto.offset.reset": "earliest",
        })  # fmt: skip
        self.consumer.subscribe([topic])
        self._assignment: set[TopicPartition] = set()
        self.records: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self.consumer.poll(0.05)
            if msg is not None and msg.error() is None:
                self.records.append((msg.partition(), msg.offset()))
            self._assignment = {TopicPartition(t.topic, t.partition) for t in self.consumer.assignment()}
        self.consumer.close()

    def assignment(self) -> set[TopicPartition]:
        return self._assignment

    async def stop(self) -> None:
        self._stop.set()
        await trio.to_thread.run_sync(self.thread.join)


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
async def test_a_group_of_riverlog_and_confluent_members_covers_every_partition_exactly_once(
        bootstrap, nursery, strategy):  # fmt: skip
    topic = f"mixed8-{strategy}"
    tps = await make_topic(bootstrap, nursery, topic, 8)
    await produce(bootstrap, topic, 5, 8)
    group = f"g-{topic}"
    ours = [Member(bootstrap, group, [topic], partition_assignment_strategy=[strategy]) for _ in range(2)]
    await nursery.start(ours[0].run)
    theirs = [ConfluentMember(bootstrap, group, topic, strategy)]
    await nursery.start(ours[1].run)
    theirs.append(ConfluentMember(bootstrap, group, topic, strategy))
    everyone = ours + theirs
    try:
        await wait_until(lambda: covers_exactly(everyone, tps) and all(len(m.assignment()) == 2 for m in everyone),
                         timeout=30, what="four members, two partitions each")  # fmt: skip
        await wait_until(lambda: len({r for m in ours for r in ((x.partition, x.offset) for x in m.records)}
                                     | {r for m in theirs for r in m.records}) == 40,
                         timeout=20, what="every record read")  # fmt: skip
        await theirs[0].stop()
        rest = [ours[0], ours[1], theirs[1]]
        await wait_until(lambda: covers_exactly(rest, tps), timeout=30, what="three cover eight")
    finally:
        for m in theirs:
            await m.stop()
        for m in ours:
            await m.stop()


# -- the blocking face -----------------------------------------------------------


async def test_sync_consumers_share_a_topic_and_commit_in_on_revoked(bootstrap, nursery):
    tps = await make_topic(bootstrap, nursery, "sync4", 4)
    await produce(bootstrap, "sync4", 10, 4)
    events: dict[int, list] = {0: [], 1: []}
    consumed: dict[int, list] = {0: [], 1: []}

    def member(i: int, stop: threading.Event, joined: threading.Event) -> None:
        opts = {"bootstrap_servers": bootstrap, "group_id": "g-sync", "enable_auto_commit": False,
                "partition_assignment_strategy": "range", **MEMBER}  # fmt: skip
        with SyncConsumer(**opts) as c:

            def revoked(parts):
                events[i].append(("revoked", parts))
                c.commit()  # back into the consumer from the callback

            c.subscribe(["sync4"], on_assigned=lambda parts: events[i].append(("assigned", parts)),
                        on_revoked=revoked)  # fmt: skip
            while not stop.is_set():
                consumed[i] += c.poll(timeout=0.05)
                if c.assignment():
                    joined.set()
            assert c.subscription() == {"sync4"}
            c.commit()
            assert set(c.committed(tps)) == set(tps)

    stops = [threading.Event(), threading.Event()]
    joined = [threading.Event(), threading.Event()]
    t0 = threading.Thread(target=member, args=(0, stops[0], joined[0]))
    t0.start()
    await trio.to_thread.run_sync(joined[0].wait, 15)
    t1 = threading.Thread(target=member, args=(1, stops[1], joined[1]))
    t1.start()
    await trio.to_thread.run_sync(joined[1].wait, 15)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and sum(len(v) for v in consumed.values()) < 40:
        await trio.sleep(0.05)
    for stop in stops:
        stop.set()
    for t in (t0, t1):
        await trio.to_thread.run_sync(t.join, 15)
    got = sorted((r.partition, r.offset) for v in consumed.values() for r in v)
    assert got == sorted((p, o) for p in range(4) for o in range(10))  # revoke committed: no duplicates
    assert events[0][:2] == [("assigned", set(tps)), ("revoked", set(tps))]
    assert events[1][0][0] == "assigned" and len(events[1][0][1]) == 2


# -- rules -------------------------------------------------------------------------


async def test_assign_and_subscribe_are_exclusive_and_groups_need_a_group_id(bootstrap, nursery):
    await make_topic(bootstrap, nursery, "excl1", 1)
    tp = TopicPartition("excl1", 0)
    async with Consumer(bootstrap_servers=bootstrap, group_id="g-excl", **MEMBER) as c:
        c.assign([tp])
        with pytest.raises(IllegalStateError):
            c.subscribe(["excl1"])
        c.assign([])
        c.subscribe(["excl1"])
        with pytest.raises(IllegalStateError):
            c.assign([tp])
        with trio.fail_after(10):
            while not c.assignment():
                await c.poll(timeout=0.1)
        await c.unsubscribe()
        assert c.assignment() == set()
        c.assign([tp])
    async with Consumer(bootstrap_servers=bootstrap) as c:
        with pytest.raises(ConfigError):
            c.subscribe(["excl1"])
    with pytest.raises(ConfigError):
        Consumer(group_id="g", partition_assignment_strategy=["sticky-ish"])


async def test_a_pattern_subscription_takes_every_matching_topic(bootstrap, nursery):
    a = await make_topic(bootstrap, nursery, "pat-x-1", 2)
    b = await make_topic(bootstrap, nursery, "pat-x-2", 1)
    await make_topic(bootstrap, nursery, "pat-y-1", 1)
    async with Consumer(bootstrap_servers=bootstrap, group_id="g-pattern", **MEMBER) as c:
        c.subscribe(pattern=r"pat-x-\d+")
        with trio.fail_after(10):
            while c.assignment() != set(a + b):
                await c.poll(timeout=0.1)
        assert c.subscription() == {"pat-x-1", "pat-x-2"}


async def test_a_member_that_stops_polling_leaves_and_rejoins_on_the_next_poll(bootstrap, nursery):
    tps = await make_topic(bootstrap, nursery, "slow2", 2)
    other = Member(bootstrap, "g-slow", ["slow2"])
    await nursery.start(other.run)
    lost: list = []
    opts = {"bootstrap_servers": bootstrap, "group_id": "g-slow", "max_poll_interval_ms": 1000, **MEMBER}
    async with Consumer(**opts) as c:
        c.subscribe(["slow2"], on_lost=lost.append)
        with trio.fail_after(10):
            while len(c.assignment()) != 1 or len(other.assignment()) != 1:
                await c.poll(timeout=0.1)
        mine = c.assignment()
        # no poll for longer than max_poll_interval_ms: it leaves, the other takes all
        await wait_until(lambda: other.assignment() == set(tps), what="the other takes over")
        assert c.generation == -1
        with trio.fail_after(10):
            while len(c.assignment()) != 1 or len(other.assignment()) != 1:
                await c.poll(timeout=0.1)
        assert lost == [mine]  # lost, not revoked: the group moved on without it
    await other.stop()


async def test_a_static_member_does_not_leave_on_close(bootstrap, nursery):
    tps = await make_topic(bootstrap, nursery, "static2", 2)
    other = Member(bootstrap, "g-static", ["static2"])
    await nursery.start(other.run)
    # A 6 s session: the check at 1 s has room for a loaded machine's stalls.
    opts = {"bootstrap_servers": bootstrap, "group_id": "g-static", "group_instance_id": "static-a",
            **MEMBER, "session_timeout_ms": 6000}  # fmt: skip
    async with Consumer(**opts) as c:
        c.subscribe(["static2"])
        with trio.fail_after(10):
            while len(c.assignment()) != 1 or len(other.assignment()) != 1:
                await c.poll(timeout=0.1)
    await trio.sleep(1.0)  # well inside its session: a dynamic member's leave would show by now
    assert len(other.assignment()) == 1
    await wait_until(lambda: other.assignment() == set(tps), timeout=30, what="session timeout")
    await other.stop()


async def test_commit_async_reports_to_its_callback(bootstrap, nursery):
    tps = await make_topic(bootstrap, nursery, "async1", 1)
    reports: list = []
    async with Consumer(bootstrap_servers=bootstrap, group_id="g-async", enable_auto_commit=False, **MEMBER) as c:
        c.commit_async({tps[0]: 3}, callback=lambda offsets, error: reports.append((offsets, error)))
        await wait_until(lambda: reports, what="the callback")
        assert reports == [({tps[0]: 3}, None)]
        assert await c.committed(tps) == {tps[0]: 3}


async def test_members_find_the_coordinator_again_after_a_broker_restart(tmp_path, nursery):
    """The coordinator comes back, heartbeats and commits go on, records
    produced after the restart are fetched, and a newcomer gets its share."""
    broker = BrokerProcess(tmp_path / "data", extra=FAST_GROUPS).start()
    try:
        bootstrap = broker.bootstrap
        tps = await make_topic(bootstrap, nursery, "restart4", 4)
        # No auto-commit: a periodic commit of the positions (0) made while
        # the test's explicit commit is answered would overwrite it.
        members = [Member(bootstrap, "g-restart", ["restart4"], reconnect_backoff_max_ms=200,
                          enable_auto_commit=False) for _ in range(2)]  # fmt: skip
        for m in members:
            await nursery.start(m.run)
        await wait_until(lambda: covers_exactly(members, tps))
        await trio.to_thread.run_sync(broker.stop)
        await trio.to_thread.run_sync(broker.start)
        for i, m in enumerate(members):
            mine = sorted(m.assignment())
            with trio.fail_after(20):
                await m.consumer.commit({tp: 10 + i for tp in mine})
                assert await m.consumer.committed(mine) == {tp: 10 + i for tp in mine}
        await produce(bootstrap, "restart4", 5, 4, tag="after-")
        await wait_until(lambda: sum(len(m.records) for m in members) == 20, timeout=30,
                         what="the records produced after the restart")  # fmt: skip
        members.append(Member(bootstrap, "g-restart", ["restart4"]))
        await nursery.start(members[-1].run)
        await wait_until(lambda: covers_exactly(members, tps), timeout=30, what="three members after the restart")
        for m in members:
            await m.stop()
    finally:
        broker.close()


async def test_a_raising_on_revoked_still_revokes(bootstrap, nursery):
    # Java's rule: the listener's exception reaches poll, but the partitions
    # are revoked all the same, so they are neither fetched nor committed.
    tps = await make_topic(bootstrap, nursery, "raise2", 2)

    async def broken(partitions):
        raise RuntimeError("listener bug")

    async with Consumer(bootstrap_servers=bootstrap, group_id="g-raise", **MEMBER) as c:
        c.subscribe(["raise2"], on_revoked=broken)
        with trio.fail_after(10):
            while c.assignment() != set(tps):
                await c.poll(timeout=0.1)
        other = Member(bootstrap, "g-raise", ["raise2"])
        await nursery.start(other.run)
        with trio.fail_after(15):
            with pytest.raises(RuntimeError, match="listener bug"):
                while True:
                    await c.poll(timeout=0.1)
        assert c.assignment() != set(tps)  # the revoked partitions are gone even though the listener raised
        await other.stop()


async def test_a_retried_commit_never_lands_after_a_newer_one_of_the_same_partition(nursery):
    """The first commit's answer is a retriable error that arrives after a
    second commit of the same partition succeeded: its retry must not send
    the older offset again (it would move the group's offset back)."""
    from riverlog.client.cluster import Cluster
    from riverlog.client.config import ConsumerConfig
    from riverlog.client.group.membership import GroupMembership as Membership
    from riverlog.client.protocol import ErrorCode

    tp = TopicPartition("t", 0)
    release = trio.Event()
    sent: list[int] = []

    class Coordinator:
        def version_for(self, api_key, **kw):
            return 8

        async def request(self, api_key, body, version=None):
            offset = body["topics"][0]["partitions"][0]["committed_offset"]
            sent.append(offset)
            code = 0
            if offset == 100 and sent.count(100) == 1:
                await release.wait()  # answered only once the newer commit is done
                code = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS  # retriable: the commit is tried again
            return {"throttle_time_ms": 0, "topics": [{"name": "t", "partitions": [
                {"partition_index": 0, "error_code": code}]}]}  # fmt: skip

    config = ConsumerConfig(group_id="g", retry_backoff_ms=1)
    membership = Membership(Cluster(config, nursery), config, lambda a: None, dict, lambda tp, o: None,
                            lambda: None, nursery)  # fmt: skip
    coordinator = Coordinator()

    async def connection():
        return coordinator

    membership._connection = connection
    async with trio.open_nursery() as n:
        n.start_soon(membership.commit, {tp: 100})
        await trio.sleep(0.05)
        await membership.commit({tp: 150})
        release.set()
    assert sent == [100, 150]  # no second 100 after the 150


async def test_a_superseded_commit_returns_only_once_the_newer_commit_has_finished(nursery):
    """A commit whose partitions a newer commit claimed sends nothing more,
    but returns only when that newer commit is done: a caller reading
    committed() right after its commit() must not see an older offset."""
    from riverlog.client.cluster import Cluster
    from riverlog.client.config import ConsumerConfig
    from riverlog.client.group.membership import GroupMembership as Membership
    from riverlog.client.protocol import ErrorCode

    tp = TopicPartition("t", 0)
    gates = {100: trio.Event(), 150: trio.Event()}
    sent: list[int] = []

    class Coordinator:
        def version_for(self, api_key, **kw):
            return 8

        async def request(self, api_key, body, version=None):
            offset = body["topics"][0]["partitions"][0]["committed_offset"]
            sent.append(offset)
            await gates[offset].wait()
            code = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS if offset == 100 else 0
            return {"throttle_time_ms": 0, "topics": [{"name": "t", "partitions": [
                {"partition_index": 0, "error_code": code}]}]}  # fmt: skip

    config = ConsumerConfig(group_id="g", retry_backoff_ms=1)
    membership = Membership(Cluster(config, nursery), config, lambda a: None, dict, lambda tp, o: None,
                            lambda: None, nursery)  # fmt: skip

    async def connection():
        return Coordinator()

    membership._connection = connection
    finished: list[int] = []

    async def commit(offset: int) -> None:
        await membership.commit({tp: offset})
        finished.append(offset)

    async with trio.open_nursery() as n:
        n.start_soon(commit, 100)
        await trio.sleep(0.05)
        n.start_soon(commit, 150)
        await trio.sleep(0.05)
        gates[100].set()  # the older commit's retriable failure: its retry finds itself superseded
        await trio.sleep(0.2)
        assert finished == []  # ... and waits for the newer one
        gates[150].set()
    assert sent == [100, 150]
    assert finished == [150, 100]
