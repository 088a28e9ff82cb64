"""Arguments that contradict each other are refused before anything is sent:
an option given twice, two options for the same setting (--to-earliest
--to-latest), a config key given twice. click keeps the last one silently;
the riverlog command line says which ones clash (exit status 2)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from riverlog.broker.cli import main
from tests.client.test_cli_admin import assert_one_line_error

NOWHERE = ["--bootstrap", "127.0.0.1:1", "--timeout", "0.5"]  # never reached: parsing fails first


def riverlog(*args: str, stdin: str = ""):
    return CliRunner().invoke(main, list(args), input=stdin)


@pytest.mark.parametrize("args, fragments", [
    (["group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest"], ["--to-earliest", "--to-latest"]),
    (["group", "reset-offsets", "g", "--topic", "t", "--to-latest", "--to-earliest"], ["--to-latest", "--to-earliest"]),
    (["group", "reset-offsets", "g", "--topic", "t", "--to-offset", "1", "--to-offset", "2"], ["--to-offset"]),
    (["group", "reset-offsets", "g", "--topic", "t", "--topic", "u", "--to-latest"], ["--topic"]),
    (["topic", "create", "x", "--partitions", "1", "--partitions", "2"], ["--partitions"]),
    (["topic", "create", "x", "--config", "retention.ms=1", "--config", "retention.ms=2"], ["retention.ms"]),
    (["topic", "alter-config", "x", "--set", "retention.ms=1", "--set", "retention.ms=2"], ["retention.ms"]),
    (["topic", "alter-config", "x", "--set", "retention.ms=1", "--delete", "retention.ms"], ["retention.ms"]),
    (["topic", "alter-config", "x", "--delete", "retention.ms", "--delete", "retention.ms"], ["retention.ms"]),
    (["consume", "t", "--offset", "end", "--offset", "beginning"], ["--offset"]),
    (["consume", "t", "--partition", "0", "--partition", "1"], ["--partition"]),
    (["produce", "t", "--acks", "1", "--acks", "all"], ["--acks"]),
    (["offsets", "t", "--bootstrap", "127.0.0.1:2"], ["--bootstrap"]),
])  # fmt: skip
def test_contradicting_arguments_are_a_usage_error(args, fragments):
    result = riverlog(*args, *NOWHERE)
    assert result.exit_code == 2, result.output
    assert_one_line_error(result.stderr, *fragments)


def test_broker_start_refuses_a_setting_given_twice(tmp_path):
    # A bad --listen as well, so that no broker could ever start here: only the message tells the two apart.
    base = ["broker", "start", "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:notaport"]
    result = riverlog(*base, "--set", "num.partitions=1", "--set", "num.partitions=2")
    assert result.exit_code == 2 and "num.partitions" in result.output and "more than once" in result.output
    result = riverlog(*base, "--node-id", "1", "--node-id", "2")
    assert result.exit_code == 2 and "--node-id" in result.output and "more than once" in result.output


def test_repeatable_options_stay_repeatable():
    # A header key twice is legal in Kafka; two different configs are two settings.
    result = riverlog("produce", "t", "--header", "k=1", "--header", "k=2", *NOWHERE, "--acks", "1", stdin="v\n")
    assert result.exit_code == 1, result.output  # got as far as the (unreachable) cluster
    result = riverlog("topic", "create", "x", "--config", "retention.ms=1", "--config", "segment.ms=2", *NOWHERE)
    assert result.exit_code == 1, result.output
