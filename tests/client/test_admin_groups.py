"""The admin client's group methods against a real broker, with groups made by
librdkafka consumers (confluent-kafka); coordinator retries against a
scripted broker."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
import trio
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as CkTopicPartition

from riverlog.client.admin import Admin, GroupListing, NewTopic, OffsetAndMetadata
from riverlog.client.errors import KafkaTimeoutError
from riverlog.client.group.consumer_protocol import Assignment, encode_assignment
from riverlog.client.protocol.errors import (
    GroupIdNotFoundError,
    GroupSubscribedToTopicError,
    NonEmptyGroupError,
    UnknownMemberIdError,
)
from riverlog.client.types import TopicPartition
from tests.client.test_admin import produce
from tests.client.test_connection import FakeBroker, _metadata_answer
from tests.integration.broker_process import BrokerProcess

# Rebalances at once, and short sessions allowed: groups form in well under a second.
GROUP_BROKER_SETTINGS = ["--set", "group.initial.rebalance.delay.ms=0", "--set", "group.min.session.timeout.ms=500"]


@pytest.fixture(scope="module")
def broker_process(tmp_path_factory):
    b = BrokerProcess(tmp_path_factory.mktemp("broker") / "data", extra=GROUP_BROKER_SETTINGS).start()
    yield b
    b.close()


def admin_call(bootstrap: str, call):
    """`await call(admin)` with a fresh Admin, from a plain (thread-friendly) test."""

    async def main():
        async with Admin(bootstrap_servers=bootstrap, default_api_timeout_ms=5000) as a:
            return await call(a)

    return trio.run(main)


def make_topic(bootstrap: str, name: str, partitions: int = 2, records: int = 5) -> None:
    async def create(a: Admin) -> None:
        await a.create_topics([NewTopic(name, partitions, 1)])
        for p in range(partitions):
            await produce(a, name, p, records)

    admin_call(bootstrap, create)


@contextlib.contextmanager
def member(bootstrap: str, group: str, topic: str, commit: dict[int, int] | None = None,
           client_id: str = "tester") -> Iterator[Consumer]:  # fmt: skip
    """A librdkafka consumer in `group`, subscribed to `topic`, assigned, and
    having committed `commit` ({partition: offset}); it leaves on exit."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "client.id": client_id,
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
    })  # fmt: skip
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 15
        while not consumer.assignment():
            assert time.monotonic() < deadline, "no assignment"
            consumer.poll(0.05)
        if commit:
            consumer.commit(offsets=[CkTopicPartition(topic, p, o) for p, o in commit.items()], asynchronous=False)
        yield consumer
    finally:
        consumer.close()


def test_list_groups_shows_every_group_with_its_state_and_type(bootstrap):
    make_topic(bootstrap, "lg-topic")
    admin_call(bootstrap, lambda a: a.alter_group_offsets("lg-simple", {TopicPartition("lg-topic", 0): 1}))
    with member(bootstrap, "lg-active", "lg-topic"):
        groups = admin_call(bootstrap, lambda a: a.list_groups())
    assert GroupListing("lg-active", "consumer", "Stable") in groups
    assert GroupListing("lg-simple", "", "Empty") in groups
    assert groups == sorted(groups)


def test_describe_groups_decodes_each_members_assignment(bootstrap):
    make_topic(bootstrap, "dg-topic")
    with member(bootstrap, "dg-group", "dg-topic", client_id="dg-client"):
        described = admin_call(bootstrap, lambda a: a.describe_groups(["dg-group"]))
    group = described["dg-group"]
    assert (group.group_id, group.state, group.protocol_type) == ("dg-group", "Stable", "consumer")
    assert group.protocol in ("range", "roundrobin")
    (m,) = group.members
    assert m.client_id == "dg-client" and m.member_id.startswith("dg-client") and m.client_host
    assert sorted(m.assignment) == [TopicPartition("dg-topic", 0), TopicPartition("dg-topic", 1)]


