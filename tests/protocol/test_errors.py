"""ErrorCode numbers and retriable flags are Kafka's."""

from __future__ import annotations

from riverlog.client.protocol.errors import (
    ErrorCode,
    KafkaError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    error_for_code,
)


def test_well_known_codes_have_kafkas_numbers():
    assert ErrorCode.UNKNOWN_SERVER_ERROR == -1
    assert ErrorCode.NONE == 0
    assert ErrorCode.OFFSET_OUT_OF_RANGE == 1
    assert ErrorCode.CORRUPT_MESSAGE == 2
    assert ErrorCode.UNKNOWN_TOPIC_OR_PARTITION == 3
    assert ErrorCode.NOT_LEADER_OR_FOLLOWER == 6
    assert ErrorCode.MESSAGE_TOO_LARGE == 10
    assert ErrorCode.UNSUPPORTED_VERSION == 35
    assert ErrorCode.TOPIC_ALREADY_EXISTS == 36
    assert ErrorCode.INVALID_RECORD == 87
    assert ErrorCode.INVALID_REGULAR_EXPRESSION == 128


def test_codes_minus_one_to_128_have_no_gaps():
    assert sorted(int(c) for c in ErrorCode) == list(range(-1, 129))


def test_retriable_flags_follow_kafka():
    for code in (2, 3, 5, 6, 7, 14, 15, 16, 19, 56, 74, 75, 100):
        assert error_for_code(code).retriable, code
    for code in (-1, 1, 10, 22, 25, 27, 35, 36, 45, 87, 90):
        assert not error_for_code(code).retriable, code


def test_error_for_code_gives_one_class_per_code():
    cls = error_for_code(3)
    assert issubclass(cls, KafkaError) and cls.code is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert cls.__name__ == "UnknownTopicOrPartitionError"
    assert error_for_code(0) is None
    assert error_for_code(32000) is error_for_code(-1)


def test_protocol_errors_split_local_and_remote():
    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert not issubclass(ProtocolError, KafkaError)
