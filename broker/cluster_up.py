"""``riverlog cluster up``: a local cluster of N broker processes in one command.

Every node is a combined broker and controller voter (node ids 1..N), so the
quorum survives the loss of any minority. Ports: node i serves clients on
``base_port + i - 1`` and the controller quorum on ``base_port + 100 + i - 1``
(9092.. and 9192.. by default: a fixed offset, so an operator can tell the
two apart at a glance). Node i keeps its data in ``DIR/node-i``.

This process only supervises: it starts the nodes (``riverlog broker
start``), prints the bootstrap string, copies each node's log lines to
stdout prefixed ``[node i] ``, and stops them all on SIGINT or SIGTERM
(SIGTERM to each, then SIGKILL to any still running after a grace period).
A node that exits on its own stops the cluster and the command fails naming
it. The nodes run in their own sessions, so a terminal's Ctrl-C reaches only
this process and they are stopped once, in order; on Linux each also gets
SIGTERM if this process dies without cleaning up (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from riverlog.broker.clock import monotonic_s
from riverlog.broker.controller.raft_store import METADATA_DIR

MAX_BROKERS = 9
CONTROLLER_PORT_OFFSET = 100
STOP_GRACE_S = 15.0  # a broker's own shutdown grace is 5 s, plus flushing
_POLL_S = 0.1


@dataclass(frozen=True)
class Node:
    node_id: int
    port: int
    controller_port: int
    data_dir: Path


def plan(brokers: int, data_dir: Path, base_port: int) -> list[Node]:
    """The nodes of a local cluster; ValueError if the ports do not fit."""
    if not 1 <= brokers <= MAX_BROKERS:
        raise ValueError(f"--brokers must be between 1 and {MAX_BROKERS}, not {brokers}")
    top = base_port + CONTROLLER_PORT_OFFSET + brokers - 1
    if base_port < 1 or top > 65535:
        raise ValueError(f"--base-port {base_port} leaves no room for {brokers} client and controller ports "
                         f"(up to {top}; the highest is 65535)")  # fmt: skip
    return [Node(i, base_port + i - 1, base_port + CONTROLLER_PORT_OFFSET + i - 1, data_dir / f"node-{i}")
            for i in range(1, brokers + 1)]  # fmt: skip


def bootstrap(nodes: list[Node], host: str = "127.0.0.1") -> str:
    return ",".join(f"{host}:{n.port}" for n in nodes)


def node_argv(node: Node, nodes: list[Node], host: str = "127.0.0.1") -> list[str]:
    """``--initial-cluster`` only when every node is new: a new cluster's
    first start. A node whose data is gone while others have theirs is
    refused by ``check_fresh_start`` instead (it must not rejoin empty)."""
    quorum = ",".join(f"{n.node_id}@{host}:{n.controller_port}" for n in nodes)
    return [sys.executable, "-m", "riverlog.broker.cli", "broker", "start", "--node-id", str(node.node_id),
            "--listen", f"{host}:{node.port}", "--controller-listen", f"{host}:{node.controller_port}",
            "--controller-quorum", quorum, "--data-dir", str(node.data_dir),
            *(["--initial-cluster"] if all(is_new(n.data_dir) for n in nodes) else [])]  # fmt: skip


def is_new(data_dir: Path) -> bool:
    """A node that has never run (no metadata log)."""
    return not (data_dir / METADATA_DIR).is_dir()


def check_fresh_start(nodes: list[Node]) -> None:
    """ValueError when some nodes have data and some none: a wiped voter."""
    new = [n.node_id for n in nodes if is_new(n.data_dir)]
    if new and len(new) < len(nodes):
        raise ValueError(
            f"node(s) {', '.join(map(str, new))} have no data while the others have theirs: a voter rejoining "
            "with an empty log could elect a leader that lacks committed metadata. Restore their data "
            "directories, or remove every node's to start a new cluster.")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux only)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Cluster:
    """N supervised broker processes and the threads copying their output."""

    def __init__(self, nodes: list[Node], out: IO[str]) -> None:
        self.nodes = nodes
        self.out = out
        self.procs: dict[int, subprocess.Popen] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.ready: set[int] = set()

    def say(self, line: str) -> None:
        with self._lock:
            self.out.write(line if line.endswith("\n") else line + "\n")
            self.out.flush()

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for node in self.nodes:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            proc = subprocess.Popen(node_argv(node, self.nodes), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True, env=env, start_new_session=True,
                                    preexec_fn=_die_with_parent)  # fmt: skip
            self.procs[node.node_id] = proc
            self.say(f"[cluster] node {node.node_id}: pid {proc.pid}, clients 127.0.0.1:{node.port}, "
                     f"controller 127.0.0.1:{node.controller_port}, data {node.data_dir}")  # fmt: skip
        for node_id, proc in self.procs.items():
            thread = threading.Thread(target=self._copy, args=(node_id, proc.stdout), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _copy(self, node_id: int, stream: IO[str]) -> None:
        for line in stream:
            self.say(f"[node {node_id}] {line}")
            if "ready on" in line and node_id not in self.ready:
                self.ready.add(node_id)
                if len(self.ready) == len(self.nodes):
                    self.say(f"[cluster] all {len(self.nodes)} brokers ready; bootstrap {bootstrap(self.nodes)}")

    def exited(self) -> list[tuple[int, int]]:
        """(node id, status) of every node no longer running."""
        return [(n, p.returncode) for n, p in self.procs.items() if p.poll() is not None]

    def stop(self, grace_s: float = STOP_GRACE_S) -> list[int]:
        """SIGTERM every running node, wait, SIGKILL the stragglers; the ids killed."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        killed = []
        deadline = monotonic_s() + grace_s
        for node_id, proc in self.procs.items():
            try:
                proc.wait(timeout=max(deadline - monotonic_s(), 0.01))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                killed.append(node_id)
        for thread in self._threads:
            thread.join(timeout=2)
        return killed


def run(brokers: int, data_dir: Path, base_port: int, out: IO[str] = sys.stdout, err: IO[str] = sys.stderr) -> int:
    """Run the cluster until a signal or a node's exit; the exit status."""
    nodes = plan(brokers, data_dir, base_port)
    check_fresh_start(nodes)
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum, frame) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    cluster = Cluster(nodes, out)
    status = 0
    try:
        out.write(f"bootstrap: {bootstrap(nodes)}\n")
        out.flush()
        cluster.start()
        while not stop.wait(_POLL_S):
            gone = cluster.exited()
            if gone:
                for node_id, code in gone:
                    err.write(f"error: node {node_id} exited unexpectedly (status {code}); stopping the cluster\n")
                status = 1
                break
        if received:
            cluster.say(f"[cluster] received {received[0]}, stopping {len(nodes)} brokers")
    finally:
        killed = cluster.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if killed:
        err.write(f"error: node(s) {', '.join(map(str, killed))} did not stop within {STOP_GRACE_S:.0f} s; killed\n")
        status = 1
    elif status == 0:
        for node_id, code in cluster.exited():
            if code != 0:
                err.write(f"error: node {node_id} exited with status {code} while stopping (see its log above)\n")
                status = 1
    if status == 0:
        cluster.say("[cluster] stopped")
    return status
