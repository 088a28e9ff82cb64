import os
from pathlib import Path

import pytest
import trio
import trio.testing

from riverlog.broker.metadata.decisions import TopicDefaults
from riverlog.broker.controller.raft_store import METADATA_DIR
from riverlog.broker.metadata.controller import NotControllerError
from riverlog.broker.metadata.image_machine import encode_entry
from riverlog.broker.metadata.records import ProducerIdsRecord
from riverlog.client.protocol.errors import ErrorCode as E


def codes(results):
    return [(r.name, r.error_code) for r in results]


async def test_start_registers_this_broker(make_controller):
    c = await make_controller(node_id=7)
    b = c.image.brokers[7]
    assert (b.host, b.port, b.fenced) == ("127.0.0.1", 9092, False)
    assert c.image.controller_id == 7 and c.image.cluster_id == "test-cluster"


async def test_create_topic_places_replicas_and_leaders(make_controller):
    c = await make_controller()
    for n in (2, 3):
        await c.register_broker(n, "h", 9000 + n)
    [r] = await c.create_topics([("orders", 6, 2, {"retention.ms": "1000"})])
    assert r.error_code == E.NONE and r.num_partitions == 6 and r.replication_factor == 2
    t = c.image.topics["orders"]
    assert t.topic_id == r.topic_id and c.image.topics_by_id[r.topic_id] is t
    assert dict(t.configs) == {"retention.ms": "1000"}
    leaders = [t.partitions[p].leader for p in range(6)]
    assert sorted(leaders) == [1, 1, 2, 2, 3, 3]
    for p in t.partitions.values():
        assert len(set(p.replicas)) == 2 and p.isr == p.replicas and p.leader == p.replicas[0]
        assert p.leader_epoch == 0 and p.partition_epoch == 0


async def test_minus_one_means_the_broker_defaults(make_controller):
    c = await make_controller(defaults=TopicDefaults(num_partitions=3, replication_factor=1))
    [r] = await c.create_topics([("t", -1, -1, {})])
    assert (r.error_code, r.num_partitions, r.replication_factor) == (E.NONE, 3, 1)
    assert len(c.image.topics["t"].partitions) == 3


@pytest.mark.parametrize(
    "request_, code",
    [
        (("", 1, 1, {}), E.INVALID_TOPIC_EXCEPTION),
        ((".", 1, 1, {}), E.INVALID_TOPIC_EXCEPTION),
        (("..", 1, 1, {}), E.INVALID_TOPIC_EXCEPTION),
        (("a" * 250, 1, 1, {}), E.INVALID_TOPIC_EXCEPTION),
        (("bad name", 1, 1, {}), E.INVALID_TOPIC_EXCEPTION),
        (("bäd", 1, 1, {}), E.INVALID_TOPIC_EXCEPTION),
        (("exists", 1, 1, {}), E.TOPIC_ALREADY_EXISTS),
        (("ex.ists", 1, 1, {}), E.INVALID_TOPIC_EXCEPTION),  # collides with ex_ists
        (("t", 0, 1, {}), E.INVALID_PARTITIONS),
        (("t", -2, 1, {}), E.INVALID_PARTITIONS),
        (("t", 1, 0, {}), E.INVALID_REPLICATION_FACTOR),
        (("t", 1, 2, {}), E.INVALID_REPLICATION_FACTOR),  # one broker
        (("t", 1, 1, {"no.such.config": "1"}), E.INVALID_CONFIG),
        (("t", 1, 1, {"segment_bytes": "1048576"}), E.INVALID_CONFIG),
        (("t", 1, 1, {"retention.ms": "soon"}), E.INVALID_CONFIG),
        (("t", 1, 1, {"segment.bytes": "1"}), E.INVALID_CONFIG),
        (("t", 1, 1, {"cleanup.policy": "forever"}), E.INVALID_CONFIG),
        (("t", 1, 1, {"retention.ms": None}), E.INVALID_CONFIG),
        (("__cluster_metadata", 1, 1, {}), E.INVALID_REQUEST),
    ],
)
async def test_create_topics_refuses_bad_input_with_kafkas_code(make_controller, request_, code):
    c = await make_controller()
    await c.create_topics([("exists", 1, 1, {}), ("ex_ists", 1, 1, {})])
    before_offset = c.image.offset
    [r] = await c.create_topics([request_])
    assert r.error_code == code and r.error_message
    assert c.image.offset == before_offset
    assert c.driver.core.log_end_offset == before_offset + 1


