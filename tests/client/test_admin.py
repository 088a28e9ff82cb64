"""The admin client against a real broker process: every operation, and the
errors a user meets (the topic exists, does not exist, bad counts, bad
config values)."""

from __future__ import annotations

import pytest
import trio

from riverlog.client.admin import Admin, ConfigSource, NewTopic
from riverlog.client.connection import BrokerConnection
from riverlog.client.errors import ClosedError, KafkaConnectionError, KafkaTimeoutError, UnsupportedVersionError
from riverlog.client.protocol.errors import (
    InvalidConfigError,
    InvalidPartitionsError,
    OffsetOutOfRangeError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from riverlog.client.records import build_batch
from riverlog.client.types import TopicPartition
from tests.client.test_connection import FakeBroker
from tests.integration.broker_process import free_port

PRODUCE = 0


def admin(bootstrap: str, **options) -> Admin:
    return Admin(bootstrap_servers=bootstrap, default_api_timeout_ms=10_000, **options)


async def produce(a: Admin, topic: str, partition: int, count: int) -> None:
    """Append `count` records with a plain Produce request (no producer needed)."""
    info = await a.cluster.topic(topic)
    conn = await a.cluster.connection(info.partitions[partition].leader)
    batch = build_batch([(b"k", b"v%d" % i, 1_700_000_000_000 + i, ()) for i in range(count)])
    body = {"acks": -1, "timeout_ms": 10_000,
            "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": batch}]}]}  # fmt: skip
    response = await conn.request(PRODUCE, body, version=conn.version_for(PRODUCE, min_version=3))
    assert response["responses"][0]["partition_responses"][0]["error_code"] == 0


def without_api(monkeypatch, api_key: int) -> None:
    """Make every connection look like a broker that lacks `api_key`."""
    original = BrokerConnection.version_for

    def version_for(self, key, min_version=0, max_version=None):
        if key == api_key:
            raise UnsupportedVersionError(f"no api {key} here")
        return original(self, key, min_version, max_version)

    monkeypatch.setattr(BrokerConnection, "version_for", version_for)


# -- create / describe / list / delete topics ---------------------------------


async def test_created_topic_is_described_with_its_partitions(bootstrap):
    async with admin(bootstrap) as a:
        await a.create_topics([NewTopic("described", num_partitions=3, replication_factor=1)])
        (desc,) = (await a.describe_topics(["described"])).values()
    assert desc.name == "described" and not desc.internal
    assert [p.partition for p in desc.partitions] == [0, 1, 2]
    for p in desc.partitions:
        assert p.leader >= 0 and p.replicas == [p.leader] and p.isr == [p.leader]


async def test_minus_one_counts_take_the_broker_defaults(bootstrap):
    async with admin(bootstrap) as a:
        await a.create_topics([NewTopic("defaults")])
        desc = (await a.describe_topics(["defaults"]))["defaults"]
    assert len(desc.partitions) == 1 and len(desc.partitions[0].replicas) == 1


async def test_creating_an_existing_topic_raises_topic_already_exists(bootstrap):
    async with admin(bootstrap) as a:
        await a.create_topics([NewTopic("twice", 1, 1)])
        with pytest.raises(TopicAlreadyExistsError, match=r"^TOPIC_ALREADY_EXISTS: .*'twice' already exists"):
            await a.create_topics([NewTopic("twice", 1, 1)])


async def test_invalid_partition_count_and_config_value_are_refused(bootstrap):
    async with admin(bootstrap) as a:
        with pytest.raises(InvalidPartitionsError, match="INVALID_PARTITIONS"):
            await a.create_topics([NewTopic("zero-partitions", 0, 1)])
        with pytest.raises(InvalidConfigError, match="retention.ms"):
            await a.create_topics([NewTopic("bad-config", 1, 1, {"retention.ms": "soon"})])
        assert not {"zero-partitions", "bad-config"} & set(await a.list_topics())


async def test_validate_only_checks_but_creates_nothing(bootstrap):
    async with admin(bootstrap) as a:
        await a.create_topics([NewTopic("validated", 2, 1)], validate_only=True)
        assert "validated" not in await a.list_topics()
        with pytest.raises(InvalidConfigError):
            await a.create_topics([NewTopic("validated", 2, 1, {"retention.ms": "x"})], validate_only=True)


async def test_with_several_topics_the_rest_succeed_and_the_first_error_is_raised(bootstrap):
    async with admin(bootstrap) as a:
        await a.create_topics([NewTopic("multi-existing", 1, 1)])
        batch = [NewTopic("multi-a", 1, 1), NewTopic("multi-existing", 1, 1), NewTopic("multi-bad", 0, 1)]
        with pytest.raises(TopicAlreadyExistsError):
            await a.create_topics(batch)
        topics = await a.list_topics()
    assert "multi-a" in topics and "multi-bad" not in topics


async def test_list_topics_lists_created_and_forgets_deleted(bootstrap):
    async with admin(bootstrap) as a:
        await a.create_topics([NewTopic("listed-1", 1, 1), NewTopic("listed-2", 2, 1)])
        topics = await a.list_topics()
        assert {"listed-1", "listed-2"} <= set(topics) and topics == sorted(topics)
        await a.delete_topics(["listed-1"])
        topics = await a.list_topics()
    assert "listed-1" not in topics and "listed-2" in topics


