"""``riverlog consume --group``: a run starts where the group's last run
committed, members of one group share the partitions, and whatever ends the
command (--max-messages, -e, --idle-timeout, Ctrl-C) commits what it printed
and leaves the group. Through click's runner and as real processes."""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time

import pytest

from riverlog.client.protocol.errors import GroupIdNotFoundError  # type: ignore[attr-defined]
from tests.client.test_admin_groups import GROUP_BROKER_SETTINGS, admin_call
from tests.client.test_cli_admin import assert_one_line_error
from tests.client.test_cli_produce_consume import RIVERLOG, create, riverlog, run_process
from tests.integration.broker_process import BrokerProcess, free_port


@pytest.fixture(scope="module")
def broker_process(tmp_path_factory):
    """This module's own broker: rebalances at once, short sessions allowed."""
    b = BrokerProcess(tmp_path_factory.mktemp("broker") / "data", extra=GROUP_BROKER_SETTINGS).start()
    yield b
    b.close()


def produce(bootstrap: str, topic: str, lines: list[str], partition: int | None = None) -> None:
    where = ["--partition", str(partition)] if partition is not None else []
    result = riverlog("produce", topic, *where, "--bootstrap", bootstrap, input="".join(f"{s}\n" for s in lines))
    assert result.exit_code == 0, result.stderr


def consume(bootstrap: str, topic: str, group: str, *args: str) -> list[str]:
    result = riverlog("consume", topic, "--group", group, *args, "--bootstrap", bootstrap)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.splitlines()


def committed(bootstrap: str, group: str) -> dict[int, int]:
    offsets = admin_call(bootstrap, lambda a: a.list_group_offsets(group))
    return {tp.partition: o.offset for tp, o in offsets.items() if o is not None}


def group_state(bootstrap: str, group: str) -> tuple[str, list]:
    description = admin_call(bootstrap, lambda a: a.describe_groups([group]))[group]
    return description.state, description.members


