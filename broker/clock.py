"""The broker's clocks, one of each.

- ``wall_ms()``: the time of day, in ms since the epoch (Kafka's
  ``Time.milliseconds()``): for what is written down or compared with what
  was: record and batch timestamps, segment ages and retention, deletion
  times, offset commit times, the metadata log's record times, broker
  sessions, group deadlines.
- ``monotonic_ms()``: a clock that never jumps, in ms (Kafka's
  ``Time.hiResClockMs()``): for how long something took; ``monotonic_s()``
  the same in seconds, for intervals and timeouts outside Trio (the log
  throttle, waiting for child processes).

Deadlines the broker waits on (``trio.move_on_at``, ``fail_at``, a due time
compared with ``trio.current_time()``) keep Trio's own clock, in seconds:
that is the clock Trio's waits run on (a test may give Trio another). The
pure cores (Raft, the group rules, produce rules) read no clock: they take
the time as an argument.
"""

from __future__ import annotations

import time


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def monotonic_s() -> float:
    return time.monotonic()


def monotonic_ms() -> float:
    return time.monotonic() * 1000
