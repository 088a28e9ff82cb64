"""`riverlog broker start` as a real process: ready line, serving, clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from click.testing import CliRunner

from riverlog.broker.cli import main
from riverlog.client.protocol import FrameDecoder, encode_frame
from riverlog.client.protocol.api import decode_response, encode_request
from riverlog.client.protocol.headers import RequestHeader


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_line(proc, needle: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} not logged; got:\n{''.join(seen)}")


def test_broker_start_serves_and_stops_cleanly_on_sigterm(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "riverlog.broker.cli", "broker", "start", "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(tmp_path / "data"), "--set", "num.partitions=3"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert f"ready on 127.0.0.1:{port}" in _wait_for_line(proc, "ready on")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(encode_frame(encode_request(RequestHeader(18, 3, 5, "t"), {})))
            decoder = FrameDecoder(1 << 20)
            while (frame := decoder.next_frame()) is None:
                decoder.feed(sock.recv(65536))
            corr, body = decode_response(18, 3, frame)
            assert corr == 5 and body["error_code"] == 0
        proc.send_signal(signal.SIGTERM)
        _wait_for_line(proc, "stopped cleanly")
        assert proc.wait(timeout=20) == 0
        assert (tmp_path / "data" / ".riverlog_cleanshutdown").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_broker_start_refuses_bad_arguments_with_a_clear_message(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["broker", "start", "--listen", "nowhere"])
    assert result.exit_code == 2 and "listeners must be HOST:PORT" in result.output
    result = runner.invoke(main, ["broker", "start", "--set", "num.partitions"])
    assert result.exit_code == 2 and "expected key=value" in result.output
    result = runner.invoke(main, ["broker", "start", "--set", "num.partitions=zero"])
    assert result.exit_code == 2 and "num.partitions must be an integer" in result.output