async def test_max_length_name_is_accepted(make_controller):
    c = await make_controller()
    assert codes(await c.create_topics([("a" * 249, 1, 1, {})])) == [("a" * 249, E.NONE)]


async def test_duplicate_names_in_one_request_are_invalid_request(make_controller):
    c = await make_controller()
    rs = await c.create_topics([("t", 1, 1, {}), ("u", 1, 1, {}), ("t", 2, 1, {})])
    assert codes(rs) == [("t", E.INVALID_REQUEST), ("u", E.NONE), ("t", E.INVALID_REQUEST)]
    assert set(c.image.topics) == {"u"}


async def test_validate_only_appends_nothing(make_controller):
    c = await make_controller()
    end = c.driver.core.log_end_offset
    [r] = await c.create_topics([("t", 3, 1, {"retention.ms": "5"})], validate_only=True)
    assert r.error_code == E.NONE and r.num_partitions == 3
    assert c.driver.core.log_end_offset == end and "t" not in c.image.topics
    await c.create_topics([("u", 1, 1, {})])
    assert codes(await c.create_partitions([("u", 4)], validate_only=True)) == [("u", E.NONE)]
    assert (await c.alter_configs("u", {"retention.ms": "9"}, validate_only=True)).error_code == E.NONE
    assert len(c.image.topics["u"].partitions) == 1 and dict(c.image.topics["u"].configs) == {}


async def test_delete_topics(make_controller):
    c = await make_controller()
    [created] = await c.create_topics([("t", 2, 1, {})])
    rs = await c.delete_topics(["t", "nope"])
    assert codes(rs) == [("t", E.NONE), ("nope", E.UNKNOWN_TOPIC_OR_PARTITION)]
    assert rs[0].topic_id == created.topic_id
    assert "t" not in c.image.topics and created.topic_id not in c.image.topics_by_id
    assert codes(await c.delete_topics(["x", "x"])) == [("x", E.INVALID_REQUEST)] * 2
    # the name is free again, under a new id
    [again] = await c.create_topics([("t", 1, 1, {})])
    assert again.error_code == E.NONE and again.topic_id != created.topic_id


async def test_create_partitions_must_grow(make_controller):
    c = await make_controller()
    await c.register_broker(2, "h", 2)
    await c.create_topics([("t", 2, 2, {})])
    assert codes(await c.create_partitions([("t", 5)])) == [("t", E.NONE)]
    parts = c.image.topics["t"].partitions
    assert sorted(parts) == [0, 1, 2, 3, 4]
    assert all(len(p.replicas) == 2 for p in parts.values())
    assert sorted(p.leader for p in parts.values()).count(1) in (2, 3)
    assert codes(await c.create_partitions([("t", 5)])) == [("t", E.INVALID_PARTITIONS)]
    assert codes(await c.create_partitions([("t", 3)])) == [("t", E.INVALID_PARTITIONS)]
    assert codes(await c.create_partitions([("nope", 3)])) == [("nope", E.UNKNOWN_TOPIC_OR_PARTITION)]
    assert codes(await c.create_partitions([("t", 6), ("t", 7)])) == [("t", E.INVALID_REQUEST)] * 2


