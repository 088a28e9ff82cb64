import pytest

from riverlog.broker.metadata.image import MetadataImage, changed_partitions
from riverlog.broker.metadata.records import (
    ConfigRecord,
    FenceBrokerRecord,
    PartitionRecord,
    RegisterBrokerRecord,
    RemoveTopicRecord,
    TopicRecord,
    UnfenceBrokerRecord,
)

A = "a" * 32
B = "b" * 32


def build(*records):
    return MetadataImage.empty("c", 1).apply_all(enumerate(records))


def test_apply_returns_a_new_image_and_leaves_the_old_unchanged():
    old = build(RegisterBrokerRecord(1, "h", 1), TopicRecord("t", A))
    new = old.apply(PartitionRecord(A, 0, (1,), (1,), 1, 0, 0), 2)
    assert old.topics["t"].partitions == {}
    assert old.offset == 1
    assert new.topics["t"].partitions[0].leader == 1
    assert new.topics_by_id[A] is new.topics["t"]
    assert new.offset == 2
    with pytest.raises(TypeError):
        new.topics["x"] = None  # read-only view


def test_image_reads_brokers_topics_and_configs():
    img = build(
        RegisterBrokerRecord(1, "h1", 9092, "r1"),
        RegisterBrokerRecord(2, "h2", 9092, None, fenced=True),
        TopicRecord("t", A),
        PartitionRecord(A, 0, (1,), (1,), 1, 0, 0),
        ConfigRecord("topic", "t", "retention.ms", "5"),
        ConfigRecord("topic", "t", "segment.bytes", "1000"),
        ConfigRecord("topic", "t", "segment.bytes", None),
    )
    assert [b.node_id for b in img.unfenced_brokers()] == [1]
    assert img.brokers[1].rack == "r1"
    assert dict(img.topics["t"].configs) == {"retention.ms": "5"}
    assert img.cluster_id == "c" and img.controller_id == 1


@pytest.mark.parametrize(
    "bad",
    [
        PartitionRecord(B, 0, (1,), (1,), 1, 0, 0),  # unknown topic
        PartitionRecord(A, 5, (1,), (1,), 1, 0, 0),  # gap in partition numbers
        PartitionRecord(A, 0, (1,), (1,), 1, 0, 0),  # same partition epoch: not a change
        TopicRecord("t", B),  # name taken
        TopicRecord("u", A),  # id taken
        ConfigRecord("topic", "nope", "retention.ms", "1"),
        RemoveTopicRecord(B),
    ],
)
def test_records_that_do_not_apply_raise_and_change_nothing(bad):
    img = build(TopicRecord("t", A), PartitionRecord(A, 0, (1,), (1,), 1, 0, 0))
    with pytest.raises(ValueError):
        img.apply(bad, 10)
    assert img == build(TopicRecord("t", A), PartitionRecord(A, 0, (1,), (1,), 1, 0, 0))


def test_offsets_must_grow():
    img = build(TopicRecord("t", A))
    with pytest.raises(ValueError):
        img.apply(TopicRecord("u", B), 0)


def test_changed_partitions_reports_created_deleted_and_changed():
    old = build(
        TopicRecord("t", A), PartitionRecord(A, 0, (1, 2), (1, 2), 1, 0, 0),
        TopicRecord("gone", B), PartitionRecord(B, 0, (1,), (1,), 1, 0, 0),
    )
    new = old.apply_all([
        (4, PartitionRecord(A, 0, (1, 2), (2,), 2, 1, 1)),
        (5, PartitionRecord(A, 1, (2, 1), (2, 1), 2, 0, 0)),
        (6, RemoveTopicRecord(B)),
    ])
    changes = [(c.kind, c.topic, c.partition) for c in changed_partitions(old, new)]
    assert changes == [("deleted", "gone", 0), ("changed", "t", 0), ("created", "t", 1)]
    assert list(changed_partitions(new, new)) == []


def test_a_recreated_topic_is_a_deletion_then_a_creation():
    old = build(TopicRecord("t", A), PartitionRecord(A, 0, (1,), (1,), 1, 0, 0))
    new = old.apply_all([(2, RemoveTopicRecord(A)), (3, TopicRecord("t", B)), (4, PartitionRecord(B, 0, (1,), (1,), 1, 0, 0))])
    assert [(c.kind, c.topic_id) for c in changed_partitions(old, new)] == [("deleted", A), ("created", B)]


def test_a_registration_takes_its_entry_offset_as_broker_epoch():
    img = MetadataImage.empty("c", 1).apply_entry([TopicRecord("t", A)], 4)
    img = img.apply_entry([RegisterBrokerRecord(1, "h", 1, None, True, "ab" * 16)], 9)
    assert img.brokers[1].epoch == 9 and img.brokers[1].incarnation_id == "ab" * 16 and img.brokers[1].fenced
    img = img.apply_all([(12, RegisterBrokerRecord(1, "h", 1, None, True, "cd" * 16))])
    assert img.brokers[1].epoch == 12 and img.brokers[1].incarnation_id == "cd" * 16
    explicit = img.apply(RegisterBrokerRecord(2, "h", 2, broker_epoch=3), 13)  # a snapshot's record
    assert explicit.brokers[2].epoch == 3


def test_fence_and_unfence_apply_only_to_the_current_broker_epoch():
    img = MetadataImage.empty("c", 1).apply_entry([RegisterBrokerRecord(1, "h", 1, None, True)], 5)
    unfenced = img.apply(UnfenceBrokerRecord(1, 5), 6)
    assert [b.node_id for b in unfenced.unfenced_brokers()] == [1]
    assert unfenced.apply(FenceBrokerRecord(1, 5), 7).brokers[1].fenced
    for stale in (UnfenceBrokerRecord(1, 4), FenceBrokerRecord(1, 6), FenceBrokerRecord(2, 5)):
        with pytest.raises(ValueError):
            unfenced.apply(stale, 8)
