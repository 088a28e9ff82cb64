"""The ``riverlog`` admin commands: through click's runner, and a few as real
processes for the exit codes and the one-line errors a shell sees."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import trio
from click.testing import CliRunner

from riverlog.broker.cli import main
from riverlog.client.admin import Admin
from tests.client.test_admin import produce
from tests.integration.broker_process import free_port


def riverlog(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def riverlog_process(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "riverlog.broker.cli", *args], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_create_then_describe_shows_partitions_and_overrides(bootstrap):
    result = riverlog("topic", "create", "cli-described", "--partitions", "2", "--replication-factor", "1",
                      "--config", "retention.ms=60000", "--config", "segment.ms=3600000",
                      "--bootstrap", bootstrap)  # fmt: skip
    assert result.exit_code == 0 and result.stdout == "Created topic cli-described.\n"
    result = riverlog("topic", "describe", "cli-described", "--bootstrap", bootstrap)
    assert result.exit_code == 0, result.output
    head, *partitions = result.stdout.splitlines()
    assert head.split("\t") == ["Topic: cli-described", "PartitionCount: 2", "ReplicationFactor: 1",
                                "Configs: retention.ms=60000,segment.ms=3600000"]  # fmt: skip
    assert [p.split("\t")[2] for p in partitions] == ["Partition: 0", "Partition: 1"]
    assert all("Leader: 1" in p and "Replicas: 1" in p and "Isr: 1" in p for p in partitions)


def test_creating_an_existing_topic_fails_unless_if_not_exists(bootstrap):
    assert riverlog("topic", "create", "cli-twice", "--bootstrap", bootstrap).exit_code == 0
    result = riverlog("topic", "create", "cli-twice", "--bootstrap", bootstrap)
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "TOPIC_ALREADY_EXISTS", "cli-twice")
    result = riverlog("topic", "create", "cli-twice", "--if-not-exists", "--bootstrap", bootstrap)
    assert result.exit_code == 0 and result.output == ""


def test_config_without_equals_is_a_usage_error(bootstrap):
    result = riverlog("topic", "create", "cli-badconf", "--config", "retention.ms", "--bootstrap", bootstrap)
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "--config expects KEY=VALUE", "'retention.ms'")


def test_an_invalid_config_value_is_the_brokers_error(bootstrap):
    result = riverlog("topic", "create", "cli-badvalue", "--config", "retention.ms=soon", "--bootstrap", bootstrap)
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "INVALID_CONFIG")


def test_list_then_delete(bootstrap):
    assert riverlog("topic", "create", "cli-listed", "--bootstrap", bootstrap).exit_code == 0
    result = riverlog("topic", "list", "--bootstrap", bootstrap)
    assert result.exit_code == 0 and "cli-listed" in result.stdout.splitlines()
    result = riverlog("topic", "delete", "cli-listed", "--bootstrap", bootstrap)
    assert result.exit_code == 0 and result.stdout == "Deleted topic cli-listed.\n"
    assert "cli-listed" not in riverlog("topic", "list", "--bootstrap", bootstrap).stdout.splitlines()


def test_unknown_topic_is_one_line_and_exit_1(bootstrap):
    for command in (["topic", "describe"], ["topic", "delete"], ["offsets"]):
        result = riverlog(*command, "cli-missing", "--bootstrap", bootstrap)
        assert result.exit_code == 1, command
        assert_one_line_error(result.stderr, "UNKNOWN_TOPIC_OR_PARTITION", "cli-missing")


def test_alter_config_sets_and_deletes(bootstrap):
    riverlog("topic", "create", "cli-altered", "--config", "retention.ms=60000", "--bootstrap", bootstrap)
    result = riverlog("topic", "alter-config", "cli-altered", "--set", "segment.ms=3600000",
                      "--delete", "retention.ms", "--bootstrap", bootstrap)  # fmt: skip
    assert result.exit_code == 0, result.output
    described = riverlog("topic", "describe", "cli-altered", "--bootstrap", bootstrap).stdout
    assert "Configs: segment.ms=3600000\n" in described


def test_alter_config_needs_a_change_and_key_value_pairs(bootstrap):
    result = riverlog("topic", "alter-config", "cli-altered", "--bootstrap", bootstrap)
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "--set", "--delete")
    result = riverlog("topic", "alter-config", "cli-altered", "--set", "novalue", "--bootstrap", bootstrap)
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "--set expects KEY=VALUE")


def test_offsets_shows_earliest_and_latest_per_partition(bootstrap):
    assert riverlog("topic", "create", "cli-offsets", "--partitions", "2", "--bootstrap", bootstrap).exit_code == 0

    async def fill():
        async with Admin(bootstrap_servers=bootstrap) as a:
            await produce(a, "cli-offsets", 1, 7)

    trio.run(fill)
    result = riverlog("offsets", "cli-offsets", "--bootstrap", bootstrap)
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows == [["PARTITION", "EARLIEST", "LATEST"], ["0", "0", "0"], ["1", "0", "7"]]


def test_cluster_describe(bootstrap):
    port = bootstrap.rsplit(":", 1)[1]
    result = riverlog("cluster", "describe", "--bootstrap", bootstrap)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Cluster id: ") and len(lines[0]) > len("Cluster id: ")
    assert lines[1] == "Controller: 1"
    assert lines[3].split() == ["1", "127.0.0.1", port, "active"]  # a STATE column since DescribeCluster v2


def test_bootstrap_comes_from_the_environment(bootstrap):
    result = riverlog("cluster", "describe", env={"RIVERLOG_BOOTSTRAP": bootstrap})
    assert result.exit_code == 0 and "Controller: 1" in result.stdout


def test_a_bootstrap_that_is_not_host_port_is_a_usage_error():
    result = riverlog("topic", "list", "--bootstrap", "localhost:notaport")
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, "'localhost:notaport' is not HOST:PORT")


# -- as a shell runs them -------------------------------------------------------


def test_process_unreachable_broker_fails_within_the_timeout():
    port = free_port()
    start = time.monotonic()
    proc = riverlog_process("topic", "list", "--bootstrap", f"127.0.0.1:{port}", "--timeout", "1")
    assert time.monotonic() - start < 10
    assert proc.returncode == 1 and proc.stdout == ""
    assert_one_line_error(proc.stderr, "no broker reachable", f"127.0.0.1:{port}")


def test_process_create_describe_and_errors(bootstrap):
    proc = riverlog_process("topic", "create", "cli-proc", "--partitions", "3", "--bootstrap", bootstrap)
    assert proc.returncode == 0 and proc.stdout == "Created topic cli-proc.\n", proc.stderr
    proc = riverlog_process("topic", "describe", "cli-proc", "--bootstrap", bootstrap)
    assert proc.returncode == 0 and "PartitionCount: 3" in proc.stdout
    proc = riverlog_process("topic", "describe", "cli-proc-missing", "--bootstrap", bootstrap)
    assert proc.returncode == 1
    assert_one_line_error(proc.stderr, "UNKNOWN_TOPIC_OR_PARTITION", "cli-proc-missing")
    proc = riverlog_process("topic", "create", "cli-proc-2", "--config", "oops", "--bootstrap", bootstrap)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "--config expects KEY=VALUE")


@pytest.mark.parametrize("module", ["riverlog.broker.cli", "riverlog.client.cli"])
def test_the_command_line_loads_without_trio(module):
    # `riverlog --help` stays fast only while these import no client machinery.
    heavy = ("trio", "riverlog.client.admin", "riverlog.client.records", "crc32c")
    code = f"import sys, {module}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.stdout.strip() == "[]", proc.stderr