class Lines:
    """A process's stdout lines, read on a thread, so a test can wait for
    them with a deadline."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.queue: queue.Queue[bytes] = queue.Queue()
        self.lines: list[str] = []
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.queue.put(line)

    def take(self, timeout: float = 0.0) -> list[str]:
        """What came since the last call (waiting up to `timeout` for one line)."""
        try:
            self.lines.append(self.queue.get(timeout=timeout).decode().rstrip("\n"))
            while True:
                self.lines.append(self.queue.get_nowait().decode().rstrip("\n"))
        except queue.Empty:
            pass
        return self.lines


def start(bootstrap: str, topic: str, group: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*RIVERLOG, "consume", topic, "--group", group, *args, "--bootstrap", bootstrap],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# -- a run starts where the last one committed --------------------------------------


def test_each_run_prints_only_what_the_groups_earlier_runs_did_not(bootstrap):
    create(bootstrap, "cg-resume", 2)
    first = [f"a{i}" for i in range(10)]
    produce(bootstrap, "cg-resume", first[:5], partition=0)
    produce(bootstrap, "cg-resume", first[5:], partition=1)
    assert sorted(consume(bootstrap, "cg-resume", "g-resume", "--max-messages", "10")) == first
    assert committed(bootstrap, "g-resume") == {0: 5, 1: 5}
    assert consume(bootstrap, "cg-resume", "g-resume", "--idle-timeout", "2") == []  # all committed
    assert consume(bootstrap, "cg-resume", "g-resume", "--exit-at-end") == []
    produce(bootstrap, "cg-resume", ["b0", "b1"], partition=1)
    produce(bootstrap, "cg-resume", ["b2"], partition=0)
    assert sorted(consume(bootstrap, "cg-resume", "g-resume", "--exit-at-end")) == ["b0", "b1", "b2"]
    assert consume(bootstrap, "cg-resume", "g-resume", "--exit-at-end") == []
    # Another group has its own offsets: it starts from the beginning.
    assert len(consume(bootstrap, "cg-resume", "g-resume-other", "-e")) == 13


def test_max_messages_commits_exactly_the_records_printed(bootstrap):
    create(bootstrap, "cg-max")
    produce(bootstrap, "cg-max", [f"r{i}" for i in range(5)])
    assert consume(bootstrap, "cg-max", "g-max", "--max-messages", "2") == ["r0", "r1"]
    assert committed(bootstrap, "g-max") == {0: 2}
    assert consume(bootstrap, "cg-max", "g-max", "--max-messages", "2") == ["r2", "r3"]
    assert consume(bootstrap, "cg-max", "g-max", "-e", "--format", "%o:%s\\n") == ["4:r4"]


def test_offset_end_applies_only_where_the_group_has_committed_nothing(bootstrap):
    create(bootstrap, "cg-end")
    produce(bootstrap, "cg-end", ["old0", "old1"])
    # No committed offset: start at the end, and commit that position on exit.
    assert consume(bootstrap, "cg-end", "g-end", "--offset", "end", "-e") == []
    assert committed(bootstrap, "g-end") == {0: 2}
    produce(bootstrap, "cg-end", ["new0"])
    # Now the committed offset rules, whatever --offset says.
    assert consume(bootstrap, "cg-end", "g-end", "--offset", "beginning", "-e") == ["new0"]


def test_a_run_ends_leaving_the_group_empty(bootstrap):
    create(bootstrap, "cg-leave")
    produce(bootstrap, "cg-leave", ["x"])
    assert consume(bootstrap, "cg-leave", "g-leave", "-e") == ["x"]
    state, members = group_state(bootstrap, "g-leave")  # left, not waiting for its session to time out
    assert (state, members) == ("Empty", [])


# -- as processes ------------------------------------------------------------------


def test_process_prints_every_record_then_a_second_run_prints_nothing(bootstrap):
    create(bootstrap, "cg-proc", 3)
    lines = [f"p{i}" for i in range(30)]
    for p in range(3):
        produce(bootstrap, "cg-proc", lines[p * 10 : (p + 1) * 10], partition=p)
    proc = run_process("consume", "cg-proc", "--group", "g-proc", "--max-messages", "30", "--bootstrap", bootstrap)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    assert sorted(proc.stdout.decode().splitlines()) == sorted(lines)
    again = run_process("consume", "cg-proc", "--group", "g-proc", "-e", "--bootstrap", bootstrap)
    assert again.returncode == 0 and again.stdout == b"", again.stderr


def test_two_processes_in_one_group_split_the_partitions_and_print_each_record_once(bootstrap):
    create(bootstrap, "cg-split", 4)
    group = "g-split"
    members = [start(bootstrap, "cg-split", group) for _ in range(2)]
    try:
        outputs = [Lines(m) for m in members]

        def both_assigned() -> bool:
            try:
                state, described = group_state(bootstrap, group)
            except GroupIdNotFoundError:  # nobody has joined yet
                return False
            return state == "Stable" and len(described) == 2 and all(m.assignment for m in described)

        wait_for(both_assigned, what="two members sharing the partitions")
        expected = []
        for p in range(4):
            batch = [f"{p}-{i}" for i in range(25)]
            produce(bootstrap, "cg-split", batch, partition=p)
            expected += batch
        wait_for(lambda: sum(len(o.take()) for o in outputs) >= len(expected), what="every record printed")
        time.sleep(0.5)  # anything printed twice would show now
        for m in members:
            m.send_signal(signal.SIGINT)
        results = [m.communicate(timeout=15) for m in members]
    finally:
        for m in members:
            m.kill()
    for m, (_, err) in zip(members, results):
        assert m.returncode == 0 and err == b"", err
    printed = [o.take() + o_rest.decode().splitlines() for o, (o_rest, _) in zip(outputs, results)]
    assert all(printed), printed  # each member had partitions and printed their records
    assert sorted(printed[0] + printed[1]) == sorted(expected)  # together: each record exactly once
    by_partition = [{line.split("-")[0] for line in out} for out in printed]
    assert not by_partition[0] & by_partition[1]  # a partition belongs to one member
    assert committed(bootstrap, group) == {p: 25 for p in range(4)}


def test_process_ctrl_c_commits_what_was_printed_and_leaves_without_a_traceback(bootstrap):
    create(bootstrap, "cg-sigint")
    produce(bootstrap, "cg-sigint", ["one", "two", "three"])
    consumer = start(bootstrap, "cg-sigint", "g-sigint")
    try:
        out = Lines(consumer)
        wait_for(lambda: len(out.take(timeout=0.1)) >= 3, what="three records printed")
        consumer.send_signal(signal.SIGINT)
        started = time.monotonic()
        rest, err = consumer.communicate(timeout=15)
        assert time.monotonic() - started < 5
    finally:
        consumer.kill()
    assert consumer.returncode == 0, err
    assert err == b"" and b"Traceback" not in err
    assert out.take() + rest.decode().splitlines() == ["one", "two", "three"]
    assert committed(bootstrap, "g-sigint") == {0: 3}
    assert group_state(bootstrap, "g-sigint") == ("Empty", [])
    produce(bootstrap, "cg-sigint", ["four"])
    assert consume(bootstrap, "cg-sigint", "g-sigint", "-e") == ["four"]


def test_process_sigterm_ends_like_ctrl_c(bootstrap):
    create(bootstrap, "cg-sigterm")
    produce(bootstrap, "cg-sigterm", ["a", "b"])
    consumer = start(bootstrap, "cg-sigterm", "g-sigterm")
    try:
        out = Lines(consumer)
        wait_for(lambda: len(out.take(timeout=0.1)) >= 2, what="two records printed")
        consumer.send_signal(signal.SIGTERM)
        _, err = consumer.communicate(timeout=15)
    finally:
        consumer.kill()
    assert consumer.returncode == 0 and err == b"", err
    assert committed(bootstrap, "g-sigterm") == {0: 2}


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (("--partition", "1"), "--partition cannot be used with --group"),
    (("--offset", "5"), "--offset with --group must be beginning or end, got '5'"),
    (("--offset", "-2"), "--offset with --group must be beginning or end"),
    (("--offset", "s@0"), "--offset with --group must be beginning or end"),
])  # fmt: skip
def test_group_refuses_partition_and_offsets_other_than_beginning_or_end(args, message):
    port = free_port()  # nothing listens: refused before any connection
    result = riverlog("consume", "t", "--group", "g", *args, "--bootstrap", f"127.0.0.1:{port}")
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, message)


def test_group_on_an_unknown_topic_is_one_line_and_exit_1(bootstrap):
    result = riverlog("consume", "cg-missing", "--group", "g-missing", "--bootstrap", bootstrap)
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "UNKNOWN_TOPIC_OR_PARTITION", "cg-missing")

