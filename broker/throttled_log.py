"""A warning that may repeat many times a second, logged at most once per interval.

Out of file descriptors, every request that opens a file and every accept
fails the same way; a controller away fails every retry. The first line is
logged at once; repeats within ``every_s`` are only counted, and the count
is told with the next line, so the log shows the condition lasting without
being flooded by it.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from riverlog.broker.clock import monotonic_s

EVERY_S = 10.0


class ThrottledLog:
    def __init__(self, logger: logging.Logger, every_s: float = EVERY_S,
                 clock: Callable[[], float] = monotonic_s) -> None:  # fmt: skip
        self.logger = logger
        self.every_s = every_s
        self.clock = clock  # trio.current_time in a Trio task (its tests' clock), else monotonic
        self._quiet_until = float("-inf")
        self._held_back = 0
        # Storage work runs on the Trio thread and on the start/stop thread.
        self._lock = threading.Lock()

    def warning(self, msg: str, *args) -> bool:
        """Log ``msg % args`` at WARNING unless a line was logged less than
        ``every_s`` ago; returns whether it was logged."""
        now = self.clock()
        with self._lock:
            if now < self._quiet_until:
                self._held_back += 1
                return False
            held_back, self._held_back = self._held_back, 0
            self._quiet_until = now + self.every_s
        if held_back:
            msg += " (%d more like it not logged since the last line)"
            args = (*args, held_back)
        self.logger.warning(msg, *args)
        return True