async def test_unknown_topics_raise_unknown_topic_at_once(bootstrap):
    async with admin(bootstrap) as a:
        with trio.fail_after(5):  # not retried to the 10 s deadline
            with pytest.raises(UnknownTopicOrPartitionError, match="'missing' does not exist"):
                await a.describe_topics(["missing"])
            with pytest.raises(UnknownTopicOrPartitionError):
                await a.delete_topics(["missing"])
            with pytest.raises(UnknownTopicOrPartitionError):
                await a.describe_configs("missing")
            with pytest.raises(UnknownTopicOrPartitionError):
                await a.list_offsets({TopicPartition("missing", 0): "latest"})
            with pytest.raises(UnknownTopicOrPartitionError):
                await a.create_partitions({"missing": 3})


async def test_describe_topics_with_no_names_describes_every_topic(bootstrap):
    async with admin(bootstrap) as a:
        await a.create_topics([NewTopic("every-1", 1, 1)])
        described = await a.describe_topics()
    assert "every-1" in described


# -- partitions ---------------------------------------------------------------


async def test_create_partitions_grows_to_the_new_total(bootstrap):
    async with admin(bootstrap) as a:
        await a.create_topics([NewTopic("growing", 1, 1)])
        await a.create_partitions({"growing": 2}, validate_only=True)
        assert len((await a.describe_topics(["growing"]))["growing"].partitions) == 1
        await a.create_partitions({"growing": 3})
        assert len((await a.describe_topics(["growing"]))["growing"].partitions) == 3


async def test_create_partitions_cannot_shrink(bootstrap):
    async with admin(bootstrap) as a:
        await a.create_topics([NewTopic("shrinking", 3, 1)])
        with pytest.raises(InvalidPartitionsError, match="INVALID_PARTITIONS"):
            await a.create_partitions({"shrinking": 2})


# -- configs ------------------------------------------------------------------


