"""Running a test out of file descriptors, for real."""

from __future__ import annotations

import contextlib
import os
import resource


@contextlib.contextmanager
def no_descriptors_left():
    """Every descriptor of this process taken: the soft limit lowered to just
    above what is open, the rest filled with copies of /dev/null."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    taken = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 32, hard))
    try:
        while True:
            try:
                taken.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
        yield
    finally:
        for fd in taken:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
