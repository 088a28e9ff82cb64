"""Broker configuration: Kafka's names, defaults and precedence; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from riverlog.broker.config import BrokerConfig, load_properties
from riverlog.broker.storage.log_config import ConfigError, LogConfig


def test_defaults_are_a_single_local_broker():
    config = BrokerConfig()
    assert config.listener == ("127.0.0.1", 9092) and config.advertised == ("127.0.0.1", 9092)
    assert config.num_partitions == 1 and config.auto_create_topics_enable
    assert config.socket_request_max_bytes == 104857600
    assert config.log_defaults == LogConfig()


def test_a_server_properties_file_loads_with_kafka_names(tmp_path):
    path = tmp_path / "server.properties"
    path.write_text(
        "# a Kafka-style file\n"
        "node.id=3\n"
        "listeners=PLAINTEXT://0.0.0.0:19092\n"
        "advertised.listeners=PLAINTEXT://broker3.local:19092\n"
        "log.dirs=/data/a, /data/b\n"
        "num.partitions=6\n"
        "auto.create.topics.enable=false\n"
        "log.retention.hours=24\n"
        "log.segment.bytes=1048576\n"
        "log.flush.interval.messages=1\n"
        "message.max.bytes=2000000\n"
        "zookeeper.connect=localhost:2181\n"  # unknown here: ignored, not fatal
        "! another comment style\n"
    )
    config = BrokerConfig.from_properties(load_properties(path))
    assert config.node_id == 3
    assert config.listener == ("0.0.0.0", 19092)
    assert config.advertised == ("broker3.local", 19092)
    assert config.log_dirs == (Path("/data/a"), Path("/data/b"))
    assert config.num_partitions == 6 and not config.auto_create_topics_enable
    assert config.log_defaults.retention_ms == 24 * 3600 * 1000
    assert config.log_defaults.segment_bytes == 1048576
    assert config.log_defaults.flush_messages == 1
    assert config.log_defaults.max_message_bytes == 2000000


def test_retention_ms_beats_minutes_beats_hours_whatever_the_order():
    props = {"log.retention.ms": "5000", "log.retention.hours": "1", "log.retention.minutes": "2"}
    assert BrokerConfig.from_properties(props).log_defaults.retention_ms == 5000
    props = {"log.retention.minutes": "2", "log.retention.hours": "1"}
    assert BrokerConfig.from_properties(props).log_defaults.retention_ms == 120_000


def test_an_unlistened_wildcard_is_advertised_as_loopback():
    config = BrokerConfig.from_properties({"listeners": "0.0.0.0:9093"})
    assert config.advertised == ("127.0.0.1", 9093)


@pytest.mark.parametrize(
    "props, message",
    [
        ({"num.partitions": "0"}, "num.partitions must be between 1"),
        ({"num.partitions": "many"}, "num.partitions must be an integer"),
        ({"auto.create.topics.enable": "yes"}, "must be true or false"),
        ({"listeners": "localhost"}, "must be HOST:PORT"),
        ({"listeners": "127.0.0.1:70000"}, "out of range"),
        ({"listeners": "SSL://127.0.0.1:9093"}, "only PLAINTEXT"),
        ({"log.retention.hours": "a day"}, "log.retention.hours must be an integer"),
        ({"log.segment.bytes": "1"}, "segment.bytes"),
        ({"log.dirs": " , "}, "at least one directory"),
        ({"message.max.bytes": "2000", "socket.request.max.bytes": "1000"}, "must not exceed"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_config(props, message):
    with pytest.raises(ConfigError, match=message):
        BrokerConfig.from_properties(props)


def test_overrides_apply_over_a_loaded_config():
    base = BrokerConfig.from_properties({"node.id": "2", "num.partitions": "4"})
    merged = base.with_overrides({"num.partitions": "8", "log.flush.interval.messages": "1"})
    assert (merged.node_id, merged.num_partitions, merged.log_defaults.flush_messages) == (2, 8, 1)
    assert BrokerConfig.from_properties(base.to_properties()) == base


def test_a_malformed_properties_line_is_an_error_with_its_line_number(tmp_path):
    path = tmp_path / "bad.properties"
    path.write_text("node.id=1\njust words\n")
    with pytest.raises(ConfigError, match="bad.properties:2"):
        load_properties(path)


def test_the_cleaners_choice_configs_have_kafkas_names_defaults_and_limits():
    assert (LogConfig().min_cleanable_dirty_ratio, LogConfig().max_compaction_lag_ms) == (0.5, 2**63 - 1)
    props = {"log.cleaner.min.cleanable.ratio": "0.1", "log.cleaner.max.compaction.lag.ms": "60000"}
    defaults = BrokerConfig.from_properties(props).log_defaults
    assert (defaults.min_cleanable_dirty_ratio, defaults.max_compaction_lag_ms) == (0.1, 60000)
    topic = LogConfig.from_properties({"min.cleanable.dirty.ratio": "0.25"})
    assert topic.to_properties()["min.cleanable.dirty.ratio"] == "0.25"
    for bad in ({"min.cleanable.dirty.ratio": "half"}, {"min.cleanable.dirty.ratio": "1.5"},
                {"min.cleanable.dirty.ratio": "nan"}, {"max.compaction.lag.ms": "0"},
                {"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"}):  # fmt: skip
        with pytest.raises(ConfigError):
            LogConfig.from_properties(bad)


def test_connection_limits_have_kafkas_names_and_round_trip():
    config = BrokerConfig()
    assert config.queued_max_request_bytes == 256 * 1024 * 1024 and config.connections_max_idle_ms == 600_000
    assert config.max_connections_per_ip == 2**31 - 1 and config.max_connections_per_ip_overrides == {}
    config = BrokerConfig.from_properties({
        "queued.max.request.bytes": "-1", "connections.max.idle.ms": "1000", "max.connections.per.ip": "5",
        "max.connections.per.ip.overrides": "127.0.0.1:200, [::1]:3,[::ffff:10.0.0.1]:0",
    })  # fmt: skip
    assert config.queued_max_request_bytes == -1 and config.connections_max_idle_ms == 1000
    assert config.max_connections_per_ip == 5
    # An IPv4-mapped address is its IPv4 one, as the accept loop names such a peer.
    assert config.max_connections_per_ip_overrides == {"127.0.0.1": 200, "::1": 3, "10.0.0.1": 0}
    assert config.with_overrides({}) == config


def test_peers_are_named_as_the_per_ip_limits_name_them():
    from riverlog.broker.config import canonical_ip

    assert canonical_ip("::ffff:127.0.0.2") == "127.0.0.2"  # a dual-stack listener's IPv4 peer
    assert canonical_ip("0:0::1") == "::1" and canonical_ip("127.0.0.1") == "127.0.0.1"
    assert canonical_ip("host.example") is None


@pytest.mark.parametrize("name, value, message", [
    ("queued.max.request.bytes", "0", "-1 \\(unbounded\\) or positive"),
    ("queued.max.request.bytes", "-2", "between -1"),
    ("connections.max.idle.ms", "0", "between 1"),
    ("max.connections.per.ip.overrides", "127.0.0.1", "HOST:COUNT"),
    ("max.connections.per.ip.overrides", "127.0.0.1:x", "must be an integer"),
    ("max.connections.per.ip.overrides", "host.example:3", "not an IP address"),
])  # fmt: skip
def test_bad_connection_limits_are_refused_by_name(name, value, message):
    with pytest.raises(ConfigError, match=f"{name}.*{message}"):
        BrokerConfig.from_properties({name: value})
