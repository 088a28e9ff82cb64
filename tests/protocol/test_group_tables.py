"""The classic consumer-group tables (OffsetCommit 8, OffsetFetch 9,
FindCoordinator 10, JoinGroup 11, Heartbeat 12, LeaveGroup 13, SyncGroup 14,
DescribeGroups 15, ListGroups 16, DeleteGroups 42, OffsetDelete 47).

The generic walkers (test_codec_roundtrip.py with random bodies,
test_kafka_python_compat.py against kafka-python) already cover every version
of these tables. Here: one hand-written request and response per API go
through the whole-message entry points (header included) at every version and
match kafka-python byte for byte; then the fields whose shape changes across
versions are checked where the spec puts them.
"""

from __future__ import annotations

import struct

import pytest
from kafka.protocol.admin.groups import (
    DeleteGroupsRequest,
    DeleteGroupsResponse,
    DescribeGroupsRequest,
    DescribeGroupsResponse,
    ListGroupsRequest,
    ListGroupsResponse,
)
from kafka.protocol.consumer.group import (
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetDeleteRequest,
    OffsetDeleteResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    SyncGroupRequest,
    SyncGroupResponse,
)
from kafka.protocol.metadata import FindCoordinatorRequest, FindCoordinatorResponse

from riverlog.client.protocol import codec
from riverlog.client.protocol.api import decode_request, decode_response, encode_request, encode_response
from riverlog.client.protocol.errors import LocalProtocolError
from riverlog.client.protocol.headers import RequestHeader, request_header_version, response_header_version
from riverlog.client.protocol.messages import (
    APIS,
    find_coordinator,
    join_group,
    leave_group,
    offset_commit,
    offset_fetch,
    sync_group,
)

from .strategies import expected

GROUP_KEYS = (8, 9, 10, 11, 12, 13, 14, 15, 16, 42, 47)

