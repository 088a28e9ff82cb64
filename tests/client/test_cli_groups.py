"""``riverlog group``: through click's runner against a real broker, with
groups made by librdkafka consumers, and once as a real process."""

from __future__ import annotations

import pytest

from riverlog.client.types import TopicPartition
from tests.client.test_admin_groups import GROUP_BROKER_SETTINGS, admin_call, make_topic, member
from tests.client.test_cli_admin import assert_one_line_error, riverlog, riverlog_process
from tests.integration.broker_process import BrokerProcess


@pytest.fixture(scope="module")
def broker_process(tmp_path_factory):
    b = BrokerProcess(tmp_path_factory.mktemp("broker") / "data", extra=GROUP_BROKER_SETTINGS).start()
    yield b
    b.close()


def rows(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines() if line.strip()]


def test_list_shows_each_groups_state_and_protocol_type(bootstrap):
    make_topic(bootstrap, "cl-topic")
    admin_call(bootstrap, lambda a: a.alter_group_offsets("cl-simple", {TopicPartition("cl-topic", 0): 1}))
    with member(bootstrap, "cl-active", "cl-topic"):
        result = riverlog("group", "list", "--bootstrap", bootstrap)
    assert result.exit_code == 0, result.output
    table = rows(result.stdout)
    assert table[0] == ["GROUP", "STATE", "PROTOCOL-TYPE"]
    assert ["cl-active", "Stable", "consumer"] in table and ["cl-simple", "Empty", "-"] in table


def test_describe_shows_members_then_offsets_end_offsets_and_lag(bootstrap):
    make_topic(bootstrap, "cd-topic", records=5)
    with member(bootstrap, "cd-group", "cd-topic", commit={0: 2}, client_id="cd-client") as consumer:
        member_id = consumer.memberid()
        result = riverlog("group", "describe", "cd-group", "--bootstrap", bootstrap)
    assert result.exit_code == 0, result.output
    head, members_header, member_row, offsets_header, *partitions = rows(result.stdout)
    assert head[:4] == ["Group:", "cd-group", "State:", "Stable"]
    assert members_header == ["MEMBER-ID", "CLIENT-ID", "HOST", "PARTITIONS"]
    assert member_row[0] == member_id and member_row[1] == "cd-client" and member_row[3] == "cd-topic:0,1"
    assert offsets_header == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "MEMBER-ID"]
    assert partitions == [["cd-topic", "0", "2", "5", "3", member_id], ["cd-topic", "1", "-", "5", "-", member_id]]


def test_describe_an_unknown_group_is_one_line_and_exit_1(bootstrap):
    result = riverlog("group", "describe", "cd-nobody", "--bootstrap", bootstrap)
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "GROUP_ID_NOT_FOUND", "'cd-nobody' does not exist")


def test_reset_offsets_to_earliest_latest_and_an_offset(bootstrap):
    make_topic(bootstrap, "cr-topic", records=5)
    with member(bootstrap, "cr-group", "cr-topic", commit={0: 3, 1: 3}):
        pass

    def reset(*args: str):
        result = riverlog("group", "reset-offsets", "cr-group", "--topic", "cr-topic", *args, "--bootstrap", bootstrap)
        assert result.exit_code == 0, result.output
        return rows(result.stdout)

    def committed() -> dict[int, int]:
        offsets = admin_call(bootstrap, lambda a: a.list_group_offsets("cr-group"))
        return {tp.partition: o.offset for tp, o in offsets.items()}

    assert reset("--to-earliest", "--dry-run") == [["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
                                                   ["cr-group", "cr-topic", "0", "0"],
                                                   ["cr-group", "cr-topic", "1", "0"]]  # fmt: skip
    assert committed() == {0: 3, 1: 3}  # a dry run commits nothing
    reset("--to-earliest")
    assert committed() == {0: 0, 1: 0}
    reset("--to-latest", "--partition", "1")
    assert committed() == {0: 0, 1: 5}
    assert reset("--to-offset", "99")[1:] == [["cr-group", "cr-topic", "0", "5"], ["cr-group", "cr-topic", "1", "5"]]
    reset("--to-offset", "4", "--partition", "0")
    assert committed() == {0: 4, 1: 5}


def test_reset_offsets_is_refused_while_the_group_is_active(bootstrap):
    make_topic(bootstrap, "ca-topic")
    with member(bootstrap, "ca-group", "ca-topic", commit={0: 1}):
        result = riverlog("group", "reset-offsets", "ca-group", "--topic", "ca-topic", "--to-earliest",
                          "--bootstrap", bootstrap)  # fmt: skip
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == ("error: Assignments can only be reset if the group 'ca-group' is inactive, "
                             "but the current state is Stable.\n")  # fmt: skip
    offsets = admin_call(bootstrap, lambda a: a.list_group_offsets("ca-group"))
    assert {tp.partition: o.offset for tp, o in offsets.items()} == {0: 1}


def test_reset_offsets_needs_exactly_one_target_and_a_real_partition(bootstrap):
    make_topic(bootstrap, "cx-topic")
    for targets in ([], ["--to-earliest", "--to-offset", "3"]):
        result = riverlog("group", "reset-offsets", "cx-group", "--topic", "cx-topic", *targets,
                          "--bootstrap", bootstrap)  # fmt: skip
        assert result.exit_code == 2
        assert_one_line_error(result.stderr, "exactly one of --to-earliest, --to-latest, --to-offset N")
    result = riverlog("group", "reset-offsets", "cx-group", "--topic", "cx-topic", "--to-earliest",
                      "--partition", "7", "--bootstrap", bootstrap)  # fmt: skip
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "UNKNOWN_TOPIC_OR_PARTITION", "cx-topic has no partition 7")


def test_delete_refuses_an_active_group_then_deletes_it(bootstrap):
    make_topic(bootstrap, "cdel-topic")
    with member(bootstrap, "cdel-group", "cdel-topic", commit={0: 1}):
        result = riverlog("group", "delete", "cdel-group", "--bootstrap", bootstrap)
        assert result.exit_code == 1
        assert_one_line_error(result.stderr, "NON_EMPTY_GROUP", "'cdel-group' still has members")
    result = riverlog("group", "delete", "cdel-group", "--bootstrap", bootstrap)
    assert result.exit_code == 0 and result.stdout == "Deleted group cdel-group.\n"
    listed = rows(riverlog("group", "list", "--bootstrap", bootstrap).stdout)
    assert "cdel-group" not in [row[0] for row in listed]


def test_process_group_commands_and_their_errors(bootstrap):
    make_topic(bootstrap, "cp-topic")
    admin_call(bootstrap, lambda a: a.alter_group_offsets("cp-group", {TopicPartition("cp-topic", 0): 2}))
    proc = riverlog_process("group", "describe", "cp-group", "--bootstrap", bootstrap)
    assert proc.returncode == 0, proc.stderr
    assert ["cp-topic", "0", "2", "5", "3", "-"] in rows(proc.stdout)
    proc = riverlog_process("group", "delete", "cp-nobody", "--bootstrap", bootstrap)
    assert proc.returncode == 1 and proc.stdout == ""
    assert_one_line_error(proc.stderr, "GROUP_ID_NOT_FOUND", "'cp-nobody' does not exist")
