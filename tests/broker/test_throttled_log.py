"""ThrottledLog: a warning that repeats is logged at most once per interval,
with a count of those held back."""

from __future__ import annotations

import logging

from riverlog.broker.throttled_log import ThrottledLog


def test_repeats_within_the_interval_are_counted_and_told_with_the_next_line(caplog):
    now = [0.0]
    throttled = ThrottledLog(logging.getLogger("test.throttled"), every_s=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.throttled"):
        assert throttled.warning("out of %s", "descriptors")
        for t in (0.1, 5.0, 9.9):
            now[0] = t
            assert not throttled.warning("out of %s", "descriptors")
        now[0] = 10.0
        assert throttled.warning("out of %s", "descriptors")
        now[0] = 25.0
        assert throttled.warning("out of %s", "descriptors")
    assert [r.getMessage() for r in caplog.records] == [
        "out of descriptors",
        "out of descriptors (3 more like it not logged since the last line)",
        "out of descriptors",
    ]