# One request and one response per API holding every field of every version,
# with non-default values; each version keeps the fields it has.
SAMPLES: dict[int, tuple[dict, dict]] = {
    8: (
        {"group_id": "g", "generation_id_or_member_epoch": 3, "member_id": "m-1",
         "group_instance_id": "static-1", "retention_time_ms": 86_400_000,
         "topics": [{"name": "orders", "partitions": [
             {"partition_index": 0, "committed_offset": 42, "committed_leader_epoch": 7,
              "commit_timestamp": 1_700_000_000_000, "committed_metadata": "meta"},
             {"partition_index": 1, "committed_offset": 0, "committed_leader_epoch": 2,
              "commit_timestamp": 5, "committed_metadata": None}]}]},
        {"throttle_time_ms": 5,
         "topics": [{"name": "orders", "partitions": [
             {"partition_index": 0, "error_code": 0}, {"partition_index": 1, "error_code": 12}]}]},
    ),
    9: (
        {"group_id": "g", "topics": [{"name": "orders", "partition_indexes": [0, 1]}],
         "groups": [
             {"group_id": "g", "member_id": "m-1", "member_epoch": 4,
              "topics": [{"name": "orders", "partition_indexes": [0, 1]}]},
             {"group_id": "h", "member_id": None, "member_epoch": -1, "topics": None}],
         "require_stable": True},
        {"throttle_time_ms": 5,
         "topics": [{"name": "orders", "partitions": [
             {"partition_index": 0, "committed_offset": 42, "committed_leader_epoch": 7,
              "metadata": "meta", "error_code": 0},
             {"partition_index": 1, "committed_offset": -1, "committed_leader_epoch": 3,
              "metadata": None, "error_code": 0}]}],
         "error_code": 14,
         "groups": [
             {"group_id": "g", "error_code": 0, "topics": [{"name": "orders", "partitions": [
                 {"partition_index": 0, "committed_offset": 42, "committed_leader_epoch": 7,
                  "metadata": "", "error_code": 0}]}]},
             {"group_id": "h", "error_code": 16, "topics": []}]},
    ),
    10: (
        {"key": "g", "key_type": 1, "coordinator_keys": ["g", "h"]},
        {"throttle_time_ms": 5, "error_code": 15, "error_message": "loading", "node_id": 1,
         "host": "b1", "port": 9092,
         "coordinators": [
             {"key": "g", "node_id": 1, "host": "b1", "port": 9092, "error_code": 0,
              "error_message": None},
             {"key": "h", "node_id": -1, "host": "", "port": -1, "error_code": 15,
              "error_message": "not available"}]},
    ),
    11: (
        {"group_id": "g", "session_timeout_ms": 10_000, "rebalance_timeout_ms": 30_000,
         "member_id": "m-1", "group_instance_id": "static-1", "protocol_type": "consumer",
         "protocols": [{"name": "range", "metadata": b"\x00\x01\xffmeta"},
                       {"name": "roundrobin", "metadata": b""}],
         "reason": "rebalance"},
        {"throttle_time_ms": 5, "error_code": 0, "generation_id": 3, "protocol_type": "consumer",
         "protocol_name": "range", "leader": "m-1", "skip_assignment": True, "member_id": "m-1",
         "members": [{"member_id": "m-1", "group_instance_id": "static-1", "metadata": b"\x00\x01"},
                     {"member_id": "m-2", "group_instance_id": None, "metadata": b""}]},
    ),
    12: (
        {"group_id": "g", "generation_id": 3, "member_id": "m-1", "group_instance_id": "static-1"},
        {"throttle_time_ms": 5, "error_code": 27},
    ),
    13: (
        {"group_id": "g", "member_id": "m-1",
         "members": [{"member_id": "m-1", "group_instance_id": None, "reason": "shutdown"},
                     {"member_id": "", "group_instance_id": "static-2", "reason": None}]},
        {"throttle_time_ms": 5, "error_code": 0,
         "members": [{"member_id": "m-1", "group_instance_id": None, "error_code": 0},
                     {"member_id": "", "group_instance_id": "static-2", "error_code": 25}]},
    ),
    14: (
        {"group_id": "g", "generation_id": 3, "member_id": "m-1", "group_instance_id": "static-1",
         "protocol_type": "consumer", "protocol_name": "range",
         "assignments": [{"member_id": "m-1", "assignment": b"\x00\x00assign"},
                         {"member_id": "m-2", "assignment": b""}]},
        {"throttle_time_ms": 5, "error_code": 0, "protocol_type": "consumer",
         "protocol_name": "range", "assignment": b"\x00\x00assign"},
    ),
    15: (
        {"groups": ["g", "h"], "include_authorized_operations": True},
        {"throttle_time_ms": 5, "groups": [
            {"error_code": 0, "group_id": "g", "group_state": "Stable", "protocol_type": "consumer",
             "protocol_data": "range",
             "members": [{"member_id": "m-1", "group_instance_id": "static-1", "client_id": "c",
                          "client_host": "/10.0.0.1", "member_metadata": b"\x00\x01",
                          "member_assignment": b"\x00\x02"}],
             "authorized_operations": 0b1000_0000_1000},
            {"error_code": 0, "group_id": "h", "group_state": "Dead", "protocol_type": "",
             "protocol_data": "", "members": [], "authorized_operations": -2147483648}]},
    ),
    16: (
        {"states_filter": ["Stable", "Empty"], "types_filter": ["classic"]},
        {"throttle_time_ms": 5, "error_code": 0, "groups": [
            {"group_id": "g", "protocol_type": "consumer", "group_state": "Stable",
             "group_type": "classic"}]},
    ),
    42: (
        {"groups_names": ["g", "h"]},
        {"throttle_time_ms": 5, "results": [{"group_id": "g", "error_code": 0},
                                            {"group_id": "h", "error_code": 68}]},
    ),
    47: (
        {"group_id": "g", "topics": [{"name": "orders", "partitions": [
            {"partition_index": 0}, {"partition_index": 1}]}]},
        {"error_code": 0, "throttle_time_ms": 5, "topics": [{"name": "orders", "partitions": [
            {"partition_index": 0, "error_code": 0}, {"partition_index": 1, "error_code": 86}]}]},
    ),
}

