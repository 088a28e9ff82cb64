"""Every table, every valid version: encode -> decode gives the value back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riverlog.client.protocol import codec
from riverlog.client.protocol.errors import LocalProtocolError, ProtocolError
from riverlog.client.protocol.messages import APIS, metadata, produce

from .strategies import all_message_versions, expected, message_values

CASES = all_message_versions()
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize(("name", "msg", "version"), CASES, ids=IDS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_every_version_round_trips(name, msg, version, data):
    value = data.draw(message_values(msg, version))
    raw = codec.encode(msg, version, value)
    assert codec.decode(msg, version, raw) == expected(msg.fields, version, value)


@pytest.mark.parametrize(("name", "msg", "version"), CASES, ids=IDS)
def test_missing_fields_encode_their_defaults(name, msg, version):
    decoded = codec.decode(msg, version, codec.encode(msg, version, {}))
    assert decoded == expected(msg.fields, version, {})


@pytest.mark.parametrize(("name", "msg", "version"), CASES, ids=IDS)
@settings(max_examples=25, deadline=None)
@given(junk=st.binary(max_size=64))
def test_random_bytes_raise_only_protocol_errors(name, msg, version, junk):
    try:
        codec.decode(msg, version, junk)
    except ProtocolError:
        pass


def test_records_decode_as_views_of_the_input():
    raw = codec.encode(produce.REQUEST, 3, {
        "acks": -1, "timeout_ms": 5,
        "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": b"batch"}]}],
    })
    body = codec.decode(produce.REQUEST, 3, raw)
    records = body["topic_data"][0]["partition_data"][0]["records"]
    assert isinstance(records, memoryview) and records == b"batch"


def test_unknown_tagged_fields_are_skipped():
    # ApiVersions v3 response body with one unknown tag (99) appended.
    body = bytearray(codec.encode(APIS[18].response, 3, {"api_keys": []}))
    assert body[-1] == 0  # empty tagged section
    body[-1:] = b"\x01\x63\x02\xab\xcd"  # count 1, tag 99, size 2, 2 bytes
    assert codec.decode(APIS[18].response, 3, bytes(body))["api_keys"] == []


def test_known_tagged_field_is_written_only_when_not_default():
    msg = APIS[18].response
    plain = codec.encode(msg, 3, {"api_keys": []})
    tagged = codec.encode(msg, 3, {"api_keys": [], "finalized_features_epoch": 7})
    assert len(tagged) > len(plain)
    assert codec.decode(msg, 3, tagged)["finalized_features_epoch"] == 7


def test_null_in_a_non_nullable_field_is_a_local_error():
    with pytest.raises(LocalProtocolError):
        codec.encode(metadata.REQUEST, 0, {"topics": None})  # nullable only from v1


def test_version_outside_the_table_is_refused_on_encode():
    with pytest.raises(LocalProtocolError):
        codec.encode(metadata.REQUEST, 99, {})


def test_trailing_bytes_are_refused():
    raw = codec.encode(metadata.REQUEST, 1, {"topics": None})
    with pytest.raises(ProtocolError):
        codec.decode(metadata.REQUEST, 1, raw + b"\x00")


def test_tagged_field_inside_a_struct_array_element():
    # CreateTopics v5 response: topic_config_error_code is tag 0 of each topic.
    msg = APIS[19].response
    topic = {"name": "t", "error_code": 0, "error_message": None, "configs": None}
    plain = codec.encode(msg, 5, {"topics": [topic]})
    tagged = codec.encode(msg, 5, {"topics": [dict(topic, topic_config_error_code=40)]})
    assert len(tagged) == len(plain) + 4  # tag, size, int16
    body = codec.decode(msg, 5, tagged)
    assert body["topics"][0]["topic_config_error_code"] == 40
    assert body["topics"][0]["num_partitions"] == -1
    assert codec.decode(msg, 5, plain)["topics"][0]["topic_config_error_code"] == 0
