"""Cluster configuration: KRaft's names and defaults, the quorum string, and
each inconsistent setting refused at start with a message naming it (through
`riverlog broker start`, which prints it and exits 2 without a traceback)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from riverlog.broker.cli import main
from riverlog.broker.config import BrokerConfig
from riverlog.broker.storage.log_config import ConfigError

VOTERS = "1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194"


def test_without_a_quorum_the_node_is_a_one_voter_quorum_of_itself():
    config = BrokerConfig()
    assert config.controller_quorum == {} and config.controller_listener is None
    assert config.voter_ids == frozenset({1}) and config.is_voter and config.controller_peers == {}
    assert "controller.quorum.voters" not in config.to_properties()


def test_kraft_defaults():
    config = BrokerConfig()
    assert (config.broker_session_timeout_ms, config.broker_heartbeat_interval_ms) == (9000, 2000)
    assert config.controller_quorum_election_timeout_ms == 1000
    assert config.controller_quorum_fetch_timeout_ms == 2000
    assert config.controller_quorum_request_timeout_ms == 2000


def test_the_voter_string_is_parsed_in_kafkas_format():
    config = BrokerConfig.from_properties({
        "node.id": "2", "controller.quorum.voters": VOTERS, "controller.listener": "0.0.0.0:9193",
        "listeners": "127.0.0.1:9093",
    })  # fmt: skip
    assert config.controller_quorum == {1: ("127.0.0.1", 9192), 2: ("127.0.0.1", 9193), 3: ("127.0.0.1", 9194)}
    assert config.controller_listener == ("0.0.0.0", 9193)
    assert config.is_voter and config.voter_ids == frozenset({1, 2, 3})
    assert config.controller_peers == {1: ("127.0.0.1", 9192), 3: ("127.0.0.1", 9194)}
    assert config.with_overrides({}) == config  # survives to_properties and back
    ipv6 = BrokerConfig.from_properties({"controller.quorum.voters": "1@[::1]:9192",
                                         "controller.listener": "[::1]:9192"})  # fmt: skip
    assert ipv6.controller_quorum == {1: ("::1", 9192)} and ipv6.with_overrides({}) == ipv6


def test_a_node_outside_the_voters_is_a_broker_only_observer():
    config = BrokerConfig.from_properties({"node.id": "4", "controller.quorum.voters": VOTERS})
    assert not config.is_voter and config.controller_listener is None
    assert set(config.controller_peers) == {1, 2, 3}


def test_timeouts_are_set_by_their_kafka_names():
    config = BrokerConfig.from_properties({
        "broker.session.timeout.ms": "6000", "broker.heartbeat.interval.ms": "500",
        "controller.quorum.election.timeout.ms": "300", "controller.quorum.fetch.timeout.ms": "900",
        "controller.quorum.request.timeout.ms": "1500",
    })  # fmt: skip
    assert (config.broker_session_timeout_ms, config.broker_heartbeat_interval_ms) == (6000, 500)
    assert (config.controller_quorum_election_timeout_ms, config.controller_quorum_fetch_timeout_ms,
            config.controller_quorum_request_timeout_ms) == (300, 900, 1500)  # fmt: skip


BAD = [
    ({"controller.quorum.voters": "1@h:9192,1@h:9193", "controller.listener": "h:9192"},
     "node id 1 appears more than once"),
    ({"controller.quorum.voters": "1@h:9192,2h:9193"}, "must be ID@HOST:PORT"),
    ({"controller.quorum.voters": "one@h:9192"}, "must be ID@HOST:PORT"),
    ({"controller.quorum.voters": "1@h"}, "must be HOST:PORT"),
    ({"controller.quorum.voters": "1@:9192"}, "needs a host and a port"),
    ({"controller.quorum.voters": "1@::1:9192"}, "IPv6 hosts go in brackets"),
    ({"controller.quorum.voters": VOTERS}, "node.id 1 is a voter in controller.quorum.voters, so it needs "
                                           "controller.listener"),
    ({"controller.quorum.voters": VOTERS, "controller.listener": "127.0.0.1:9999"},
     "controller.listener port 9999 is not node 1's port in controller.quorum.voters (1@127.0.0.1:9192)"),
    ({"controller.quorum.voters": "1@127.0.0.1:9092", "controller.listener": "127.0.0.1:9092"},
     "listeners and controller.listener are the same address (127.0.0.1:9092)"),
    ({"controller.quorum.voters": "1@h:9092", "controller.listener": "0.0.0.0:9092"},
     "listeners and controller.listener are the same address"),
    ({"node.id": "4", "controller.quorum.voters": VOTERS, "controller.listener": "127.0.0.1:9195"},
     "node.id 4 is not in controller.quorum.voters"),
    ({"controller.listener": "127.0.0.1:9192"}, "controller.listener needs controller.quorum.voters"),
    ({"broker.session.timeout.ms": "2000"}, "broker.session.timeout.ms (2000) must be above "
                                            "broker.heartbeat.interval.ms (2000)"),
    ({"controller.quorum.request.timeout.ms": "500"}, "controller.quorum.request.timeout.ms must be above 500"),
]  # fmt: skip


@pytest.mark.parametrize(("props", "message"), BAD, ids=[m for _, m in BAD])
def test_each_inconsistent_cluster_config_is_refused_with_its_reason(props, message):
    with pytest.raises(ConfigError) as e:
        BrokerConfig.from_properties(props)
    assert message in str(e.value)


@pytest.mark.parametrize(("args", "message"), [
    (["--controller-quorum", "1@h:9192,1@h:9193", "--controller-listen", "h:9192"], "appears more than once"),
    (["--controller-quorum", "1@h:9192;2@h:9193"], "has a bad host"),
    (["--controller-quorum", VOTERS], "so it needs controller.listener (--controller-listen)"),
    (["--node-id", "2", "--controller-quorum", VOTERS, "--controller-listen", "127.0.0.1:9192"],
     "controller.listener port 9192 is not node 2's port"),
    (["--listen", "127.0.0.1:9192", "--controller-quorum", VOTERS, "--controller-listen", "127.0.0.1:9192"],
     "same address"),
    (["--set", "broker.heartbeat.interval.ms=10000"], "must be above broker.heartbeat.interval.ms"),
])  # fmt: skip
def test_broker_start_prints_the_config_error_and_exits_without_a_traceback(args, message):
    result = CliRunner().invoke(main, ["broker", "start", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_the_cluster_flags_map_onto_the_kafka_configs(monkeypatch, tmp_path):
    seen = []

    async def fake_run(config):
        seen.append(config)

    monkeypatch.setattr("riverlog.broker.server.run_until_signalled", fake_run)
    result = CliRunner().invoke(main, [
        "broker", "start", "--node-id", "3", "--listen", "127.0.0.1:9094", "--controller-listen", "127.0.0.1:9194",
        "--controller-quorum", VOTERS, "--data-dir", str(tmp_path), "--set", "broker.session.timeout.ms=12000",
        "--initial-cluster",  # an empty data dir: a new cluster's first start
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    [config] = seen
    assert config.node_id == 3 and config.listener == ("127.0.0.1", 9094)
    assert config.controller_listener == ("127.0.0.1", 9194)
    assert config.controller_quorum == {1: ("127.0.0.1", 9192), 2: ("127.0.0.1", 9193), 3: ("127.0.0.1", 9194)}
    assert config.is_voter and config.broker_session_timeout_ms == 12000 and config.initial_cluster


def test_a_voter_with_an_empty_data_dir_needs_initial_cluster(tmp_path):
    args = ["broker", "start", "--node-id", "3", "--listen", "127.0.0.1:9094", "--controller-listen",
            "127.0.0.1:9194", "--controller-quorum", VOTERS, "--data-dir", str(tmp_path / "wiped")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "holds no metadata" in result.output and "--initial-cluster" in result.output
    assert "Traceback" not in result.output