THEIRS = {
    8: (OffsetCommitRequest, OffsetCommitResponse),
    9: (OffsetFetchRequest, OffsetFetchResponse),
    10: (FindCoordinatorRequest, FindCoordinatorResponse),
    11: (JoinGroupRequest, JoinGroupResponse),
    12: (HeartbeatRequest, HeartbeatResponse),
    13: (LeaveGroupRequest, LeaveGroupResponse),
    14: (SyncGroupRequest, SyncGroupResponse),
    15: (DescribeGroupsRequest, DescribeGroupsResponse),
    16: (ListGroupsRequest, ListGroupsResponse),
    42: (DeleteGroupsRequest, DeleteGroupsResponse),
    47: (OffsetDeleteRequest, OffsetDeleteResponse),
}

VERSIONS = [(k, v) for k in GROUP_KEYS for v in range(APIS[k].valid[0], APIS[k].valid[1] + 1)]
IDS = [f"{APIS[k].name}-v{v}" for k, v in VERSIONS]
SHARED = [(k, v) for k, v in VERSIONS if v <= THEIRS[k][0].max_version]


def _round_trip(msg, version: int, value: dict) -> dict:
    return codec.decode(msg, version, codec.encode(msg, version, value))


def _header(key: int, version: int) -> RequestHeader:
    return RequestHeader(key, version, 7, "riverlog")


def test_the_group_apis_are_registered_under_kafkas_keys():
    names = {k: APIS[k].name for k in GROUP_KEYS}
    assert names == {
        8: "OffsetCommit", 9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup",
        12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups",
        16: "ListGroups", 42: "DeleteGroups", 47: "OffsetDelete",
    }
    valid = {k: APIS[k].valid for k in GROUP_KEYS}
    assert valid == {8: (0, 9), 9: (0, 9), 10: (0, 6), 11: (0, 9), 12: (0, 4), 13: (0, 5),
                     14: (0, 5), 15: (0, 5), 16: (0, 5), 42: (0, 2), 47: (0, 0)}


@pytest.mark.parametrize(("key", "version"), VERSIONS, ids=IDS)
def test_a_whole_request_round_trips_with_its_header(key, version):
    value = SAMPLES[key][0]
    header, body = decode_request(encode_request(_header(key, version), value))
    assert header == _header(key, version)
    assert body == expected(APIS[key].request.fields, version, value)


@pytest.mark.parametrize(("key", "version"), VERSIONS, ids=IDS)
def test_a_whole_response_round_trips_with_its_header(key, version):
    value = SAMPLES[key][1]
    correlation_id, body = decode_response(key, version, encode_response(key, version, 7, value))
    assert correlation_id == 7
    assert body == expected(APIS[key].response.fields, version, value)


@pytest.mark.parametrize(("key", "version"), SHARED, ids=[f"{APIS[k].name}-v{v}" for k, v in SHARED])
def test_kafka_python_reads_and_rewrites_the_whole_messages_identically(key, version):
    request_cls, response_cls = THEIRS[key]
    ours = encode_request(_header(key, version), SAMPLES[key][0])
    theirs = request_cls.decode(ours, version=version, header=True)
    assert theirs.header.correlation_id == 7 and theirs.header.client_id == "riverlog"
    assert bytes(theirs.encode(version=version, header=True)) == ours

    ours = encode_response(key, version, 7, SAMPLES[key][1])
    theirs = response_cls.decode(ours, version=version, header=True)
    assert theirs.header.correlation_id == 7 and theirs.version == version
    # No version= here: kafka-python would then set request_api_version on its
    # response header, which has none. The decoded object keeps its version.
    assert bytes(theirs.encode(header=True)) == ours


FIRST_FLEXIBLE = {8: 8, 9: 6, 10: 3, 11: 6, 12: 4, 13: 4, 14: 4, 15: 5, 16: 3, 42: 2}


@pytest.mark.parametrize("key", sorted(FIRST_FLEXIBLE))
def test_a_group_api_switches_to_header_v2_and_v1_at_its_first_flexible_version(key):
    first = FIRST_FLEXIBLE[key]
    assert request_header_version(key, first - 1) == 1 and response_header_version(key, first - 1) == 0
    assert request_header_version(key, first) == 2 and response_header_version(key, first) == 1


def test_offset_delete_is_never_flexible():
    assert APIS[47].request.flexible is None
    assert request_header_version(47, 0) == 1 and response_header_version(47, 0) == 0


# -- nullable strings -----------------------------------------------------

