"""riverlog: a partitioned, replicated log broker that speaks Kafka's wire
protocol, and its client.

This file is the ``riverlog`` package itself. The repository keeps
``broker/``, ``client/`` and ``native/`` at its top; the build configuration
(setup.py) installs them as ``riverlog.broker``, ``riverlog.client`` and
``riverlog.native``, and this package from here, so that nothing but
``riverlog`` is installed at top level.

The client's public API is importable from here too::

    from riverlog import Producer, Consumer, Admin

Like ``riverlog.client``, the names load on first use, so ``riverlog.broker``
does not pull the client in.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Admin", "Consumer", "ConsumerRecord", "NewTopic", "OffsetAndTimestamp", "Producer",
    "RecordMetadata", "SyncAdmin", "SyncConsumer", "SyncProducer", "TopicPartition",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("riverlog.client"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
