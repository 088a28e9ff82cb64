"""riverlog's Kafka client: Producer, Consumer, Admin (Trio) and their
blocking faces SyncProducer, SyncConsumer, SyncAdmin.

The names are imported on first use (PEP 562), so code that needs only the
wire protocol or record batches (the broker, ``riverlog --help``) does not
load the client and Trio with them.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Producer": "client.producer",
    "Consumer": "client.consumer",
    "Admin": "client.admin",
    "NewTopic": "client.admin",
    "SyncProducer": "client.sync",
    "SyncConsumer": "client.sync",
    "SyncAdmin": "client.sync",
    "TopicPartition": "client.types",
    "RecordMetadata": "client.types",
    "ConsumerRecord": "client.types",
    "OffsetAndTimestamp": "client.types",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