@pytest.mark.parametrize(("msg", "first"), [
    (join_group.REQUEST, 5), (sync_group.REQUEST, 3), (APIS[12].request, 3), (offset_commit.REQUEST, 7),
], ids=["JoinGroup", "SyncGroup", "Heartbeat", "OffsetCommit"])
def test_group_instance_id_is_null_unless_sent_and_on_the_wire_only_from_its_version(msg, first):
    for version in range(first, msg.valid[1] + 1):
        assert _round_trip(msg, version, {})["group_instance_id"] is None
        static = codec.encode(msg, version, {"group_instance_id": "static-1"})
        assert codec.decode(msg, version, static)["group_instance_id"] == "static-1"
    before = first - 1
    assert codec.encode(msg, before, {"group_instance_id": "static-1"}) == codec.encode(msg, before, {})


def test_join_group_protocol_name_may_be_null_only_from_v7():
    with pytest.raises(LocalProtocolError):
        codec.encode(join_group.RESPONSE, 6, {"protocol_name": None})
    body = _round_trip(join_group.RESPONSE, 7, {"protocol_name": None})
    assert body["protocol_name"] is None
    assert body["protocol_type"] is None  # the default from v7, where it first appears
    assert _round_trip(join_group.RESPONSE, 6, {})["protocol_name"] == ""


@pytest.mark.parametrize("msg", [sync_group.REQUEST, sync_group.RESPONSE], ids=["request", "response"])
def test_sync_group_protocol_type_and_name_are_nullable_from_v5(msg):
    body = _round_trip(msg, 5, {"protocol_type": None, "protocol_name": "range"})
    assert (body["protocol_type"], body["protocol_name"]) == (None, "range")
    assert codec.encode(msg, 4, {"protocol_type": "consumer"}) == codec.encode(msg, 4, {})


def test_a_null_instance_id_in_a_leave_group_member_is_an_int16_minus_one_before_v4():
    raw = codec.encode(leave_group.REQUEST, 3, {
        "group_id": "g", "members": [{"member_id": "m", "group_instance_id": None}]})
    # group_id "g", array of 1, member_id "m", null group_instance_id
    assert raw == b"\x00\x01g" + b"\x00\x00\x00\x01" + b"\x00\x01m" + b"\xff\xff"


# -- bytes fields -----------------------------------------------------------

EVERY_BYTE = bytes(range(256))


@pytest.mark.parametrize("version", [0, 5, 6, 9])
def test_join_group_metadata_keeps_every_byte_with_the_length_prefix_of_its_version(version):
    value = {"group_id": "g", "protocol_type": "consumer",
             "protocols": [{"name": "range", "metadata": EVERY_BYTE}]}
    raw = codec.encode(join_group.REQUEST, version, value)
    # 256 bytes: int32 length when classic, uvarint of length+1 (257) when flexible
    prefix = b"\x81\x02" if version >= 6 else struct.pack(">i", 256)
    assert prefix + EVERY_BYTE in raw
    (protocol,) = codec.decode(join_group.REQUEST, version, raw)["protocols"]
    assert type(protocol["metadata"]) is bytes and protocol["metadata"] == EVERY_BYTE


@pytest.mark.parametrize("version", range(0, 6))
def test_sync_group_assignment_bytes_round_trip_both_ways(version):
    request = codec.encode(sync_group.REQUEST, version, {
        "assignments": [{"member_id": "m-1", "assignment": EVERY_BYTE},
                        {"member_id": "m-2", "assignment": b""}]})
    assignments = codec.decode(sync_group.REQUEST, version, request)["assignments"]
    assert [a["assignment"] for a in assignments] == [EVERY_BYTE, b""]
    response = codec.encode(sync_group.RESPONSE, version, {"assignment": EVERY_BYTE})
    assert codec.decode(sync_group.RESPONSE, version, response)["assignment"] == EVERY_BYTE


def test_bytes_fields_are_not_nullable():
    with pytest.raises(LocalProtocolError):
        codec.encode(sync_group.RESPONSE, 5, {"assignment": None})


# -- tagged fields ------------------------------------------------------------

