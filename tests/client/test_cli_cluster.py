"""`riverlog cluster describe` (brokers and the metadata quorum) and
`riverlog cluster up` (a local cluster as child processes) as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from click.testing import CliRunner

from riverlog.broker.cli import main
from tests.integration.broker_process import free_port


def riverlog(*args: str):
    return CliRunner().invoke(main, list(args))


def test_cluster_describe_shows_brokers_and_the_quorum(bootstrap):
    port = bootstrap.rsplit(":", 1)[1]
    result = riverlog("cluster", "describe", "--bootstrap", bootstrap)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1] == "Controller: 1" and lines[2].split() == ["BROKER", "HOST", "PORT", "RACK", "STATE"]
    assert lines[3].split() == ["1", "127.0.0.1", port, "active"]
    quorum = lines[lines.index("") + 1]
    leader, epoch, hw = quorum.split("\t")
    assert leader == "Quorum leader: 1" and epoch.startswith("Epoch: ") and int(epoch.split()[1]) >= 1
    assert hw.startswith("High watermark: ") and int(hw.split()[2]) >= 1
    header, *replicas = lines[lines.index("") + 2:]
    assert header.split() == ["NODE", "LOG", "END", "OFFSET", "LAG", "LAST", "FETCH", "ROLE"]
    [voter] = [r.split() for r in replicas]
    assert voter[0] == "1" and voter[2] == "0" and voter[3:] == ["leader", "voter"]


# -- cluster up ----------------------------------------------------------------------


def _free_base_port() -> int:
    """A base port whose client and controller ports (base, base+100) are both free now."""
    for _ in range(50):
        base = free_port()
        if base + 100 < 65536:
            try:
                import socket

                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + 100))
                return base
            except OSError:
                continue
    raise RuntimeError("no free pair of ports")


class _Lines:
    """A child's stdout read on a thread, so a test can wait for a line."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def wait_for(self, needle: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if needle in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not printed; got:\n{''.join(self.lines)}")


def _cluster_up(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, _Lines]:
    proc = subprocess.Popen([sys.executable, "-m", "riverlog.broker.cli", "cluster", "up", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    return proc, _Lines(proc)


def _node_pid(lines: _Lines, node: int) -> int:
    line = lines.wait_for(f"[cluster] node {node}: pid ")
    return int(line.split("pid ")[1].split(",")[0])


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_cluster_up_with_one_broker_serves_and_ctrl_c_leaves_no_process(tmp_path):
    base = _free_base_port()
    proc, out = _cluster_up(tmp_path, "--brokers", "1", "--data-dir", str(tmp_path / "c"), "--base-port", str(base))
    try:
        assert out.wait_for("bootstrap: ") == f"bootstrap: 127.0.0.1:{base}\n"
        pid = _node_pid(out, 1)
        out.wait_for("all 1 brokers ready")
        assert f"[node 1] " in out.wait_for("ready on")
        result = riverlog("topic", "create", "via-cluster-up", "--bootstrap", f"127.0.0.1:{base}")
        assert result.exit_code == 0, result.output
        assert (tmp_path / "c" / "node-1").is_dir()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        out.wait_for("[node 1] ") and out.wait_for("stopped cleanly")
        assert _gone(pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_node_that_dies_stops_the_cluster_and_is_named(tmp_path):
    base = _free_base_port()
    proc, out = _cluster_up(tmp_path, "--brokers", "1", "--data-dir", str(tmp_path / "c"), "--base-port", str(base))
    try:
        pid = _node_pid(out, 1)
        out.wait_for("all 1 brokers ready")
        os.kill(pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == 1
        assert "error: node 1 exited unexpectedly (status -9)" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cluster_up_refuses_a_size_or_ports_it_cannot_run():
    result = riverlog("cluster", "up", "--brokers", "0")
    assert result.exit_code == 2 and "--brokers" in result.output
    result = riverlog("cluster", "up", "--brokers", "10")
    assert result.exit_code == 2 and "--brokers" in result.output
    result = riverlog("cluster", "up", "--brokers", "3", "--base-port", "65500")
    assert result.exit_code == 2 and "--base-port 65500 leaves no room" in result.output


def test_cluster_up_refuses_when_some_nodes_lost_their_data(tmp_path):
    (tmp_path / "node-1" / "__cluster_metadata-0").mkdir(parents=True)  # node 1 has run; 2 and 3 have nothing
    result = riverlog("cluster", "up", "--brokers", "3", "--data-dir", str(tmp_path), "--base-port", "20000")
    assert result.exit_code == 2 and "node(s) 2, 3 have no data" in result.output
