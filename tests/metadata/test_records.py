import pytest

from riverlog.broker.metadata.records import (
    ConfigRecord,
    FenceBrokerRecord,
    PartitionRecord,
    RegisterBrokerRecord,
    RemoveTopicRecord,
    TopicRecord,
    UnfenceBrokerRecord,
    decode_record,
    encode_record,
)

TID = "0123456789abcdef0123456789abcdef"
EXAMPLES = [
    RegisterBrokerRecord(1, "127.0.0.1", 9092, None),
    RegisterBrokerRecord(2, "h", 1, "rack-a", fenced=True),
    RegisterBrokerRecord(3, "h", 1, None, True, "ab" * 16),
    RegisterBrokerRecord(3, "h", 1, None, False, "ab" * 16, broker_epoch=41),  # as in a snapshot
    FenceBrokerRecord(3, 41),
    UnfenceBrokerRecord(3, 0),
    TopicRecord("orders", TID),
    PartitionRecord(TID, 3, (1, 2, 3), (1, 2), 1, 4, 7),
    PartitionRecord(TID, 0, (1,), (), -1, 0, 0),
    ConfigRecord("topic", "orders", "retention.ms", "1000"),
    ConfigRecord("broker", "", "log.retention.ms", None),
    RemoveTopicRecord(TID),
]


@pytest.mark.parametrize("rec", EXAMPLES, ids=lambda r: type(r).__name__)
def test_every_record_round_trips(rec):
    data = encode_record(rec)
    assert decode_record(data) == rec
    assert b" " not in data  # compact


def test_encoding_names_type_and_version():
    assert encode_record(TopicRecord("t", TID)) == b'{"name":"t","topic_id":"%s","type":"topic","v":0}' % TID.encode()


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\xff\xfe",
        b"not json",
        b"[1,2]",
        b'{"type":"nope","v":0}',
        b'{"type":"topic","v":9,"name":"t","topic_id":"%s"}' % TID.encode(),
        b'{"type":"topic","v":0,"name":"t"}',
        b'{"type":"topic","v":0,"name":"t","topic_id":"%s","extra":1}' % TID.encode(),
        b'{"type":"topic","v":0,"name":"t","topic_id":"xyz"}',
        b'{"type":"topic","v":0,"name":5,"topic_id":"%s"}' % TID.encode(),
        b'{"type":"register_broker","v":0,"node_id":true,"host":"h","port":1,"rack":null,"fenced":false}',
        b'{"type":"register_broker","v":0,"node_id":1,"host":"h","port":70000,"rack":null,"fenced":false}',
        # isr outside replicas, leader outside isr
        b'{"type":"partition","v":0,"topic_id":"%s","partition":0,"replicas":[1],"isr":[2],'
        b'"leader":1,"leader_epoch":0,"partition_epoch":0}' % TID.encode(),
        b'{"type":"partition","v":0,"topic_id":"%s","partition":0,"replicas":[1,2],"isr":[1],'
        b'"leader":2,"leader_epoch":0,"partition_epoch":0}' % TID.encode(),
        b'{"type":"partition","v":0,"topic_id":"%s","partition":0,"replicas":[1,"2"],"isr":[1],'
        b'"leader":1,"leader_epoch":0,"partition_epoch":0}' % TID.encode(),
        b'{"type":"config","v":0,"resource_type":"group","resource_name":"g","name":"a","value":"b"}',
    ],
)
def test_garbage_is_rejected_with_value_error(garbage):
    with pytest.raises(ValueError):
        decode_record(garbage)


def test_a_v0_register_broker_record_still_decodes_with_the_new_fields_defaulted():
    v0 = b'{"fenced":false,"host":"h","node_id":1,"port":9092,"rack":null,"type":"register_broker","v":0}'
    rec = decode_record(v0)
    assert rec == RegisterBrokerRecord(1, "h", 9092, None, False)
    assert rec.incarnation_id == "" and rec.broker_epoch == -1


def test_register_broker_is_written_as_v1():
    data = encode_record(RegisterBrokerRecord(1, "h", 9092, None, True, "ab" * 16))
    assert b'"v":1' in data and b'"incarnation_id":"' + b"ab" * 16 + b'"' in data and b'"broker_epoch":-1' in data


@pytest.mark.parametrize(
    "bad",
    [
        # v1 fields in a v0 record, v1 without them
        b'{"fenced":false,"host":"h","incarnation_id":"","node_id":1,"port":1,"rack":null,'
        b'"type":"register_broker","v":0}',
        b'{"fenced":false,"host":"h","node_id":1,"port":1,"rack":null,"type":"register_broker","v":1}',
        b'{"broker_epoch":-1,"fenced":false,"host":"h","incarnation_id":"xyz","node_id":1,"port":1,"rack":null,'
        b'"type":"register_broker","v":1}',
        b'{"broker_epoch":-2,"fenced":false,"host":"h","incarnation_id":"","node_id":1,"port":1,"rack":null,'
        b'"type":"register_broker","v":1}',
        b'{"broker_epoch":-1,"node_id":1,"type":"fence_broker","v":0}',
        b'{"broker_epoch":1,"node_id":-1,"type":"unfence_broker","v":0}',
        b'{"broker_epoch":1,"node_id":1,"type":"unfence_broker","v":1}',
    ],
)
def test_register_and_fence_records_outside_their_version_are_rejected(bad):
    with pytest.raises(ValueError):
        decode_record(bad)
