"""A full disk is a log-directory failure, never a crash: real broker processes
on a small filesystem that the test mounts and fills by producing.

Needs root (CAP_SYS_ADMIN) to mount a 64 MiB tmpfs, as CI has; without it the
tests fail saying so. Most give the broker two log directories: ``big``
(first, so it holds the metadata log) on the test's temporary directory, and
``small`` on the tmpfs; the last has ``small`` only, with the metadata log
elsewhere (``metadata.log.dir``). A ballast file on the tmpfs, removed by the
test, stands for the space an operator frees.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from riverlog.client.protocol import ErrorCode, FrameDecoder, RequestHeader, decode_response, encode_frame, encode_request
from riverlog.client.records import build_batch, iter_batches

from .broker_process import BrokerProcess

SMALL_FS_BYTES = 64 * 1024 * 1024
BALLAST_BYTES = 8 * 1024 * 1024
VALUE_BYTES = 400_000  # one record a batch: the fill stops with less than this free
STORAGE_ERROR = int(ErrorCode.KAFKA_STORAGE_ERROR)


@pytest.fixture
def small_fs(tmp_path):
    mount_point = tmp_path / "small-fs"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_FS_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"these tests need to mount a 64 MiB tmpfs (run as root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


class Wire:
    """One Kafka connection, one request at a time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.decoder = FrameDecoder(64 << 20)
        self.cid = 0

    def call(self, api_key: int, version: int, body: dict) -> dict:
        self.cid += 1
        self.sock.sendall(encode_frame(encode_request(RequestHeader(api_key, version, self.cid, "t"), body)))
        while (frame := self.decoder.next_frame()) is None:
            data = self.sock.recv(65536)
            assert data, "the broker closed the connection instead of answering"
            self.decoder.feed(data)
        cid, answer = decode_response(api_key, version, frame)
        assert cid == self.cid
        return answer

    def create_topic(self, name: str, partitions: int = 1) -> int:
        body = {"topics": [{"name": name, "num_partitions": partitions, "replication_factor": 1,
                            "assignments": [], "configs": []}], "timeout_ms": 30000, "validate_only": False}  # fmt: skip
        return self.call(19, 4, body)["topics"][0]["error_code"]

    def delete_topic(self, name: str) -> int:
        body = {"topic_names": [name], "timeout_ms": 30000}
        return self.call(20, 3, body)["responses"][0]["error_code"]

    def produce(self, topic: str, value: bytes, partition: int = 0) -> int:
        batch = build_batch([(None, value, int(time.time() * 1000), [])])
        body = {"acks": -1, "timeout_ms": 30000,
                "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": batch}]}]}  # fmt: skip
        return self.call(0, 7, body)["responses"][0]["partition_responses"][0]["error_code"]

    def fetch(self, topic: str, offset: int = 0) -> tuple[int, int, int]:
        """(error code, high watermark, records read from ``offset``)."""
        body = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": 0,
                "topics": [{"topic": topic, "partitions": [{"partition": 0, "fetch_offset": offset,
                                                             "partition_max_bytes": 1 << 20}]}]}  # fmt: skip
        part = self.call(1, 10, body)["responses"][0]["partitions"][0]
        records = sum(len(list(b.records())) for b in iter_batches(part["records"] or b""))
        return part["error_code"], part["high_watermark"], records

    def list_offsets(self, topic: str) -> int:
        body = {"replica_id": -1, "isolation_level": 0,
                "topics": [{"name": topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}]}  # fmt: skip
        return self.call(2, 4, body)["topics"][0]["partitions"][0]["error_code"]

    def delete_records(self, topic: str, offset: int) -> int:
        body = {"topics": [{"name": topic, "partitions": [{"partition_index": 0, "offset": offset}]}],
                "timeout_ms": 30000}  # fmt: skip
        return self.call(21, 1, body)["topics"][0]["partitions"][0]["error_code"]

    def close(self) -> None:
        self.sock.close()