def test_describe_an_unknown_group_raises_group_id_not_found(bootstrap):
    with pytest.raises(GroupIdNotFoundError, match="group 'dg-nobody' does not exist"):
        admin_call(bootstrap, lambda a: a.describe_groups(["dg-nobody"]))


def test_list_group_offsets_all_or_named_partitions(bootstrap):
    make_topic(bootstrap, "lo-topic")
    with member(bootstrap, "lo-group", "lo-topic", commit={0: 3}):
        pass
    tp0, tp1 = TopicPartition("lo-topic", 0), TopicPartition("lo-topic", 1)
    everything = admin_call(bootstrap, lambda a: a.list_group_offsets("lo-group"))
    assert list(everything) == [tp0] and everything[tp0].offset == 3
    named = admin_call(bootstrap, lambda a: a.list_group_offsets("lo-group", [tp1, tp0]))
    assert named == {tp1: None, tp0: everything[tp0]}  # None: no commit, as Kafka's AdminClient answers
    assert admin_call(bootstrap, lambda a: a.list_group_offsets("lo-nobody")) == {}


def test_alter_group_offsets_works_only_while_the_group_is_empty(bootstrap):
    make_topic(bootstrap, "ao-topic")
    tp0, tp1 = TopicPartition("ao-topic", 0), TopicPartition("ao-topic", 1)
    with member(bootstrap, "ao-group", "ao-topic", commit={0: 1}):
        with pytest.raises(UnknownMemberIdError, match="only be altered while it is empty"):
            admin_call(bootstrap, lambda a: a.alter_group_offsets("ao-group", {tp0: 4}))
    admin_call(bootstrap, lambda a: a.alter_group_offsets("ao-group", {tp0: 4, tp1: 2}))
    offsets = admin_call(bootstrap, lambda a: a.list_group_offsets("ao-group"))
    assert offsets == {tp0: OffsetAndMetadata(4, -1, ""), tp1: OffsetAndMetadata(2, -1, "")}


def test_delete_groups_refuses_a_group_with_members_and_an_unknown_one(bootstrap):
    make_topic(bootstrap, "del-topic")
    with member(bootstrap, "del-group", "del-topic", commit={0: 2}):
        with pytest.raises(NonEmptyGroupError, match="'del-group' still has members"):
            admin_call(bootstrap, lambda a: a.delete_groups(["del-group"]))
    admin_call(bootstrap, lambda a: a.delete_groups(["del-group"]))
    assert "del-group" not in [g.group_id for g in admin_call(bootstrap, lambda a: a.list_groups())]
    assert admin_call(bootstrap, lambda a: a.list_group_offsets("del-group")) == {}
    with pytest.raises(GroupIdNotFoundError, match="'del-group' does not exist"):
        admin_call(bootstrap, lambda a: a.delete_groups(["del-group"]))


def test_delete_group_offsets_refused_for_a_subscribed_topic(bootstrap):
    make_topic(bootstrap, "do-topic")
    tp0, tp1 = TopicPartition("do-topic", 0), TopicPartition("do-topic", 1)
    with member(bootstrap, "do-group", "do-topic", commit={0: 1, 1: 2}):
        with pytest.raises(GroupSubscribedToTopicError):
            admin_call(bootstrap, lambda a: a.delete_group_offsets("do-group", [tp0]))
    admin_call(bootstrap, lambda a: a.delete_group_offsets("do-group", [tp0]))
    assert list(admin_call(bootstrap, lambda a: a.list_group_offsets("do-group"))) == [tp1]
    with pytest.raises(GroupIdNotFoundError):
        admin_call(bootstrap, lambda a: a.delete_group_offsets("do-nobody", [tp0]))


# -- coordinator errors, against a scripted broker ------------------------------

FIND_COORDINATOR, DESCRIBE_GROUPS = 10, 15