async def test_incremental_alter_configs_sets_and_deletes(make_controller):
    c = await make_controller()
    await c.create_topics([("t", 1, 1, {"retention.ms": "1000", "segment.bytes": "1048576"})])
    r = await c.alter_configs("t", {"retention.ms": "2000", "segment.bytes": None, "cleanup.policy": "compact"})
    assert r.error_code == E.NONE
    assert dict(c.image.topics["t"].configs) == {"retention.ms": "2000", "cleanup.policy": "compact"}
    assert (await c.alter_configs("t", {"retention.ms": "x"})).error_code == E.INVALID_CONFIG
    assert (await c.alter_configs("t", {"bogus": None})).error_code == E.INVALID_CONFIG
    assert (await c.alter_configs("nope", {"retention.ms": "1"})).error_code == E.UNKNOWN_TOPIC_OR_PARTITION
    assert dict(c.image.topics["t"].configs) == {"retention.ms": "2000", "cleanup.policy": "compact"}
    end = c.driver.core.log_end_offset
    assert (await c.alter_configs("t", {"retention.ms": "2000"})).error_code == E.NONE  # no change, no append
    assert c.driver.core.log_end_offset == end


async def test_replace_configs_replaces_the_whole_set(make_controller):
    c = await make_controller()
    await c.create_topics([("t", 1, 1, {"retention.ms": "1000", "segment.bytes": "1048576"})])
    assert (await c.replace_configs("t", {"cleanup.policy": "compact"})).error_code == E.NONE
    assert dict(c.image.topics["t"].configs) == {"cleanup.policy": "compact"}
    assert (await c.replace_configs("t", {"segment.bytes": "1"})).error_code == E.INVALID_CONFIG
    assert dict(c.image.topics["t"].configs) == {"cleanup.policy": "compact"}


async def test_listeners_see_old_and_new_images(make_controller):
    c = await make_controller()
    seen = []
    unsubscribe = c.on_change(lambda old, new: seen.append((old, new)))
    before = c.image
    await c.create_topics([("t", 1, 1, {})])
    assert len(seen) == 1
    old, new = seen[0]
    assert old is before and new is c.image and "t" in new.topics and "t" not in old.topics
    await c.create_topics([("t", 1, 1, {})], validate_only=True)
    await c.create_topics([("bad name", 1, 1, {})])
    assert len(seen) == 1  # nothing applied, nobody told
    unsubscribe()
    await c.delete_topics(["t"])
    assert len(seen) == 1


async def test_restart_replays_to_an_identical_image(make_controller):
    c = await make_controller()
    await c.create_topics([("a", 3, 1, {"retention.ms": "1"}), ("b", 1, 1, {})])
    await c.create_partitions([("b", 4)])
    await c.alter_configs("a", {"retention.ms": None, "segment.ms": "100"})
    await c.delete_topics(["b"])
    await c.create_topics([("c", 2, 1, {})])
    image, epoch = c.image, c.driver.core.epoch
    await c.close()
    again = await make_controller()
    assert again.image == image  # same ids, partitions, configs, offset
    assert again.driver.core.epoch == epoch + 1  # a new leader epoch after a restart


async def test_torn_tail_loses_only_the_last_append(make_controller, tmp_path):
    c = await make_controller()
    await c.create_topics([("kept", 1, 1, {})])
    kept = c.image
    await c.create_topics([("torn", 1, 1, {})])
    await c.close()
    [log_file] = sorted((tmp_path / METADATA_DIR).glob("*.log"))
    os.truncate(log_file, log_file.stat().st_size - 5)  # into the last entry
    again = await make_controller()
    assert "torn" not in again.image.topics
    assert again.image.topics == kept.topics
    assert codes(await again.create_topics([("torn", 1, 1, {})])) == [("torn", E.NONE)]


async def test_partitions_beyond_the_cluster_limit_are_refused(make_controller):
    from riverlog.client.protocol import ErrorCode

    controller = await make_controller(defaults=TopicDefaults(max_partitions=10))
    (huge,) = await controller.create_topics([("huge", 2**31 - 1, 1, {})])
    assert huge.error_code == ErrorCode.INVALID_PARTITIONS and "riverlog.max.partitions" in huge.error_message
    ok, over = await controller.create_topics([("a", 6, 1, {}), ("b", 5, 1, {})])
    assert ok.error_code == ErrorCode.NONE and over.error_code == ErrorCode.INVALID_PARTITIONS
    (grow,) = await controller.create_partitions([("a", 11)])
    assert grow.error_code == ErrorCode.INVALID_PARTITIONS
    (fits,) = await controller.create_partitions([("a", 10)])
    assert fits.error_code == ErrorCode.NONE
    assert set(controller.image.topics) == {"a"} and len(controller.image.topics["a"].partitions) == 10


