from __future__ import annotations

import pytest

from riverlog.broker.storage.log import Log
from riverlog.broker.storage.log_config import LogConfig
from riverlog.client.records import RecordBatch, build_batch, iter_batches

BASE_TS = 1_700_000_000_000


def make_batch(count: int = 1, *, start: int = 0, ts: int = BASE_TS, value_size: int = 20, keys=None) -> bytes:
    """A producer's batch (base offset 0, epoch -1) of ``count`` records."""
    records = []
    for i in range(count):
        key = keys[i] if keys is not None else f"k{start + i}".encode()
        value = f"v{start + i}:".encode().ljust(value_size, b".")
        records.append((key, value, ts + i, [("h", b"x")]))
    return build_batch(records)


def read_all(log: Log, start: int | None = None, max_offset: int | None = None) -> list:
    """Every record from ``start`` (log start) on, following reads across segments."""
    offset = log.log_start_offset if start is None else start
    out = []
    while True:
        data = log.read(offset, 1 << 20, max_offset=max_offset)
        if data.slice is None:
            return out
        got = [r for b in iter_batches(data.slice.read()) for r in b.records() if r.offset >= offset]
        if not got:
            return out
        out += got
        offset = got[-1].offset + 1


def batch_offsets(raw: bytes) -> list[tuple[int, int]]:
    return [(b.base_offset, b.last_offset) for b in iter_batches(raw)]


@pytest.fixture
def small_config() -> LogConfig:
    return LogConfig(segment_bytes=1024, index_interval_bytes=100, segment_index_bytes=1200, retention_ms=-1)


@pytest.fixture
def open_log(tmp_path, small_config):
    logs = []

    def _open(config: LogConfig | None = None, **kwargs) -> Log:
        lg = Log(tmp_path / "orders-0", config or small_config, **kwargs)
        logs.append(lg)
        return lg

    yield _open


__all__ = ["BASE_TS", "make_batch", "read_all", "batch_offsets", "RecordBatch"]
