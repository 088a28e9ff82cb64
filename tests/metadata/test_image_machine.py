"""The metadata image as the Raft log's state machine: entries, snapshots."""

from riverlog.broker.controller.raft.messages import Entry
from riverlog.broker.metadata.image_machine import MetadataStateMachine, decode_entry, encode_entry, image_records
from riverlog.broker.metadata.records import (
    ConfigRecord,
    FenceBrokerRecord,
    PartitionRecord,
    RegisterBrokerRecord,
    TopicRecord,
    UnfenceBrokerRecord,
)

TID = "ab" * 16


def records():
    return [RegisterBrokerRecord(1, "h", 9092), TopicRecord("t", TID), PartitionRecord(TID, 0, (1,), (1,), 1, 0, 0),
            ConfigRecord("topic", "t", "retention.ms", "5"), ConfigRecord("broker", "", "log.retention.ms", "9")]


def test_an_entry_holds_one_operations_records_and_applies_all_or_nothing():
    machine = MetadataStateMachine("c", 1)
    assert decode_entry(encode_entry(records())) == records()
    machine.apply([Entry(3, 1, encode_entry(records()))])
    assert machine.image.offset == 3 and "t" in machine.image.topics
    # a second topic record with the same name does not apply: the whole entry is skipped
    bad = [TopicRecord("u", "cd" * 16), TopicRecord("t", "ef" * 16)]
    machine.apply([Entry(4, 1, encode_entry(bad)), Entry(5, 1, encode_entry([TopicRecord("v", "12" * 16)]))])
    assert set(machine.image.topics) == {"t", "v"} and machine.image.offset == 5


def test_a_snapshot_restores_an_equal_image_and_tells_the_listeners():
    machine = MetadataStateMachine("c", 1)
    machine.apply([Entry(7, 2, encode_entry(records()))])
    data = machine.snapshot()
    other = MetadataStateMachine("c", 1)
    seen = []
    other.on_change(lambda old, new: seen.append((old, new)))
    other.restore(data)
    assert other.image == machine.image and len(seen) == 1 and "t" in seen[0][1].topics
    assert image_records(other.image) == image_records(machine.image)


def test_a_snapshot_keeps_each_brokers_epoch_incarnation_and_fencing():
    machine = MetadataStateMachine("c", 1)
    machine.apply([
        Entry(3, 1, encode_entry([RegisterBrokerRecord(1, "h", 1, "r", True, "ab" * 16)])),
        Entry(4, 1, encode_entry([RegisterBrokerRecord(2, "h", 2, None, True, "cd" * 16)])),
        Entry(5, 1, encode_entry([UnfenceBrokerRecord(1, 3), UnfenceBrokerRecord(2, 4)])),
        Entry(6, 1, encode_entry([FenceBrokerRecord(2, 4)])),
    ])  # fmt: skip
    other = MetadataStateMachine("c", 1)
    other.restore(machine.snapshot())
    assert other.image == machine.image
    assert (other.image.brokers[1].epoch, other.image.brokers[1].fenced) == (3, False)
    assert (other.image.brokers[2].epoch, other.image.brokers[2].incarnation_id) == (4, "cd" * 16)
    # and the restored epochs still fence stale records
    other.apply([Entry(7, 1, encode_entry([FenceBrokerRecord(1, 3)]))])
    assert other.image.brokers[1].fenced