def _until(condition, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = condition()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _start(tmp_path: Path, small: Path, port: int | None = None) -> BrokerProcess:
    big = tmp_path / "big"
    return BrokerProcess(big, port=port, extra=["--set", f"log.dirs={big},{small}"]).start()


def _error_lines(broker: BrokerProcess, small: Path) -> list[str]:
    return [line for line in broker.log_path.read_text().splitlines() if " ERROR " in line and str(small) in line]


def _fill(wire: Wire, topic: str, value_bytes: int = VALUE_BYTES) -> int:
    """Produce until the broker refuses; returns how many were acknowledged."""
    for acked in range(2 * SMALL_FS_BYTES // value_bytes):
        code = wire.produce(topic, b"x" * value_bytes)
        if code != 0:
            assert code == STORAGE_ERROR, f"produce on a full disk answered {ErrorCode(code).name}"
            return acked
    raise AssertionError("the small filesystem never filled")


def _fill_with_a_file(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass  # full
    finally:
        os.close(fd)


def _setup(tmp_path: Path, small_fs: Path) -> tuple[BrokerProcess, Wire, Path]:
    """A broker with ``other`` in the big directory, ``fill`` in the small one, and ballast."""
    (small_fs / "ballast").write_bytes(b"\0" * BALLAST_BYTES)
    small = small_fs / "data"
    broker = _start(tmp_path, small)
    wire = Wire(broker.port)
    assert wire.create_topic("other") == 0
    assert wire.create_topic("fill") == 0
    _until(lambda: wire.produce("other", b"o") == 0 and wire.fetch("fill")[0] == 0, "both topics to be served")
    assert (small / "fill-0").is_dir() and (tmp_path / "big" / "other-0").is_dir()
    return broker, wire, small


def _alive_and_serving(broker: BrokerProcess, wire: Wire) -> None:
    assert broker.proc.poll() is None, "the broker died"
    assert wire.produce("other", b"still here") == 0
    assert wire.fetch("other")[0] == 0


def test_a_full_directory_answers_storage_error_on_every_api_and_comes_back_when_space_is_freed(tmp_path, small_fs):
    broker, wire, small = _setup(tmp_path, small_fs)
    try:
        acked = _fill(wire, "fill")
        assert acked > 100
        # Every API on the full directory's partition: KAFKA_STORAGE_ERROR, the connection kept.
        assert wire.produce("fill", b"small") == STORAGE_ERROR
        assert wire.fetch("fill")[0] == STORAGE_ERROR
        assert wire.list_offsets("fill") == STORAGE_ERROR
        assert wire.delete_records("fill", 1) == STORAGE_ERROR
        # A topic created now goes to the directory that has room, and takes writes.
        assert wire.create_topic("later", 2) == 0
        _until(lambda: wire.produce("later", b"l") == 0, "the new topic to take writes")
        assert wire.produce("later", b"l", partition=1) == 0
        _alive_and_serving(broker, wire)
        errors = _error_lines(broker, small)
        assert len(errors) == 1, errors  # said once, not once per request
        assert "offline" in errors[0]

        # Space freed: the directory comes back (reloaded from disk), nothing acknowledged is lost.
        (small_fs / "ballast").unlink()
        _until(lambda: wire.produce("fill", b"again") == 0, "the directory to come back online")
        code, high_watermark, _ = wire.fetch("fill")
        assert (code, high_watermark) == (0, acked + 1)
        assert wire.fetch("fill", 0)[2] >= 1
        assert wire.delete_records("fill", 1) == 0
        assert "back online" in broker.log_path.read_text()
        _alive_and_serving(broker, wire)
    finally:
        wire.close()
        broker.close()


@pytest.mark.parametrize("how", ["graceful", "kill -9"])
def test_a_broker_restarts_on_a_full_disk(tmp_path, small_fs, how):
    broker, wire, small = _setup(tmp_path, small_fs)
    try:
        acked = _fill(wire, "fill")
        wire.close()
        if how == "graceful":
            assert broker.stop() == 0
        else:
            broker.kill()
        # Fill what the stop may have freed, so the restart meets a full disk.
        _fill_with_a_file(small_fs / "more-ballast")
        broker = _start(tmp_path, small)  # a new port: a new log file, read from its start
        wire = Wire(broker.port)
        _alive_and_serving(broker, wire)
        assert wire.produce("fill", b"x" * VALUE_BYTES) == STORAGE_ERROR
        assert wire.delete_records("fill", 1) == STORAGE_ERROR
        assert len(_error_lines(broker, small)) == 1
        _alive_and_serving(broker, wire)

        (small_fs / "ballast").unlink()
        (small_fs / "more-ballast").unlink()
        _until(lambda: wire.produce("fill", b"again") == 0, "the directory to come back online")
        assert wire.fetch("fill")[:2] == (0, acked + 1)
    finally:
        wire.close()
        broker.close()


@pytest.mark.parametrize("how", ["graceful", "kill -9"])
def test_a_broker_with_one_disk_that_producing_filled_restarts_and_creates_topics(tmp_path, small_fs, how):
    """Everything on the small disk, the metadata log too, as a plain
    ``--data-dir``, filled to its last page by small batches: the metadata
    log's reserve lets it start and create topics; the full data directory
    answers KAFKA_STORAGE_ERROR."""
    (small_fs / "ballast").write_bytes(b"\0" * (SMALL_FS_BYTES - 6 * 1024 * 1024))  # 6 MiB left
    data = small_fs / "data"
    broker = BrokerProcess(data)
    broker.log_path = tmp_path / "first.log"  # not on the disk that fills
    broker.start()
    wire = Wire(broker.port)
    try:
        assert wire.create_topic("fill") == 0
        _until(lambda: wire.fetch("fill")[0] == 0, "the topic to be served")
        acked = _fill(wire, "fill", value_bytes=2048)
        assert acked > 1000
        wire.close()
        if how == "graceful":
            assert broker.stop() == 0
        else:
            broker.kill()
        broker.log_path = tmp_path / "restarted.log"  # the disk is full: the second log goes elsewhere
        broker.start()
        wire = Wire(broker.port)
        assert wire.produce("fill", b"x" * VALUE_BYTES) == STORAGE_ERROR
        assert wire.create_topic("late") == 0
        _until(lambda: wire.produce("late", b"l") == STORAGE_ERROR, "the new partition to answer")
        assert broker.proc.poll() is None
        assert len(_error_lines(broker, data)) == 1
        assert wire.delete_topic("fill") == 0
        _until(lambda: wire.produce("late", b"l") == 0, "the new topic to take writes")
        assert broker.proc.poll() is None
        wire.close()
        assert broker.stop() == 0
    finally:
        wire.close()
        broker.close()


def test_creating_a_topic_when_every_directory_is_full(tmp_path, small_fs):
    """The only data directory full (the metadata log on another disk):
    CreateTopics answers, the broker lives, and the new partition answers
    KAFKA_STORAGE_ERROR until space is freed (here by deleting the topic that
    filled it), then takes writes: never a topic that exists and can never be
    written."""
    (small_fs / "ballast").write_bytes(b"\0" * BALLAST_BYTES)
    small = small_fs / "data"
    metadata = tmp_path / "meta"
    broker = BrokerProcess(metadata, extra=["--set", f"log.dirs={small}", "--set", f"metadata.log.dir={metadata}"])
    broker.start()
    wire = Wire(broker.port)
    try:
        assert wire.create_topic("fill") == 0
        _until(lambda: wire.fetch("fill")[0] == 0, "the topic to be served")
        acked = _fill(wire, "fill")
        _fill_with_a_file(small_fs / "more-ballast")  # not a page left
        assert wire.create_topic("late") == 0
        _until(lambda: wire.produce("late", b"l") == STORAGE_ERROR, "the new partition to answer")
        assert wire.fetch("late")[0] == STORAGE_ERROR
        assert wire.fetch("fill")[0] == STORAGE_ERROR
        assert broker.proc.poll() is None
        assert len(_error_lines(broker, small)) == 1

        assert acked > 100
        assert wire.delete_topic("fill") == 0  # its files go at once, though the directory is offline
        _until(lambda: wire.produce("late", b"l") == 0, "the new topic to take writes")
        assert wire.fetch("late")[:2] == (0, 1)
        assert not (small / "fill-0").exists()
        wire.close()
        assert broker.stop() == 0
    finally:
        wire.close()
        broker.close()
