"""Index lookups agree with a linear scan of the log, for random logs."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riverlog.broker.storage.log import Log
from riverlog.broker.storage.log_config import LogConfig
from riverlog.client.records import build_batch

batches_strategy = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=5),  # records in the batch
        st.integers(min_value=0, max_value=120),  # value size
        st.integers(min_value=-5_000, max_value=5_000),  # timestamp jitter: not monotonic
    ),
    min_size=1,
    max_size=60,
)


def _build(log: Log, spec) -> list[tuple[int, int]]:
    """Append the batches; return (offset, timestamp) of every record in order."""
    records = []
    t0 = 1_700_000_000_000
    for i, (count, size, jitter) in enumerate(spec):
        ts = [t0 + i * 1000 + jitter + j for j in range(count)]
        info = log.append_as_leader(
            build_batch([(b"k", b"x" * size, t, ()) for t in ts]), leader_epoch=0
        )
        records += [(info.first_offset + j, t) for j, t in enumerate(ts)]
    return records


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=batches_strategy, interval=st.sampled_from([0, 50, 300, 4096]), data=st.data())
def test_offset_and_time_lookups_match_a_linear_scan(spec, interval, data):
    config = LogConfig(segment_bytes=2000, index_interval_bytes=interval, segment_index_bytes=240)
    with tempfile.TemporaryDirectory() as tmp:
        log = Log(Path(tmp) / "t-0", config)
        records = _build(log, spec)
        for seg in log.segments:
            headers = list(seg.walk(0))
            idx = seg.offset_index
            for slot in range(idx.entries):  # every entry points at the batch it names
                offset, position = idx.entry(slot)
                assert any(h.position == position and h.last_offset == offset for h in headers)
            for target in range(seg.base_offset - 1, seg.next_offset + 2):
                got = seg.translate_offset(target)
                want = next((h for h in headers if h.last_offset >= target), None)
                assert got == want
                indexed = [idx.entry(s) for s in range(idx.entries) if idx.entry(s)[0] <= target]
                assert idx.lookup(target) == (indexed[-1] if indexed else (seg.base_offset, 0))
        targets = data.draw(
            st.lists(st.integers(min_value=1_700_000_000_000 - 6_000, max_value=1_700_000_000_000 + 70_000), max_size=15)
        )
        for target in targets + [t for _, t in records[:5]]:
            want = next(((t, o) for o, t in records if t >= target), None)
            assert log.find_offset_by_timestamp(target) == want
        log.close()