async def test_describe_configs_tells_overrides_from_defaults(bootstrap):
    async with admin(bootstrap) as a:
        await a.create_topics([NewTopic("configured", 1, 1, {"retention.ms": "60000"})])
        configs = await a.describe_configs("configured")
    override = configs["retention.ms"]
    assert override.value == "60000" and override.source == ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert not override.is_default and not override.sensitive
    assert configs["segment.bytes"].is_default and configs["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG


async def test_alter_configs_sets_and_deletes_and_keeps_the_rest(bootstrap):
    async with admin(bootstrap) as a:
        await a.create_topics([NewTopic("altered", 1, 1, {"retention.ms": "60000", "segment.ms": "3600000"})])
        await a.alter_configs("altered", set={"max.message.bytes": "2000000"}, delete=["retention.ms"])
        configs = await a.describe_configs("altered")
    assert configs["max.message.bytes"].value == "2000000" and not configs["max.message.bytes"].is_default
    assert configs["retention.ms"].is_default
    assert configs["segment.ms"].value == "3600000" and not configs["segment.ms"].is_default


async def test_alter_configs_refuses_an_invalid_value(bootstrap):
    async with admin(bootstrap) as a:
        await a.create_topics([NewTopic("altered-bad", 1, 1)])
        with pytest.raises(InvalidConfigError, match="retention.ms"):
            await a.alter_configs("altered-bad", set={"retention.ms": "forever"})
        assert (await a.describe_configs("altered-bad"))["retention.ms"].is_default


async def test_alter_configs_without_incremental_api_keeps_other_overrides(bootstrap, monkeypatch):
    # AlterConfigs replaces every override: the client must read, modify, write.
    without_api(monkeypatch, 44)
    async with admin(bootstrap) as a:
        await a.create_topics([NewTopic("legacy-alter", 1, 1, {"retention.ms": "60000", "segment.ms": "3600000"})])
        await a.alter_configs("legacy-alter", set={"max.message.bytes": "2000000"}, delete=["segment.ms"])
        configs = await a.describe_configs("legacy-alter")
    assert configs["retention.ms"].value == "60000" and not configs["retention.ms"].is_default
    assert configs["max.message.bytes"].value == "2000000"
    assert configs["segment.ms"].is_default


# -- offsets and records ------------------------------------------------------


async def test_list_offsets_earliest_and_latest(bootstrap):
    tp = TopicPartition("offsets", 1)
    async with admin(bootstrap) as a:
        await a.create_topics([NewTopic("offsets", 2, 1)])
        await produce(a, "offsets", 1, 5)
        found = await a.list_offsets({tp: "earliest", TopicPartition("offsets", 0): "latest"})
        assert found[tp].offset == 0 and found[TopicPartition("offsets", 0)].offset == 0
        assert (await a.list_offsets({tp: "latest"}))[tp].offset == 5


async def test_delete_records_moves_the_earliest_offset(bootstrap):
    tp = TopicPartition("trimmed", 0)
    async with admin(bootstrap) as a:
        await a.create_topics([NewTopic("trimmed", 1, 1)])
        await produce(a, "trimmed", 0, 10)
        assert await a.delete_records({tp: 4}) == {tp: 4}
        assert (await a.list_offsets({tp: "earliest"}))[tp].offset == 4
        assert await a.delete_records({tp: -1}) == {tp: 10}  # -1: up to the high watermark
        assert (await a.list_offsets({tp: "earliest"}))[tp].offset == 10


async def test_delete_records_past_the_high_watermark_is_out_of_range(bootstrap):
    async with admin(bootstrap) as a:
        await a.create_topics([NewTopic("trim-past", 1, 1)])
        await produce(a, "trim-past", 0, 2)
        with pytest.raises(OffsetOutOfRangeError):
            await a.delete_records({TopicPartition("trim-past", 0): 3})
        with pytest.raises(UnknownTopicOrPartitionError):
            await a.delete_records({TopicPartition("trim-past", 7): 0})


# -- cluster ------------------------------------------------------------------


async def test_describe_cluster_names_the_cluster_controller_and_brokers(bootstrap):
    port = int(bootstrap.rsplit(":", 1)[1])
    async with admin(bootstrap) as a:
        desc = await a.describe_cluster()
    assert desc.cluster_id
    assert [(b.host, b.port) for b in desc.brokers] == [("127.0.0.1", port)]
    assert desc.controller_id == desc.brokers[0].node_id


async def test_describe_quorum_names_the_leader_and_its_voters(bootstrap):
    async with admin(bootstrap) as a:
        desc = await a.describe_cluster()
        quorum = await a.describe_quorum()
    (broker,) = desc.brokers
    assert quorum["leader_id"] == broker.node_id and quorum["leader_epoch"] >= 1
    assert [v["replica_id"] for v in quorum["current_voters"]] == [broker.node_id]
    assert quorum["current_voters"][0]["log_end_offset"] >= quorum["high_watermark"] >= 1


async def test_describe_cluster_falls_back_to_metadata(bootstrap, monkeypatch):
    async with admin(bootstrap) as a:
        expected = await a.describe_cluster()
    without_api(monkeypatch, 60)
    async with admin(bootstrap) as a:
        assert await a.describe_cluster() == expected


# -- the client itself --------------------------------------------------------


async def test_an_unreachable_cluster_fails_within_the_timeout():
    bootstrap = f"127.0.0.1:{free_port()}"
    with trio.fail_after(5):
        async with Admin(bootstrap_servers=bootstrap, default_api_timeout_ms=500) as a:
            with pytest.raises(KafkaConnectionError, match="no broker reachable"):
                await a.list_topics()
            with pytest.raises(KafkaConnectionError, match="no broker reachable"):
                await a.create_topics([NewTopic("never", 1, 1)], timeout_ms=500)


async def test_admin_must_be_opened_first(bootstrap):
    with pytest.raises(ClosedError):
        await admin(bootstrap).list_topics()


# -- controller routing and retries, against a scripted broker ------------------


def scripted_controller(create_errors: list[int]):
    """A one-node fake cluster that answers CreateTopics with the next code
    in `create_errors` (the last one over and over)."""

    async def script(header, body):
        if header.api_key == 3:  # Metadata
            return {"throttle_time_ms": 0, "brokers": [{"node_id": 1, "host": "127.0.0.1", "port": fake.port}],
                    "cluster_id": "c", "controller_id": 1, "topics": []}  # fmt: skip
        code = create_errors.pop(0) if len(create_errors) > 1 else create_errors[0]
        topics = [{"name": t["name"], "error_code": code, "error_message": None} for t in body["topics"]]
        return {"throttle_time_ms": 0, "topics": topics}

    fake = FakeBroker(script, api_versions={3: (0, 12), 18: (0, 3), 19: (0, 4)})
    return fake


async def test_not_controller_refreshes_metadata_and_resends(nursery, autojump_clock):
    fake = scripted_controller([41, 0])  # NOT_CONTROLLER, then created
    fake.port = await fake.serve(nursery)
    async with Admin(bootstrap_servers=f"127.0.0.1:{fake.port}") as a:
        await a.create_topics([NewTopic("moved", 1, 1)])
    kinds = [header.api_key for header, _ in fake.requests if header.api_key != 18]
    assert kinds == [3, 19, 3, 19]


async def test_a_retriable_error_is_retried_until_the_timeout(nursery, autojump_clock):
    fake = scripted_controller([89])  # THROTTLING_QUOTA_EXCEEDED, forever
    fake.port = await fake.serve(nursery)
    async with Admin(bootstrap_servers=f"127.0.0.1:{fake.port}") as a:
        start = trio.current_time()
        with pytest.raises(KafkaTimeoutError, match="CreateTopics did not finish within 5.0 s.*THROTTLING"):
            await a.create_topics([NewTopic("throttled", 1, 1)], timeout_ms=5000)
        # It gives up when the next backoff would pass the deadline: that
        # backoff is at most retry_backoff_max_ms (1 s) plus 20% jitter.
        assert 5 - 1.2 <= trio.current_time() - start <= 5.5
    assert sum(header.api_key == 19 for header, _ in fake.requests) > 3