def test_an_unknown_tag_inside_a_leave_group_member_is_skipped():
    raw = bytearray(codec.encode(leave_group.REQUEST, 4, {
        "group_id": "g", "members": [{"member_id": "m", "group_instance_id": "i"}]}))
    assert raw[-2:] == b"\x00\x00"  # the member's tag section, then the body's
    raw[-2:-1] = b"\x01\x05\x02\xab\xcd"  # the member: 1 tag, tag 5, 2 bytes
    body = codec.decode(leave_group.REQUEST, 4, bytes(raw))
    assert body["members"] == [{"member_id": "m", "group_instance_id": "i", "reason": None}]


def test_an_unknown_tag_at_the_end_of_a_join_group_response_is_skipped():
    raw = bytearray(codec.encode(join_group.RESPONSE, 9, SAMPLES[11][1]))
    raw[-1:] = b"\x02\x00\x01\xff\x07\x00"  # 2 tags: tag 0 (1 byte), tag 7 (empty)
    body = codec.decode(join_group.RESPONSE, 9, bytes(raw))
    assert body == expected(join_group.RESPONSE.fields, 9, SAMPLES[11][1])


def test_a_flexible_offset_fetch_ends_every_struct_with_an_empty_tag_section():
    raw = codec.encode(offset_fetch.REQUEST, 8, {
        "groups": [{"group_id": "g", "topics": [{"name": "t", "partition_indexes": [0]}]}]})
    # groups[1]: "g", topics[1]: "t", [0], topic tags; group tags; require_stable; body tags
    assert raw == (b"\x02" + b"\x02g" + b"\x02" + b"\x02t" + b"\x02\x00\x00\x00\x00" + b"\x00"
                   + b"\x00" + b"\x00" + b"\x00")


# -- OffsetFetch: topics -> groups -----------------------------------------------

def test_offset_fetch_topics_may_be_null_meaning_all_only_from_v2():
    with pytest.raises(LocalProtocolError):
        codec.encode(offset_fetch.REQUEST, 1, {"group_id": "g", "topics": None})
    for version in range(2, 8):
        raw = codec.encode(offset_fetch.REQUEST, version, {"group_id": "g", "topics": None})
        assert codec.decode(offset_fetch.REQUEST, version, raw)["topics"] is None


def test_offset_fetch_v8_asks_for_many_groups_in_one_request():
    value = SAMPLES[9][0]
    body = _round_trip(offset_fetch.REQUEST, 8, value)
    assert body["group_id"] == "" and body["topics"] == []  # the single-group form is gone
    assert [(g["group_id"], g["topics"]) for g in body["groups"]] == [
        ("g", [{"name": "orders", "partition_indexes": [0, 1]}]),
        ("h", None),  # null topics: every committed offset of that group
    ]
    assert body["groups"][0]["member_id"] is None and body["groups"][0]["member_epoch"] == -1  # v9+
    body9 = _round_trip(offset_fetch.REQUEST, 9, value)
    assert (body9["groups"][0]["member_id"], body9["groups"][0]["member_epoch"]) == ("m-1", 4)


def test_offset_fetch_v7_and_older_carry_no_groups():
    for version in range(0, 8):
        body = _round_trip(offset_fetch.REQUEST, version, SAMPLES[9][0])
        assert body["groups"] == [] and body["group_id"] == "g"


def test_offset_fetch_v8_response_answers_per_group():
    body = _round_trip(offset_fetch.RESPONSE, 8, SAMPLES[9][1])
    assert body["topics"] == [] and body["error_code"] == 0  # top-level fields stop at v7
    assert [(g["group_id"], g["error_code"]) for g in body["groups"]] == [("g", 0), ("h", 16)]
    (partition,) = body["groups"][0]["topics"][0]["partitions"]
    assert (partition["committed_offset"], partition["committed_leader_epoch"]) == (42, 7)


def test_offset_fetch_committed_leader_epoch_is_on_the_wire_from_v5():
    for version, epoch in ((4, -1), (5, 7), (7, 7)):
        body = _round_trip(offset_fetch.RESPONSE, version, SAMPLES[9][1])
        assert body["topics"][0]["partitions"][0]["committed_leader_epoch"] == epoch


