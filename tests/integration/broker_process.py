"""Server processes on loopback, started and stopped by a test or a benchmark:
a riverlog broker, or any server that logs a ``ready on`` line when it listens."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from riverlog.client.protocol import RequestHeader
from riverlog.client.protocol.api import decode_response, encode_request_frame


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free now (all bound at once, so no repeats)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class ServerProcess:
    """A child process that is ready once its log shows ``ready on``."""

    name = "server"
    cwd: Path | None = None  # where to run it (None: this process's directory)
    preexec_fn = None  # run in the child before exec (say, resource.setrlimit)

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 30) -> ServerProcess:
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                self.argv(), cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=self.preexec_fn,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready on" in self.log_path.read_text():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start:\n{self.log_path.read_text()}")

    def stop(self, timeout: float = 30) -> int:
        """Graceful stop (SIGTERM); returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """kill -9: no clean shutdown."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class BrokerProcess(ServerProcess):
    name = "broker"

    def __init__(self, data_dir: Path, port: int | None = None, extra: list[str] | None = None) -> None:
        port = port or free_port()
        super().__init__(port, data_dir.parent / f"broker-{port}.log")
        self.data_dir = data_dir
        self.extra = extra or []

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "riverlog.broker.cli", "broker", "start", "--listen", self.bootstrap,
                "--data-dir", str(self.data_dir), *self.extra]  # fmt: skip


def read_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return bytes(data)


def call(port: int, api_key: int, version: int, body: dict, timeout_s: float = 35.0) -> dict:
    """One request to the broker on ``port`` itself (no client routing), its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(encode_request_frame(RequestHeader(api_key, version, 7, "riverlog-tests"), body))
        (size,) = struct.unpack(">i", read_exactly(sock, 4))
        correlation_id, answer = decode_response(api_key, version, read_exactly(sock, size))
    assert correlation_id == 7
    return answer