async def test_producer_id_blocks_are_committed_and_a_restarted_controller_continues_after_them(make_controller):
    c = await make_controller()
    epoch = c.image.brokers[1].epoch
    first = await c.allocate_producer_ids(1, epoch)
    second = await c.allocate_producer_ids(1, epoch)
    assert (first.error_code, first.producer_id_start, second.producer_id_start) == (E.NONE, 0, 1000)
    assert c.image.next_producer_id == 2000  # committed and applied before the answer
    stale = await c.allocate_producer_ids(1, epoch + 1)
    assert stale.error_code == E.STALE_BROKER_EPOCH and c.image.next_producer_id == 2000
    await c.close()
    again = await make_controller()
    third = await again.allocate_producer_ids(1, again.image.brokers[1].epoch)
    assert third.producer_id_start == 2000


def stall_proposer(c):
    """Hold the driver's proposer before it appends what is proposed from now
    on (as a slow fsync or a slow quorum would); returns the release."""
    held = c.driver._proposal_wake  # the event the proposer task is waiting on
    c.driver._proposal_wake = trio.Event()  # proposals set this one: nobody waits on it
    return held.set


async def test_an_operation_cancelled_while_committing_holds_off_the_next_decision(make_controller, nursery):
    # ControllerChannel.send gives up after controller.quorum.request.timeout.ms and
    # cancels the operation, with its entry already proposed. The next operation
    # must not decide on an image without that entry: before, it answered NONE for
    # a second "t" whose entry was then skipped on apply (the topic has 1 partition).
    c = await make_controller()
    release = stall_proposer(c)
    with trio.move_on_after(0.5):
        await c.create_topics([("t", 1, 1, {})])
    assert "t" not in c.image.topics  # cancelled with its entry in flight
    answers = []

    async def second():
        answers.append(await c.create_topics([("t", 3, 1, {})]))

    nursery.start_soon(second)
    await trio.testing.wait_all_tasks_blocked()
    release()
    with trio.fail_after(10):
        while not answers:
            await trio.sleep(0.01)
    [r] = answers[0]
    assert len(c.image.topics["t"].partitions) == 1
    assert r.error_code == E.TOPIC_ALREADY_EXISTS


async def test_an_operation_whose_entry_is_skipped_on_apply_is_not_answered_success(make_controller, nursery):
    # An entry the controller did not write (a bug's, say) lands first and makes
    # the controller's own entry not apply: it is skipped on every node, so its
    # operation must not answer NONE; it is retried on the image that has it.
    c = await make_controller()
    epoch = c.image.brokers[1].epoch
    release = stall_proposer(c)
    foreign = ProducerIdsRecord(1, epoch, 5000)
    nursery.start_soon(c.driver.propose, [encode_entry([foreign])])
    await trio.testing.wait_all_tasks_blocked()
    outcome = []

    async def allocate():
        try:
            outcome.append(await c.allocate_producer_ids(1, epoch))
        except NotControllerError as exc:
            outcome.append(exc)

    nursery.start_soon(allocate)
    await trio.testing.wait_all_tasks_blocked()
    release()
    with trio.fail_after(10):
        while not outcome:
            await trio.sleep(0.01)
    assert c.image.next_producer_id == 5000  # the controller's own block [0, 1000) did not apply
    assert isinstance(outcome[0], NotControllerError), outcome[0]
    retried = await c.allocate_producer_ids(1, epoch)
    assert (retried.error_code, retried.producer_id_start) == (E.NONE, 5000)
