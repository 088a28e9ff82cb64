import itertools

import pytest

from broker.metadata.controller import QuorumController
from broker.metadata.decisions import TopicDefaults
from broker.metadata.metadata_log import MetadataLog


@pytest.fixture
def make_controller(tmp_path):
    opened = []
    ids = itertools.count(1)

    def make(node_id=1, defaults=TopicDefaults(), start=True):
        c = QuorumController(
            MetadataLog(tmp_path), node_id, "test-cluster", defaults=defaults,
            clock_ms=lambda: 1_700_000_000_000, new_topic_id=lambda: f"{next(ids):032x}",
        )
        if start:
            c.start("127.0.0.1", 9092)
        opened.append(c)
        return c

    yield make
    for c in opened:
        try:
            c.close()
        except Exception:
            pass
