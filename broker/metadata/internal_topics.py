"""Internal topics, and what a client may do to them. Pure.

``__consumer_offsets`` holds every group's membership and committed offsets;
the group coordinator appends to it itself, never through Produce. Clients
may read it (Metadata says ``is_internal``) but not change it:

- Produce: INVALID_TOPIC_EXCEPTION, as Kafka's ReplicaManager answers.
  Kafka lets a client whose client.id is ``__admin_client`` through; no
  riverlog tool needs that, so nobody is.
- DeleteRecords: INVALID_TOPIC_EXCEPTION, as Kafka.
- DeleteTopics and CreatePartitions: Kafka leaves these to ACLs, which
  riverlog does not have, so they are refused with INVALID_TOPIC_EXCEPTION
  and Kafka's wording for internal topics. Deleting the topic drops every
  group; more partitions move a group (hash(group) mod the count) away from
  the partition that holds its offsets.
- Configs (CreateTopics, AlterConfigs, IncrementalAlterConfigs), checked on
  the topic's whole effective config: POLICY_VIOLATION (Kafka's answer when
  a policy refuses a config) unless cleanup.policy is compact alone (with
  delete, retention removes offsets that were never superseded) and
  max.message.bytes is at least the broker's (below it the coordinator's own
  records are refused). Other configs may change, as in Kafka.
"""

from __future__ import annotations

from riverlog.broker.group.record_codec import OFFSETS_TOPIC
from riverlog.broker.storage.log_config import LogConfig

# Kafka's Topic.INTERNAL_TOPICS also names __transaction_state and
# __share_group_state; riverlog has no transactions or share groups, so no
# broker writes those and they stay ordinary names.
INTERNAL_TOPICS = frozenset({OFFSETS_TOPIC})


def is_internal(topic: str) -> bool:
    return topic in INTERNAL_TOPICS


def produce_error(topic: str) -> str | None:
    """Why a client may not produce to ``topic`` (INVALID_TOPIC_EXCEPTION); None if it may."""
    return f"Cannot append to internal topic {topic}" if topic in INTERNAL_TOPICS else None


def delete_records_error(topic: str) -> str | None:
    """Why a client may not delete records of ``topic`` (INVALID_TOPIC_EXCEPTION); None if it may."""
    return f"Cannot delete records of internal topic {topic}" if topic in INTERNAL_TOPICS else None


def delete_topic_error(topic: str) -> str | None:
    """Why a client may not delete ``topic`` (INVALID_TOPIC_EXCEPTION); None if it may."""
    return f"Cannot delete internal topic {topic}" if topic in INTERNAL_TOPICS else None


def create_partitions_error(topic: str) -> str | None:
    """Why a client may not add partitions to ``topic`` (INVALID_TOPIC_EXCEPTION); None if it may."""
    if topic not in INTERNAL_TOPICS:
        return None
    return (f"Cannot add partitions to internal topic {topic}: each group's partition is the hash of its id "
            "modulo the partition count, so groups would lose their committed offsets")  # fmt: skip


def config_error(topic: str, config: LogConfig, broker_default: LogConfig) -> str | None:
    """Why ``config`` (the topic's whole effective config) is unsafe for ``topic``
    (POLICY_VIOLATION); None if it is safe or the topic is not internal."""
    if topic not in INTERNAL_TOPICS:
        return None
    # A list, as in Kafka: compared as a set, so compact,compact is compact.
    if set(config.cleanup_policy) != {"compact"}:
        return (f"cleanup.policy of internal topic {topic} must be compact, not {','.join(config.cleanup_policy)}: "
                "with delete, retention would remove committed offsets")  # fmt: skip
    if config.max_message_bytes < broker_default.max_message_bytes:
        return (f"max.message.bytes of internal topic {topic} must be at least the broker's "
                f"{broker_default.max_message_bytes}, not {config.max_message_bytes}: "
                "the group coordinator's records would be refused")  # fmt: skip
    return None