def test_kafka_python_offset_fetch_v8_groups_decode_to_our_fields():
    group = OffsetFetchRequest.OffsetFetchRequestGroup
    req = OffsetFetchRequest[8](
        groups=[group(group_id="g",
                      topics=[group.OffsetFetchRequestTopics(name="orders", partition_indexes=[0, 2])]),
                group(group_id="h", topics=None)],
        require_stable=True,
    )
    req.with_header(correlation_id=3, client_id="kp")
    header, body = decode_request(bytes(req.encode(header=True)))
    assert header == RequestHeader(9, 8, 3, "kp")
    assert body["require_stable"] is True
    assert [(g["group_id"], g["topics"]) for g in body["groups"]] == [
        ("g", [{"name": "orders", "partition_indexes": [0, 2]}]), ("h", None)]


# -- FindCoordinator: key -> coordinator_keys ----------------------------------------

def test_find_coordinator_v4_sends_a_list_of_keys_instead_of_one_key():
    raw = codec.encode(find_coordinator.REQUEST, 4,
                       {"key": "ignored", "key_type": 0, "coordinator_keys": ["g"]})
    # key_type int8, compact array of 1, compact string "g", body tags
    assert raw == b"\x00" + b"\x02" + b"\x02g" + b"\x00"
    body = codec.decode(find_coordinator.REQUEST, 4, raw)
    assert body == {"key": "", "key_type": 0, "coordinator_keys": ["g"]}
    single = _round_trip(find_coordinator.REQUEST, 3, SAMPLES[10][0])
    assert (single["key"], single["coordinator_keys"]) == ("g", [])


def test_find_coordinator_v4_answers_each_key_with_its_own_error():
    body = _round_trip(find_coordinator.RESPONSE, 4, SAMPLES[10][1])
    assert (body["node_id"], body["host"], body["error_code"]) == (0, "", 0)  # single-key fields stop at v3
    assert [(c["key"], c["node_id"], c["error_code"], c["error_message"]) for c in body["coordinators"]] == [
        ("g", 1, 0, None), ("h", -1, 15, "not available")]


def test_kafka_python_find_coordinator_v4_batched_keys_decode_to_our_fields():
    req = FindCoordinatorRequest[4](key_type=0, coordinator_keys=["g", "h"])
    req.with_header(correlation_id=4, client_id="kp")
    header, body = decode_request(bytes(req.encode(header=True)))
    assert header == RequestHeader(10, 4, 4, "kp")
    assert body == {"key": "", "key_type": 0, "coordinator_keys": ["g", "h"]}


# -- the other version-shaped fields ------------------------------------------------

def test_kafka_python_static_member_join_decodes_to_our_fields():
    req = JoinGroupRequest[5](
        group_id="g", session_timeout_ms=10_000, rebalance_timeout_ms=30_000, member_id="",
        group_instance_id="static-1", protocol_type="consumer",
        protocols=[JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"\x00\x03x")],
    )
    req.with_header(correlation_id=2, client_id="kp")
    header, body = decode_request(bytes(req.encode(header=True)))
    assert header == RequestHeader(11, 5, 2, "kp")
    assert body["group_instance_id"] == "static-1" and body["rebalance_timeout_ms"] == 30_000
    assert body["protocols"] == [{"name": "range", "metadata": b"\x00\x03x"}]


def test_leave_group_v3_lists_members_and_drops_the_single_member_id():
    for version in (0, 1, 2):
        body = _round_trip(leave_group.REQUEST, version, SAMPLES[13][0])
        assert (body["member_id"], body["members"]) == ("m-1", [])
    body = _round_trip(leave_group.REQUEST, 3, SAMPLES[13][0])
    assert body["member_id"] == ""
    members = [(m["member_id"], m["group_instance_id"]) for m in body["members"]]
    assert members == [("m-1", None), ("", "static-2")]


@pytest.mark.parametrize("version", range(0, 10))
def test_offset_commit_retention_is_sent_in_v2_to_v4_and_commit_timestamp_only_in_v1(version):
    body = _round_trip(offset_commit.REQUEST, version, SAMPLES[8][0])
    partition = body["topics"][0]["partitions"][0]
    assert body["retention_time_ms"] == (86_400_000 if 2 <= version <= 4 else -1)
    assert partition["commit_timestamp"] == (1_700_000_000_000 if version == 1 else -1)
    assert partition["committed_leader_epoch"] == (7 if version >= 6 else -1)
    assert body["generation_id_or_member_epoch"] == (3 if version >= 1 else -1)
