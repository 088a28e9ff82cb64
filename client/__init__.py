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
    "Producer": "riverlog.client.producer",
    "Consumer": "riverlog.client.consumer",
    "Admin": "riverlog.client.admin",
    "NewTopic": "riverlog.client.admin",
    "SyncProducer": "riverlog.client.sync",
    "SyncConsumer": "riverlog.client.sync",
    "SyncAdmin": "riverlog.client.sync",
    "TopicPartition": "riverlog.client.types",
    "RecordMetadata": "riverlog.client.types",
    "ConsumerRecord": "riverlog.client.types",
    "OffsetAndTimestamp": "riverlog.client.types",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
