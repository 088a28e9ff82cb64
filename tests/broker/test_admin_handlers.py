"""Admin APIs on the wire: CreatePartitions, DescribeConfigs, AlterConfigs,
IncrementalAlterConfigs, DeleteRecords and DescribeCluster."""

from __future__ import annotations

import errno

import pytest

from riverlog.broker.config import BrokerConfig
from riverlog.broker.server import Broker
from riverlog.broker.storage.faults import injected
from riverlog.client.protocol import ErrorCode

from .test_connection import _call, _connect
from .test_produce_fetch import _batch, _produce

TOPIC, BROKER = 2, 4


@pytest.fixture
async def broker(tmp_path, nursery):
    config = BrokerConfig.from_properties(
        {"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path / "data"), "log.retention.ms": "3600000"}
    )
    b = await nursery.start(Broker(config).serve)
    peer = await _connect(b)
    topics = [
        {"name": "t", "num_partitions": 1, "replication_factor": 1},
        {"name": "c", "num_partitions": 1, "replication_factor": 1,
         "configs": [{"name": "cleanup.policy", "value": "compact"}, {"name": "segment.ms", "value": "60000"}]},
    ]  # fmt: skip
    _, body = await _call(peer, 19, 4, {"topics": topics})
    assert [t["error_code"] for t in body["topics"]] == [0, 0]
    return b


async def test_api_versions_advertises_the_admin_ranges(broker):
    peer = await _connect(broker)
    _, body = await _call(peer, 18, 2, {})
    keys = {k["api_key"]: (k["min_version"], k["max_version"]) for k in body["api_keys"]}
    assert keys[37] == (0, 1) and keys[32] == (0, 2) and keys[33] == (0, 1)
    assert keys[44] == (0, 0) and keys[21] == (0, 1) and keys[60] == (0, 2)


# -- CreatePartitions ----------------------------------------------------------------


async def _create_partitions(peer, topics, version=1, validate_only=False):
    request = {"topics": topics, "timeout_ms": 1000, "validate_only": validate_only}
    _, body = await _call(peer, 37, version, request)
    return [(r["name"], r["error_code"]) for r in body["results"]], body


@pytest.mark.parametrize("version", [0, 1])
async def test_create_partitions_raises_the_count(broker, version):
    peer = await _connect(broker)
    results, _ = await _create_partitions(peer, [{"name": "t", "count": 3, "assignments": None}], version)
    assert results == [("t", 0)]
    assert len(broker.image.topics["t"].partitions) == 3
    assert broker.partitions.partition("t", 2) is not None  # the log exists
    _, md = await _call(peer, 3, 1, {"topics": [{"name": "t"}]})
    assert len(md["topics"][0]["partitions"]) == 3


async def test_create_partitions_validate_only_changes_nothing(broker):
    peer = await _connect(broker)
    results, _ = await _create_partitions(peer, [{"name": "t", "count": 4, "assignments": None}], validate_only=True)
    assert results == [("t", 0)]
    assert len(broker.image.topics["t"].partitions) == 1


async def test_create_partitions_errors(broker):
    peer = await _connect(broker)
    results, body = await _create_partitions(peer, [
        {"name": "t", "count": 1, "assignments": None},  # not larger
        {"name": "nope", "count": 2, "assignments": None},
        {"name": "c", "count": 2, "assignments": None},
        {"name": "c", "count": 3, "assignments": None},
    ])  # fmt: skip
    assert results == [
        ("t", ErrorCode.INVALID_PARTITIONS),
        ("nope", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("c", ErrorCode.INVALID_REQUEST),
        ("c", ErrorCode.INVALID_REQUEST),
    ]
    assert all(isinstance(r["error_code"], int) and r["error_message"] for r in body["results"])
    assert len(broker.image.topics["c"].partitions) == 1


async def test_create_partitions_manual_assignments(broker):
    peer = await _connect(broker)
    node = broker.config.node_id
    bad = [
        [{"broker_ids": [node]}],  # two new partitions, one assignment
        [{"broker_ids": [node]}, {"broker_ids": [99]}],  # unknown broker
        [{"broker_ids": [node]}, {"broker_ids": [node, node]}],  # duplicate broker
    ]
    for assignments in bad:
        results, _ = await _create_partitions(peer, [{"name": "t", "count": 3, "assignments": assignments}])
        assert results == [("t", ErrorCode.INVALID_REPLICA_ASSIGNMENT)], assignments
    assert len(broker.image.topics["t"].partitions) == 1
    ok = [{"broker_ids": [node]}, {"broker_ids": [node]}]
    results, _ = await _create_partitions(peer, [{"name": "t", "count": 3, "assignments": ok}])
    assert results == [("t", 0)]
    assert len(broker.image.topics["t"].partitions) == 3


# -- DescribeConfigs -----------------------------------------------------------------


async def _describe(peer, resources, version=1, synonyms=False):
    _, body = await _call(peer, 32, version, {"resources": resources, "include_synonyms": synonyms})
    return body["results"]


def _topic(name, keys=None):
    return {"resource_type": TOPIC, "resource_name": name, "configuration_keys": keys}


@pytest.mark.parametrize("version", [1, 2])
async def test_describe_configs_sources_and_synonyms(broker, version):
    peer = await _connect(broker)
    (result,) = await _describe(peer, [_topic("c")], version, synonyms=True)
    assert result["error_code"] == 0
    configs = {c["name"]: c for c in result["configs"]}
    assert set(configs) == set(broker.config.log_defaults.to_properties())
    policy = configs["cleanup.policy"]
    assert (policy["value"], policy["config_source"], policy["read_only"]) == ("compact", 1, False)
    assert [(s["name"], s["value"], s["source"]) for s in policy["synonyms"]] == [
        ("cleanup.policy", "compact", 1), ("log.cleanup.policy", "delete", 5)
    ]
    retention = configs["retention.ms"]  # set in the broker's config
    assert (retention["value"], retention["config_source"]) == ("3600000", 4)
    assert [s["source"] for s in retention["synonyms"]] == [4, 5]
    assert configs["segment.bytes"]["config_source"] == 5
    (plain,) = await _describe(peer, [_topic("c")], version, synonyms=False)
    assert all(c["synonyms"] == [] for c in plain["configs"])


async def test_describe_configs_v0_and_key_filter(broker):
    peer = await _connect(broker)
    (result,) = await _describe(peer, [_topic("c", ["cleanup.policy", "segment.bytes", "no.such"])], version=0)
    configs = {c["name"]: (c["value"], c["is_default"]) for c in result["configs"]}
    assert configs == {"cleanup.policy": ("compact", False), "segment.bytes": (str(1 << 30), True)}


async def test_describe_configs_errors_and_broker_resource(broker):
    peer = await _connect(broker)
    node = str(broker.config.node_id)
    results = await _describe(peer, [
        _topic("nope"),
        _topic("bad/name"),
        {"resource_type": 8, "resource_name": node, "configuration_keys": None},
        {"resource_type": BROKER, "resource_name": "7", "configuration_keys": None},
        {"resource_type": BROKER, "resource_name": node, "configuration_keys": None},
        {"resource_type": BROKER, "resource_name": "", "configuration_keys": None},
        _topic("t"),
    ])  # fmt: skip
    assert [r["error_code"] for r in results] == [
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.INVALID_TOPIC_EXCEPTION,
        ErrorCode.INVALID_REQUEST, ErrorCode.INVALID_REQUEST, 0, 0, 0,
    ]  # fmt: skip
    assert results[0]["configs"] == [] and results[0]["error_message"]
    configs = {c["name"]: c for c in results[4]["configs"]}
    assert all(c["read_only"] for c in configs.values())
    assert configs["log.retention.ms"]["value"] == "3600000" and configs["log.retention.ms"]["config_source"] == 4
    assert configs["num.partitions"]["config_source"] == 5
    assert results[5]["configs"] == []


# -- AlterConfigs --------------------------------------------------------------------


async def _alter(peer, resources, validate_only=False, version=1):
    _, body = await _call(peer, 33, version, {"resources": resources, "validate_only": validate_only})
    return [r["error_code"] for r in body["responses"]]


def _resource(name, configs, rtype=TOPIC):
    return {"resource_type": rtype, "resource_name": name,
            "configs": [{"name": k, "value": v} for k, v in configs.items()]}  # fmt: skip


@pytest.mark.parametrize("version", [0, 1])
async def test_alter_configs_replaces_the_overrides(broker, version):
    peer = await _connect(broker)
    assert await _alter(peer, [_resource("c", {"retention.ms": "1000"})], version=version) == [0]
    assert dict(broker.image.topics["c"].configs) == {"retention.ms": "1000"}  # the others are gone
    assert broker.partitions.topic_config("c").retention_ms == 1000 and not broker.partitions.topic_config("c").compact
    assert broker.partitions.partition("c", 0)[1].config.retention_ms == 1000  # pushed to the log


async def test_alter_configs_validate_only_and_errors(broker):
    peer = await _connect(broker)
    before = dict(broker.image.topics["c"].configs)
    assert await _alter(peer, [_resource("c", {"retention.ms": "1000"})], validate_only=True) == [0]
    cases = [
        (_resource("nope", {"retention.ms": "1"}), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        (_resource("c", {"retention.ms": "soon"}), ErrorCode.INVALID_CONFIG),
        (_resource("c", {"no.such.config": "1"}), ErrorCode.INVALID_CONFIG),
        (_resource("t", {"cleanup.policy": None}), ErrorCode.INVALID_CONFIG),
        (_resource(str(broker.config.node_id), {"num.partitions": "3"}, BROKER), ErrorCode.INVALID_REQUEST),
        (_resource("x", {}, 8), ErrorCode.INVALID_REQUEST),
    ]
    for resource, code in cases:
        assert await _alter(peer, [resource]) == [code], resource
    dup = await _alter(peer, [_resource("t", {"retention.ms": "1"}), _resource("t", {"retention.ms": "2"})])
    assert dup == [ErrorCode.INVALID_REQUEST, ErrorCode.INVALID_REQUEST]
    assert dict(broker.image.topics["c"].configs) == before
    assert dict(broker.image.topics["t"].configs) == {}


# -- IncrementalAlterConfigs ---------------------------------------------------------


async def _incremental(peer, name, ops, validate_only=False, rtype=TOPIC):
    configs = [{"name": k, "config_operation": op, "value": v} for k, op, v in ops]
    request = {"resources": [{"resource_type": rtype, "resource_name": name, "configs": configs}],
               "validate_only": validate_only}  # fmt: skip
    _, body = await _call(peer, 44, 0, request)
    return body["responses"][0]["error_code"]


async def test_incremental_alter_configs_operations(broker):
    peer = await _connect(broker)
    configs = lambda: dict(broker.image.topics["t"].configs)  # noqa: E731
    assert await _incremental(peer, "t", [("retention.ms", 0, "5000"), ("segment.ms", 0, "70000")]) == 0
    assert configs() == {"retention.ms": "5000", "segment.ms": "70000"}
    assert await _incremental(peer, "t", [("segment.ms", 1, None)]) == 0
    assert configs() == {"retention.ms": "5000"}
    assert await _incremental(peer, "t", [("cleanup.policy", 2, "compact")]) == 0
    assert configs()["cleanup.policy"] == "delete,compact"
    assert await _incremental(peer, "t", [("cleanup.policy", 3, "delete")]) == 0
    assert configs()["cleanup.policy"] == "compact"
    assert await _incremental(peer, "t", [("retention.ms", 0, "1")], validate_only=True) == 0
    assert configs()["retention.ms"] == "5000"


async def test_incremental_alter_configs_errors(broker):
    peer = await _connect(broker)
    node = str(broker.config.node_id)
    cases = [
        ("t", [("retention.ms", 2, "1")], ErrorCode.INVALID_CONFIG),  # append to a non-list config
        ("t", [("retention.ms", 3, "1")], ErrorCode.INVALID_CONFIG),
        ("c", [("cleanup.policy", 3, "compact")], ErrorCode.INVALID_CONFIG),  # would leave it empty
        ("t", [("retention.ms", 0, "-5")], ErrorCode.INVALID_CONFIG),
        ("t", [("no.such", 0, "1")], ErrorCode.INVALID_CONFIG),
        ("t", [("retention.ms", 0, None)], ErrorCode.INVALID_REQUEST),
        ("t", [("retention.ms", 9, "1")], ErrorCode.INVALID_REQUEST),
        ("t", [("retention.ms", 0, "1"), ("retention.ms", 1, None)], ErrorCode.INVALID_REQUEST),
        ("nope", [("retention.ms", 0, "1")], ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("nope", [("cleanup.policy", 2, "compact")], ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ]
    for name, ops, code in cases:
        assert await _incremental(peer, name, ops) == code, (name, ops)
    assert await _incremental(peer, node, [("num.partitions", 0, "3")], rtype=BROKER) == ErrorCode.INVALID_REQUEST
    assert await _incremental(peer, "x", [("a", 0, "3")], rtype=8) == ErrorCode.INVALID_REQUEST
    assert dict(broker.image.topics["t"].configs) == {}


# -- DeleteRecords -------------------------------------------------------------------


async def _delete_records(peer, topic, partitions, version=1):
    request = {"topics": [{"name": topic, "partitions": [{"partition_index": p, "offset": o} for p, o in partitions]}],
               "timeout_ms": 1000}  # fmt: skip
    _, body = await _call(peer, 21, version, request)
    return [(p["low_watermark"], p["error_code"]) for p in body["topics"][0]["partitions"]]


async def _earliest(peer, topic="t"):
    request = {"replica_id": -1, "isolation_level": 0,
               "topics": [{"name": topic, "partitions": [{"partition_index": 0, "timestamp": -2}]}]}  # fmt: skip
    _, body = await _call(peer, 2, 2, request)
    return body["topics"][0]["partitions"][0]["offset"]


@pytest.mark.parametrize("version", [0, 1])
async def test_delete_records_moves_the_log_start(broker, version):
    peer = await _connect(broker)
    assert (await _produce(peer, _batch(5)))["error_code"] == 0
    assert await _delete_records(peer, "t", [(0, 2)], version) == [(2, 0)]
    assert await _earliest(peer) == 2
    assert await _delete_records(peer, "t", [(0, 1)], version) == [(2, 0)]  # never backwards
    assert await _delete_records(peer, "t", [(0, -1)], version) == [(5, 0)]  # -1: the high watermark
    assert await _earliest(peer) == 5
    assert (await _produce(peer, _batch(1)))["base_offset"] == 5


async def test_delete_records_errors(broker):
    peer = await _connect(broker)
    assert (await _produce(peer, _batch(3)))["error_code"] == 0
    assert await _delete_records(peer, "t", [(0, 4), (0, -2), (1, 0)]) == [
        (-1, ErrorCode.OFFSET_OUT_OF_RANGE), (-1, ErrorCode.OFFSET_OUT_OF_RANGE),
        (-1, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ]  # fmt: skip
    assert await _delete_records(peer, "nope", [(0, 0)]) == [(-1, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
    assert await _delete_records(peer, "c", [(0, 0)]) == [(-1, ErrorCode.POLICY_VIOLATION)]  # compact only
    assert await _earliest(peer) == 0


async def test_delete_records_on_a_full_disk_answers_storage_error_and_keeps_the_connection(broker):
    peer = await _connect(broker)
    assert (await _produce(peer, _batch(3)))["error_code"] == 0
    with injected("replace", errno.ENOSPC):  # the leader-epoch checkpoint cannot be rewritten
        assert await _delete_records(peer, "t", [(0, 2)]) == [(-1, ErrorCode.KAFKA_STORAGE_ERROR)]
    assert await _delete_records(peer, "t", [(0, 2)]) == [(-1, ErrorCode.KAFKA_STORAGE_ERROR)]  # offline now
    assert (await _produce(peer, _batch(1)))["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR


# -- DescribeCluster -----------------------------------------------------------------


async def test_describe_cluster(broker):
    peer = await _connect(broker)
    _, body = await _call(peer, 60, 0, {"include_cluster_authorized_operations": False})
    assert body["error_code"] == 0
    assert body["cluster_id"] == broker.image.cluster_id
    assert body["controller_id"] == broker.config.node_id
    assert body["brokers"] == [
        {"broker_id": broker.config.node_id, "host": "127.0.0.1", "port": broker.port, "rack": None,
         "is_fenced": False}  # (the v2 field's default: v0 does not carry it)
    ]


async def test_describe_cluster_v2_lists_fenced_brokers_when_asked(broker):
    import uuid

    result, _ = await broker.controller.register(2, uuid.uuid4().hex, "127.0.0.1", 9999, None)  # fenced until it beats
    assert result.error_code == 0
    peer = await _connect(broker)
    asked = {"include_cluster_authorized_operations": False, "endpoint_type": 1}
    _, body = await _call(peer, 60, 2, {**asked, "include_fenced_brokers": True})
    assert [(b["broker_id"], b["is_fenced"]) for b in body["brokers"]] == [(broker.config.node_id, False), (2, True)]
    _, body = await _call(peer, 60, 2, {**asked, "include_fenced_brokers": False})
    assert [b["broker_id"] for b in body["brokers"]] == [broker.config.node_id]
