"""A real broker process's memory under connections that announce large
requests and never finish them, and under many idle connections: measured
as the process's resident set (a bound with a wide margin, not a timing)."""

from __future__ import annotations

import os
import socket
import struct
import time

from riverlog.client.protocol import FrameDecoder, encode_frame
from riverlog.client.protocol.api import decode_response, encode_request
from riverlog.client.protocol.headers import RequestHeader

from .broker_process import BrokerProcess

MiB = 1 << 20


def _status_kib(pid: int, field: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _api_versions(sock: socket.socket) -> int:
    sock.sendall(encode_frame(encode_request(RequestHeader(18, 3, 1, "t"), {})))
    decoder = FrameDecoder(1 << 20)
    while (frame := decoder.next_frame()) is None:
        data = sock.recv(65536)
        assert data, "the broker closed the connection"
        decoder.feed(data)
    return decode_response(18, 3, frame)[1]["error_code"]


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def test_unfinished_large_requests_take_no_more_than_the_request_pool(tmp_path):
    """Twelve connections each announce a 24 MiB request and send 23 MiB of
    it; with queued.max.request.bytes at 16 MiB the broker reads about that
    much of them and then, as only connections waiting for more hold the
    pool, one of them whole (the one holding most goes on), and holds the
    others back, where without a pool it would hold all 276 MiB."""
    broker = BrokerProcess(tmp_path / "data", extra=[
        "--set", f"queued.max.request.bytes={16 * MiB}", "--set", f"socket.request.max.bytes={32 * MiB}",
    ]).start()  # fmt: skip
    try:
        pid = broker.proc.pid
        with _connect(broker.port) as probe:
            assert _api_versions(probe) == 0
        baseline_kib = _status_kib(pid, "VmRSS")
        announced, sent_each = 24 * MiB, 23 * MiB
        payload = memoryview(struct.pack(">i", announced) + bytes(sent_each))
        socks = [_connect(broker.port) for _ in range(12)]
        sent = [0] * len(socks)
        for s in socks:
            s.setblocking(False)
        # Send what the broker takes until every request is sent or nothing
        # moves for a while; the assertion below is a bound on what the
        # broker holds, which waiting longer could only make harder to meet.
        last_progress = time.monotonic()
        while any(n < len(payload) for n in sent) and time.monotonic() - last_progress < 3:
            moved = False
            for i, s in enumerate(socks):
                if sent[i] < len(payload):
                    try:
                        n = s.send(payload[sent[i] : sent[i] + MiB])
                    except BlockingIOError:
                        continue
                    sent[i] += n
                    moved = moved or n > 0
            if moved:
                last_progress = time.monotonic()
            else:
                time.sleep(0.01)
        assert max(sent) == len(payload)  # one of them was read whole
        peak_growth_mib = (_status_kib(pid, "VmHWM") - baseline_kib) / 1024
        assert peak_growth_mib < 100, f"the broker grew by {peak_growth_mib:.0f} MiB"
        with _connect(broker.port) as probe:  # small requests are still served, from what the pool has left
            probe.settimeout(30)
            for s in socks:
                s.close()
            assert _api_versions(probe) == 0
    finally:
        broker.close()


def test_idle_connections_cost_little_and_leave_nothing_behind(tmp_path):
    """2,000 connections, each idle after one request: well under the 64 KiB
    read buffer each that they used to hold. Closed and opened again, they
    take no more: what the first ones had was given back (the allocator
    keeps it for reuse rather than returning it to the system)."""
    broker = BrokerProcess(tmp_path / "data").start()
    socks: list[socket.socket] = []
    try:
        pid = broker.proc.pid
        with _connect(broker.port) as probe:
            assert _api_versions(probe) == 0
        baseline_kib = _status_kib(pid, "VmRSS")
        baseline_files = _open_files(pid)
        held_kib = []
        for _ in range(2):
            for _ in range(2000):
                socks.append(_connect(broker.port))
                assert _api_versions(socks[-1]) == 0
            held_kib.append(_status_kib(pid, "VmRSS"))
            while socks:
                socks.pop().close()
            deadline = time.monotonic() + 60
            while _open_files(pid) > baseline_files:  # until the broker has closed its ends too
                assert time.monotonic() < deadline, "the broker kept closed connections open"
                time.sleep(0.05)
        per_connection_kib = (held_kib[0] - baseline_kib) / 2000
        assert per_connection_kib < 32, f"{per_connection_kib:.1f} KiB a connection"
        again_kib = held_kib[1] - held_kib[0]
        assert again_kib < 8 * 1024, f"2,000 connections again took {again_kib} KiB more"
    finally:
        for s in socks:
            s.close()
        broker.close()
