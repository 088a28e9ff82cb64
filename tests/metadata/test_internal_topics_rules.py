"""The rule of what a client may do to an internal topic (pure), and the
controller's decisions that apply it, whichever broker forwarded the request."""

from __future__ import annotations

import uuid

from riverlog.broker.metadata import internal_topics
from riverlog.broker.metadata.decisions import (
    TopicDefaults,
    decide_alter_configs,
    decide_create_partitions,
    decide_create_topics,
    decide_delete_topics,
)
from riverlog.broker.metadata.image import MetadataImage
from riverlog.broker.metadata.records import RegisterBrokerRecord
from riverlog.broker.storage.log_config import LogConfig
from riverlog.client.protocol import ErrorCode

OFFSETS = "__consumer_offsets"


def _image_with_offsets_topic() -> MetadataImage:
    image = MetadataImage.empty("c", 1).apply_all([(1, RegisterBrokerRecord(1, "127.0.0.1", 9092, None, fenced=False))])
    defaults = TopicDefaults()
    (result,), records = decide_create_topics(image, [(OFFSETS, 3, 1, {"cleanup.policy": "compact"})], defaults,
                                              lambda: uuid.uuid4().hex)  # fmt: skip
    assert result.error_code == ErrorCode.NONE
    return image.apply_all((image.offset + 1 + i, r) for i, r in enumerate(records))


def test_only_consumer_offsets_is_internal():
    assert internal_topics.is_internal(OFFSETS)
    for name in ("t", "__transaction_state", "__cluster_metadata", "__consumer_offsets_", "_consumer_offsets"):
        assert not internal_topics.is_internal(name)
        assert internal_topics.produce_error(name) is None and internal_topics.delete_topic_error(name) is None
        assert internal_topics.delete_records_error(name) is None
        assert internal_topics.create_partitions_error(name) is None
        assert internal_topics.config_error(name, LogConfig(cleanup_policy=("delete",)), LogConfig()) is None


def test_config_rule():
    base = LogConfig()
    ok = LogConfig(cleanup_policy=("compact",))
    assert internal_topics.config_error(OFFSETS, ok, base) is None
    assert internal_topics.config_error(OFFSETS, LogConfig(cleanup_policy=("compact",), max_message_bytes=2**24),
                                        base) is None  # fmt: skip
    # cleanup.policy is a list: compact named twice is still compact alone.
    assert internal_topics.config_error(OFFSETS, LogConfig(cleanup_policy=("compact", "compact")), base) is None
    for unsafe in (LogConfig(), LogConfig(cleanup_policy=("compact", "delete")),
                   LogConfig(cleanup_policy=("delete", "compact", "compact")),
                   LogConfig(cleanup_policy=("compact",), max_message_bytes=base.max_message_bytes - 1)):
        assert OFFSETS in internal_topics.config_error(OFFSETS, unsafe, base)


def test_decisions_refuse_what_the_rule_refuses():
    image = _image_with_offsets_topic()
    (deleted,), records = decide_delete_topics(image, [OFFSETS])
    assert (deleted.error_code, records) == (ErrorCode.INVALID_TOPIC_EXCEPTION, [])
    (grown,), records = decide_create_partitions(image, [(OFFSETS, 5)], 10_000)
    assert (grown.error_code, records) == (ErrorCode.INVALID_TOPIC_EXCEPTION, [])
    (altered,), records = decide_alter_configs(image, OFFSETS, {"cleanup.policy": "delete"}, LogConfig())
    assert (altered.error_code, records) == (ErrorCode.POLICY_VIOLATION, [])
    (replaced,), records = decide_alter_configs(image, OFFSETS, {"segment.ms": "1000"}, LogConfig(), replace=True)
    assert (replaced.error_code, records) == (ErrorCode.POLICY_VIOLATION, [])  # drops cleanup.policy=compact
    (fine,), records = decide_alter_configs(image, OFFSETS, {"segment.ms": "1000"}, LogConfig())
    assert fine.error_code == ErrorCode.NONE and records
    (twice,), records = decide_alter_configs(image, OFFSETS, {"cleanup.policy": "compact,compact"}, LogConfig())
    assert twice.error_code == ErrorCode.NONE and records
