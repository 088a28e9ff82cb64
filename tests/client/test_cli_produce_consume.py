"""``riverlog produce`` and ``riverlog consume``: lines in, the same bytes out,
through click's runner and as real processes piped together as a shell would."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from riverlog.broker.cli import main
from riverlog.client.cli import compile_format
from riverlog.client.types import ConsumerRecord
from tests.client.test_cli_admin import assert_one_line_error
from tests.integration.broker_process import BrokerProcess, free_port

RIVERLOG = [sys.executable, "-m", "riverlog.broker.cli"]


def riverlog(*args: str, input: bytes | str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def create(bootstrap: str, topic: str, partitions: int = 1, *configs: str) -> None:
    extra = [a for c in configs for a in ("--config", c)]
    result = riverlog("topic", "create", topic, "--partitions", str(partitions), *extra, "--bootstrap", bootstrap)
    assert result.exit_code == 0, result.output


def consume_all(bootstrap: str, topic: str, *args: str) -> bytes:
    result = riverlog("consume", topic, "--exit-at-end", *args, "--bootstrap", bootstrap)
    assert result.exit_code == 0, result.stderr
    return result.stdout_bytes


def run_process(*args: str, input: bytes = b"", timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*RIVERLOG, *args], input=input, capture_output=True, timeout=timeout)


# -- produce, then consume back -------------------------------------------------


def test_each_line_is_a_record_and_comes_back_exactly(bootstrap):
    create(bootstrap, "pc-lines")
    # An empty line is an empty record; a last line without a newline still counts.
    result = riverlog("produce", "pc-lines", "--bootstrap", bootstrap, input=b"one\ntwo\n\nthree")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert consume_all(bootstrap, "pc-lines") == b"one\ntwo\n\nthree\n"


def test_the_summary_counts_records_bytes_and_rates(bootstrap):
    result = riverlog("produce", "pc-summary", "--bootstrap", bootstrap, input=b"abc\nde\n")
    assert result.exit_code == 0, result.stderr
    assert re.fullmatch(r"Produced 2 records \(5 bytes\) in \d+\.\d\d s: \d+ records/s, \d+\.\d\d MB/s\.\n",
                        result.stderr), result.stderr  # fmt: skip


def test_key_separator_splits_at_the_first_separator(bootstrap):
    create(bootstrap, "pc-keys")
    result = riverlog("produce", "pc-keys", "--key-separator", "::", "--bootstrap", bootstrap,
                      input=b"k1::v1\nk2::v::2\n::empty-key\n")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("Produced 3 records (19 bytes) in ")  # keys and values, no separators
    assert consume_all(bootstrap, "pc-keys", "--format", "%k|%s\\n") == b"k1|v1\nk2|v::2\n|empty-key\n"


def test_a_line_without_the_key_separator_stops_with_its_number(bootstrap):
    create(bootstrap, "pc-nosep")
    result = riverlog("produce", "pc-nosep", "--key-separator", ":", "--bootstrap", bootstrap,
                      input=b"a:1\nb:2\nno separator\nc:3\n")  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "error: line 3 has no key separator ':'"
    assert consume_all(bootstrap, "pc-nosep", "--format", "%k=%s\\n") == b"a=1\nb=2\n"  # the lines before it are sent


def test_headers_go_on_every_record_in_order(bootstrap):
    create(bootstrap, "pc-headers")
    result = riverlog("produce", "pc-headers", "--header", "trace=abc", "--header", "trace=def",
                      "--header", "empty=", "--bootstrap", bootstrap, input=b"x\ny\n")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert consume_all(bootstrap, "pc-headers", "-f", "%s [%h]\\n") == (
        b"x [trace=abc,trace=def,empty=]\ny [trace=abc,trace=def,empty=]\n"
    )


def test_format_prints_topic_partition_offset_timestamp_and_sizes(bootstrap):
    create(bootstrap, "pc-format", 2)
    result = riverlog("produce", "pc-format", "--partition", "1", "--bootstrap", bootstrap, input=b"hello\nhi\n")
    assert result.exit_code == 0, result.stderr
    before_ms = int(time.time() * 1000) - 60_000
    out = consume_all(bootstrap, "pc-format", "-f", "%t\\t%p\\t%o\\t%T\\t%K\\t%S\\t100%%\\n").decode()
    rows = [line.split("\t") for line in out.splitlines()]
    assert [(t, p, o, k, s, pct) for t, p, o, _, k, s, pct in rows] == [
        ("pc-format", "1", "0", "-1", "5", "100%"), ("pc-format", "1", "1", "-1", "2", "100%"),
    ]  # fmt: skip
    assert all(int(ts) > before_ms for _, _, _, ts, *_ in rows)


def test_partition_reads_one_partition_only(bootstrap):
    create(bootstrap, "pc-partition", 3)
    for p in range(3):
        assert riverlog("produce", "pc-partition", "--partition", str(p), "--bootstrap", bootstrap,
                        input=f"p{p}\n").exit_code == 0  # fmt: skip
    assert consume_all(bootstrap, "pc-partition", "--partition", "2") == b"p2\n"
    assert sorted(consume_all(bootstrap, "pc-partition").split()) == [b"p0", b"p1", b"p2"]


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_come_back_the_same(bootstrap, compression):
    topic = f"pc-compressed-{compression}"
    lines = b"".join(b"line %d %s\n" % (i, b"z" * (i % 50)) for i in range(500))
    result = riverlog("produce", topic, "--compression", compression, "--bootstrap", bootstrap, input=lines)
    assert result.exit_code == 0, result.stderr
    assert consume_all(bootstrap, topic) == lines


@pytest.mark.parametrize("acks", ["0", "1"])
def test_acks_other_than_all_still_deliver(bootstrap, acks):
    topic = f"pc-acks-{acks}"
    create(bootstrap, topic)
    result = riverlog("produce", topic, "--acks", acks, "--bootstrap", bootstrap, input=b"a\nb\n")
    assert result.exit_code == 0, result.stderr
    assert consume_all(bootstrap, topic) == b"a\nb\n"


def test_file_instead_of_stdin(bootstrap, tmp_path):
    path = tmp_path / "records.txt"
    path.write_bytes(b"from\na file\n")
    result = riverlog("produce", "pc-file", "--file", str(path), "--bootstrap", bootstrap)
    assert result.exit_code == 0, result.stderr
    assert consume_all(bootstrap, "pc-file") == b"from\na file\n"


# -- where consume starts and stops ---------------------------------------------


def test_offset_n_minus_n_and_beginning(bootstrap):
    create(bootstrap, "pc-offsets")
    riverlog("produce", "pc-offsets", "--bootstrap", bootstrap, input=b"r0\nr1\nr2\nr3\nr4\n")
    assert consume_all(bootstrap, "pc-offsets", "--offset", "3") == b"r3\nr4\n"
    assert consume_all(bootstrap, "pc-offsets", "--offset", "-2") == b"r3\nr4\n"
    assert consume_all(bootstrap, "pc-offsets", "--offset", "-99") == b"r0\nr1\nr2\nr3\nr4\n"
    assert consume_all(bootstrap, "pc-offsets", "--offset", "5") == b""  # already at the end
    assert consume_all(bootstrap, "pc-offsets", "--offset", "s@0") == b"r0\nr1\nr2\nr3\nr4\n"
    result = riverlog("consume", "pc-offsets", "--offset", "beginning", "--max-messages", "2", "--bootstrap", bootstrap)
    assert result.exit_code == 0 and result.stdout_bytes == b"r0\nr1\n"


def test_exit_at_end_on_an_empty_topic_prints_nothing(bootstrap):
    create(bootstrap, "pc-empty", 2)
    assert consume_all(bootstrap, "pc-empty") == b""


def test_idle_timeout_ends_a_consume_that_waits(bootstrap):
    create(bootstrap, "pc-idle")
    riverlog("produce", "pc-idle", "--bootstrap", bootstrap, input=b"only\n")
    start = time.monotonic()
    result = riverlog("consume", "pc-idle", "--idle-timeout", "0.5", "--bootstrap", bootstrap)
    assert result.exit_code == 0 and result.stdout_bytes == b"only\n"
    assert time.monotonic() - start < 5


def test_offset_end_sees_only_records_produced_after_it_started(bootstrap):
    create(bootstrap, "pc-end")
    riverlog("produce", "pc-end", "--bootstrap", bootstrap, input=b"old\n")
    consumer = subprocess.Popen([*RIVERLOG, "consume", "pc-end", "--offset", "end", "--max-messages", "1",
                                 "--bootstrap", bootstrap], stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        # No signal says when it has sought to the end: produce until it has seen one record.
        for i in range(100):
            riverlog("produce", "pc-end", "--bootstrap", bootstrap, input=f"new-{i}\n")
            if consumer.poll() is not None:
                break
            time.sleep(0.1)
        out, err = consumer.communicate(timeout=10)
    finally:
        consumer.kill()
    assert consumer.returncode == 0, err
    assert re.fullmatch(rb"new-\d+\n", out), out


# -- as processes, piped --------------------------------------------------------


def test_process_pipeline_with_binary_values(bootstrap):
    create(bootstrap, "pc-binary")
    values = [bytes(range(256)).replace(b"\n", b""), b"\xff\xfe\x00\x80", "caf\u00e9".encode("latin-1"), b"a\rb\r"]
    produced = run_process("produce", "pc-binary", "--bootstrap", bootstrap, input=b"\n".join(values) + b"\n")
    assert produced.returncode == 0, produced.stderr
    assert produced.stdout == b"" and produced.stderr.startswith(b"Produced 4 records")
    consumed = run_process("consume", "pc-binary", "--max-messages", "4", "--bootstrap", bootstrap)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout == b"\n".join(values) + b"\n"


def test_process_keys_and_format(bootstrap):
    produced = run_process("produce", "pc-proc-keys", "--key-separator", "\t", "--bootstrap", bootstrap,
                           input=b"user-1\tlogin\nuser-2\tlogout\n")  # fmt: skip
    assert produced.returncode == 0, produced.stderr
    consumed = run_process("consume", "pc-proc-keys", "-e", "-f", "%k=%s;", "--bootstrap", bootstrap)
    assert consumed.returncode == 0 and consumed.stdout == b"user-1=login;user-2=logout;"


def test_process_sigint_ends_a_waiting_consume_with_status_0(bootstrap):
    create(bootstrap, "pc-sigint")
    riverlog("produce", "pc-sigint", "--bootstrap", bootstrap, input=b"first\n")
    consumer = subprocess.Popen([*RIVERLOG, "consume", "pc-sigint", "--bootstrap", bootstrap],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert consumer.stdout.readline() == b"first\n"  # it is up and waiting for more
        consumer.send_signal(signal.SIGINT)
        start = time.monotonic()
        out, err = consumer.communicate(timeout=10)
        assert time.monotonic() - start < 3
    finally:
        consumer.kill()
    assert consumer.returncode == 0, err
    assert out == b"" and err == b""


def test_process_sigint_while_producing_delivers_what_was_read(bootstrap):
    create(bootstrap, "pc-sigint-produce")
    producer = subprocess.Popen([*RIVERLOG, "produce", "pc-sigint-produce", "--bootstrap", bootstrap],
                                stdin=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        producer.stdin.write(b"typed\n")
        producer.stdin.flush()
        deadline = time.monotonic() + 10  # wait until the line is in the topic
        while consume_all(bootstrap, "pc-sigint-produce") != b"typed\n" and time.monotonic() < deadline:
            time.sleep(0.1)
        producer.send_signal(signal.SIGINT)
        _, err = producer.communicate(timeout=10)
    finally:
        producer.kill()
    assert producer.returncode == 130
    assert err.startswith(b"Produced 1 record ") and b"Traceback" not in err


# -- errors ----------------------------------------------------------------------


def test_consume_unknown_topic_is_one_line_and_exit_1(bootstrap):
    result = riverlog("consume", "pc-missing", "--bootstrap", bootstrap)
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "UNKNOWN_TOPIC_OR_PARTITION", "pc-missing")
    create(bootstrap, "pc-two", 2)
    result = riverlog("consume", "pc-two", "--partition", "2", "--bootstrap", bootstrap)
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "UNKNOWN_TOPIC_OR_PARTITION", "no partition 2")
    result = riverlog("produce", "pc-two", "--partition", "2", "--bootstrap", bootstrap, input=b"x\n")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "pc-two", "not 2")


def test_an_offset_past_the_end_is_an_error(bootstrap):
    create(bootstrap, "pc-past-end")
    result = riverlog("consume", "pc-past-end", "--offset", "10", "--timeout", "2", "--bootstrap", bootstrap)
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "offset 10 is out of range for pc-past-end-0")


def test_a_record_the_broker_refuses_fails_its_delivery_and_exit_1(bootstrap):
    create(bootstrap, "pc-refused", 1, "max.message.bytes=200")
    result = riverlog("produce", "pc-refused", "--bootstrap", bootstrap, input=b"x" * 1000 + b"\n")
    assert result.exit_code == 1
    summary, error = result.stderr.splitlines()
    assert summary.startswith("Produced 1 record ") and summary.endswith(", 1 failed.")
    assert error.startswith("error: 1 of 1 record failed; the first: ") and "MESSAGE_TOO_LARGE" in error


@pytest.mark.parametrize("args", [
    ("consume", "t", "--offset", "later"),
    ("consume", "t", "--offset", "s@soon"),
    ("consume", "t", "--format", "%x"),
    ("consume", "t", "--format", "trailing\\"),
    ("produce", "t", "--header", "novalue"),
    ("produce", "t", "--key-separator", ""),
])  # fmt: skip
def test_bad_arguments_are_usage_errors_before_any_connection(args):
    port = free_port()  # nothing listens: the argument is refused first
    result = riverlog(*args, "--bootstrap", f"127.0.0.1:{port}", input=b"x\n")
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, args[2])


@pytest.mark.parametrize("command", ["produce", "consume"])
def test_process_unreachable_broker_fails_within_the_timeout(command):
    port = free_port()
    start = time.monotonic()
    proc = run_process(command, "pc-nobroker", "--bootstrap", f"127.0.0.1:{port}", "--timeout", "1", input=b"x\n")
    assert time.monotonic() - start < 10
    assert proc.returncode == 1 and proc.stdout == b""
    assert_one_line_error(proc.stderr.decode(), "no broker reachable", f"127.0.0.1:{port}")


@pytest.fixture(scope="module")
def no_auto_create(tmp_path_factory):
    b = BrokerProcess(tmp_path_factory.mktemp("broker-no-auto") / "data",
                      extra=["--set", "auto.create.topics.enable=false"]).start()  # fmt: skip
    yield b.bootstrap
    b.close()


def test_produce_to_an_unknown_topic_without_auto_creation_fails_within_the_timeout(no_auto_create):
    start = time.monotonic()
    result = riverlog("produce", "pc-never", "--timeout", "1", "--bootstrap", no_auto_create, input=b"x\n")
    assert time.monotonic() - start < 10
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "pc-never", "not present in metadata")


# -- the format, on its own -----------------------------------------------------------


def test_format_prints_null_key_and_value_as_nothing_and_size_minus_1():
    record = ConsumerRecord("t", 0, 7, 1000, 0, None, None, [("h", None)])
    assert compile_format("[%k][%s][%K][%S][%h]")(record) == b"[][][-1][-1][h=]"


def test_format_escapes_and_literal_percent():
    record = ConsumerRecord("t", 3, 7, 1000, 0, b"k", b"\xff", [])
    assert compile_format("%p\\t%o\\r\\n\\0\\\\%%%s")(record) == b"3\t7\r\n\0\\%\xff"


def test_review_fixes_too_large_line_offset_past_end_with_e(bootstrap):
    # A line over max_request_size fails that record only; the others are delivered and counted.
    create(bootstrap, "pc-big-line")
    big = b"x" * 2_000_000
    result = riverlog("produce", "pc-big-line", "--bootstrap", bootstrap, input=b"small\n" + big + b"\nafter\n")
    assert result.exit_code == 1
    assert "1 failed" in result.stderr and "Traceback" not in result.stderr
    assert consume_all(bootstrap, "pc-big-line") == b"small\nafter\n"
    # -e with an offset past the end is the same error as without -e.
    result = riverlog("consume", "pc-big-line", "--offset", "10", "-e", "--bootstrap", bootstrap)
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "offset 10 is out of range for pc-big-line-0")


async def test_the_line_reader_drops_overlong_lines_as_it_reads():
    import io

    from riverlog.client.cli import _LineTooLong, _read_lines

    data = b"ok\n" + b"x" * 50 + b"\nfine\n" + b"y" * 3000 + b"\n" + b"z" * 40  # 3000: over several chunks
    stream = io.BytesIO(data)
    out = []
    import riverlog.client.cli as cli

    old = cli._READ_CHUNK_BYTES
    cli._READ_CHUNK_BYTES = 64  # many small reads, so long lines span chunks
    try:
        async for lines in _read_lines(stream, max_line=45):
            out += lines
    finally:
        cli._READ_CHUNK_BYTES = old
    shape = [x if isinstance(x, bytes) else "too long" for x in out]
    assert shape == [b"ok", "too long", b"fine", "too long", b"z" * 40]
    assert all(isinstance(x, (bytes, _LineTooLong)) for x in out)