def _stable_group(group_id: str) -> dict:
    assignment = encode_assignment(Assignment([TopicPartition("t", 0)]))
    return {"error_code": 0, "group_id": group_id, "group_state": "Stable", "protocol_type": "consumer",
            "protocol_data": "range", "members": [
                {"member_id": "m-1", "group_instance_id": None, "client_id": "c", "client_host": "/127.0.0.1",
                 "member_metadata": b"", "member_assignment": assignment}]}  # fmt: skip


async def scripted_admin(nursery, answers: dict[int, list[dict]]):
    """An Admin on a fake broker (FindCoordinator v3: one key a request)
    that answers each API from its list in turn, repeating the last."""
    port = 0

    async def script(header, body):
        if header.api_key == 3:
            return _metadata_answer(port)
        queue = answers[header.api_key]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    fake = FakeBroker(script, api_versions={3: (0, 12), 18: (0, 3), FIND_COORDINATOR: (0, 3), DESCRIBE_GROUPS: (0, 5)})
    port = await fake.serve(nursery)
    return fake, Admin(bootstrap_servers=f"127.0.0.1:{port}", default_api_timeout_ms=3000, retry_backoff_ms=10)


def _found(error_code: int = 0) -> dict:
    node = (1, "127.0.0.1") if error_code == 0 else (-1, "")
    return {"throttle_time_ms": 0, "error_code": error_code, "error_message": None,
            "node_id": node[0], "host": node[1], "port": 0}  # fmt: skip


def _described(error_code: int = 0) -> dict:
    return {"throttle_time_ms": 0, "groups": [{**_stable_group("g"), "error_code": error_code}]}


async def test_coordinator_errors_are_retried_after_finding_the_coordinator_again(nursery, autojump_clock):
    fake, admin = await scripted_admin(nursery, {
        FIND_COORDINATOR: [_found(15), _found()],  # COORDINATOR_NOT_AVAILABLE, then node 1
        DESCRIBE_GROUPS: [_described(16), _described(14), _described()],  # NOT_COORDINATOR, LOAD_IN_PROGRESS
    })  # fmt: skip
    async with admin:
        described = await admin.describe_groups(["g"])
    assert described["g"].members[0].assignment == [TopicPartition("t", 0)]
    finds = [h for h, _ in fake.requests if h.api_key == FIND_COORDINATOR]
    assert len(finds) == 4  # once per attempt


async def test_a_coordinator_that_never_answers_times_out_naming_the_error(nursery, autojump_clock):
    fake, admin = await scripted_admin(nursery, {
        FIND_COORDINATOR: [_found()],
        DESCRIBE_GROUPS: [_described(16)],
    })  # fmt: skip
    async with admin:
        with pytest.raises(KafkaTimeoutError, match="DescribeGroups did not finish within 3.0 s: NOT_COORDINATOR"):
            await admin.describe_groups(["g"])


def test_sync_admin_group_methods(bootstrap):
    from riverlog.client.sync import SyncAdmin

    make_topic(bootstrap, "sa-topic")
    tp0 = TopicPartition("sa-topic", 0)
    with member(bootstrap, "sa-group", "sa-topic", commit={0: 2}):
        with SyncAdmin(bootstrap_servers=bootstrap) as admin:
            assert GroupListing("sa-group", "consumer", "Stable") in admin.list_groups()
            assert admin.describe_groups(["sa-group"])["sa-group"].state == "Stable"
    with SyncAdmin(bootstrap_servers=bootstrap) as admin:
        assert admin.list_group_offsets("sa-group")[tp0].offset == 2
        admin.alter_group_offsets("sa-group", {tp0: 4})
        assert admin.list_group_offsets("sa-group", [tp0])[tp0].offset == 4
        admin.delete_groups(["sa-group"])
        with pytest.raises(GroupIdNotFoundError):
            admin.describe_groups(["sa-group"])
        admin.alter_group_offsets("sa-other", {tp0: 1})
        admin.delete_group_offsets("sa-other", [tp0])
        assert admin.list_group_offsets("sa-other") == {}
