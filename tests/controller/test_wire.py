"""The quorum's messages survive Kafka's wire: core -> body -> bytes (through
the real codec, headers included) -> body -> core, at every version we read;
log entries survive record batches; malformed input is a ValueError."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riverlog.broker.controller import wire
from riverlog.broker.controller.raft.messages import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    EndQuorumEpochRequest,
    EndQuorumEpochResponse,
    Entry,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    SnapshotId,
    VoteRequest,
    VoteResponse,
)
from riverlog.client.protocol.api import decode_request, decode_response, encode_request, encode_response
from riverlog.client.protocol.headers import RequestHeader
from riverlog.client.records import build_batch, iter_batches
from riverlog.client.records.layout import CRC_OFFSET

CLUSTER = "rvl-cluster-0001"
ENTRIES = (
    Entry(7, 3, b"\x01leader-change", control=True),
    Entry(8, 3, b"register broker 1"),
    Entry(9, 3, b""),
    Entry(10, 4, b"\x01leader-change", control=True),
    Entry(11, 4, b"topic orders"),
    Entry(12, 4, b"partition orders-0"),
)

REQUESTS = [
    VoteRequest(1, 2, 11, epoch=5, last_epoch=4, last_end_offset=120),
    VoteRequest(1, 2, 12, epoch=6, last_epoch=4, last_end_offset=120, pre_vote=True),
    BeginQuorumEpochRequest(3, 1, 13, epoch=5),
    EndQuorumEpochRequest(3, 1, 14, epoch=5, preferred_successors=(2, 1)),
    EndQuorumEpochRequest(3, 1, 15, epoch=5, preferred_successors=()),
    FetchRequest(2, 3, 16, epoch=5, fetch_offset=120, last_fetched_epoch=4, max_wait_ticks=10),
    FetchRequest(7, 3, 17, epoch=5, fetch_offset=0, last_fetched_epoch=0),
    FetchSnapshotRequest(2, 3, 18, epoch=5, snapshot_id=SnapshotId(100, 4), position=4096, max_bytes=1 << 20),
]

RESPONSES = [
    VoteResponse(2, 1, 11, epoch=5, leader_id=-1, granted=True),
    VoteResponse(2, 1, 12, epoch=6, leader_id=3, granted=False, pre_vote=True, error=74),
    BeginQuorumEpochResponse(1, 3, 13, epoch=5, leader_id=3),
    EndQuorumEpochResponse(1, 3, 14, epoch=6, leader_id=-1, error=75),
    FetchResponse(3, 2, 16, epoch=5, leader_id=3, high_watermark=9, log_start_offset=7, entries=ENTRIES),
    FetchResponse(3, 2, 17, epoch=5, leader_id=3, high_watermark=120, diverging=(4, 110)),
    # the core's answer for a fetcher whose last epoch predates the leader's first: (-1, log start)
    FetchResponse(3, 2, 22, epoch=5, leader_id=3, high_watermark=120, diverging=(-1, 0)),
    FetchResponse(3, 2, 18, epoch=5, leader_id=3, high_watermark=120, log_start_offset=100,
                  snapshot_id=SnapshotId(100, 4)),
    FetchResponse(3, 2, 19, epoch=6, leader_id=-1, error=74),
    FetchSnapshotResponse(3, 2, 20, epoch=5, leader_id=3, snapshot_id=SnapshotId(100, 4), size=9000,
                          position=4096, chunk=b"\x00snapshot bytes\xff"),
    FetchSnapshotResponse(3, 2, 21, epoch=5, leader_id=-1, snapshot_id=SnapshotId(100, 4), error=98),
]


def _versions(msg) -> list[int]:
    key = wire._REQUEST_KEYS.get(type(msg)) or wire._RESPONSE_KEYS[type(msg)]
    lo, hi = wire.READ_VERSIONS[key]
    if getattr(msg, "pre_vote", False) and isinstance(msg, VoteRequest):
        lo = 2
    return list(range(lo, hi + 1))


def _cases(messages):
    return [pytest.param(m, v, id=f"{type(m).__name__}-{m.correlation}-v{v}") for m in messages for v in _versions(m)]


def _over_the_wire_request(api_key: int, version: int, body: dict) -> dict:
    header, decoded = decode_request(encode_request(RequestHeader(api_key, version, 901, "ctl-1"), body))
    assert (header.api_key, header.api_version, header.correlation_id) == (api_key, version, 901)
    return decoded


def _over_the_wire_response(api_key: int, version: int, body: dict) -> dict:
    correlation_id, decoded = decode_response(api_key, version, encode_response(api_key, version, 902, body))
    assert correlation_id == 902
    return decoded


# -- every message at every version -------------------------------------------------


@pytest.mark.parametrize(("msg", "version"), _cases(REQUESTS))
def test_every_request_round_trips_through_the_codec_at_every_version(msg, version):
    api_key, sent_version, body = wire.request_to_wire(msg, CLUSTER, version=version)
    decoded = _over_the_wire_request(api_key, sent_version, body)
    got, cluster_id = wire.request_from_wire(api_key, sent_version, decoded, src=-99, dst=msg.dst,
                                             correlation=msg.correlation)
    assert got == msg
    assert cluster_id == CLUSTER


@pytest.mark.parametrize(("msg", "version"), _cases(RESPONSES))
def test_every_response_round_trips_through_the_codec_at_every_version(msg, version):
    api_key = wire._RESPONSE_KEYS[type(msg)]
    decoded = _over_the_wire_response(api_key, version, wire.response_to_wire(msg, version))
    got = wire.response_from_wire(api_key, version, decoded, msg.src, msg.dst, msg.correlation,
                                  pre_vote=getattr(msg, "pre_vote", False))
    assert got == msg


@pytest.mark.parametrize("msg", REQUESTS, ids=lambda m: f"{type(m).__name__}-{m.correlation}")
def test_requests_go_at_the_newest_version_we_read(msg):
    api_key, version, _ = wire.request_to_wire(msg, CLUSTER)
    assert version == wire.READ_VERSIONS[api_key][1]


def test_a_pre_vote_goes_at_vote_v2_because_older_versions_cannot_say_it():
    msg = VoteRequest(1, 2, 1, epoch=6, last_epoch=4, last_end_offset=120, pre_vote=True)
    assert wire.request_to_wire(msg, CLUSTER)[:2] == (52, 2)
    with pytest.raises(ValueError, match="pre-vote"):
        wire.request_to_wire(msg, CLUSTER, version=1)


def test_a_pre_vote_carries_the_senders_current_epoch_as_kafka_does():
    msg = VoteRequest(1, 2, 1, epoch=6, last_epoch=4, last_end_offset=120, pre_vote=True)
    _, _, body = wire.request_to_wire(msg, CLUSTER)
    assert body["topics"][0]["partitions"][0]["candidate_epoch"] == 5


def test_the_sender_is_named_by_the_body_not_the_transport():
    msg = FetchRequest(7, 3, 1, epoch=5, fetch_offset=0, last_fetched_epoch=0)
    for version in range(12, 18):
        api_key, _, body = wire.request_to_wire(msg, None, version=version)
        got, _ = wire.request_from_wire(api_key, version, _over_the_wire_request(api_key, version, body),
                                        src=42, dst=3, correlation=1)
        assert got.src == 7


def test_fetch_addresses_the_metadata_topic_by_id_from_v13_and_by_name_before():
    msg = FetchRequest(2, 3, 1, epoch=5, fetch_offset=10, last_fetched_epoch=4)
    body12 = _over_the_wire_request(1, 12, wire.request_to_wire(msg, None, version=12)[2])
    body13 = _over_the_wire_request(1, 13, wire.request_to_wire(msg, None, version=13)[2])
    assert body12["topics"][0]["topic"] == wire.METADATA_TOPIC
    assert body13["topics"][0]["topic_id"] == wire.METADATA_TOPIC_ID
    assert wire.METADATA_TOPIC_ID.int == 1


def test_max_wait_goes_on_the_wire_in_ms_and_comes_back_in_ticks_rounded_up():
    msg = FetchRequest(2, 3, 1, epoch=5, fetch_offset=10, last_fetched_epoch=4, max_wait_ticks=10)
    api_key, version, body = wire.request_to_wire(msg, None, tick_ms=50)
    assert body["max_wait_ms"] == 500
    body = {**_over_the_wire_request(api_key, version, body), "max_wait_ms": 501}
    got, _ = wire.request_from_wire(api_key, version, body, src=2, dst=3, correlation=1, tick_ms=50)
    assert got.max_wait_ticks == 11


def test_cluster_id_is_carried_and_may_be_null():
    msg = BeginQuorumEpochRequest(3, 1, 1, epoch=5)
    for version in (0, 1):
        api_key, _, body = wire.request_to_wire(msg, None, version=version)
        _, cluster_id = wire.request_from_wire(api_key, version, _over_the_wire_request(api_key, version, body),
                                               src=3, dst=1, correlation=1)
        assert cluster_id is None


def test_a_top_level_error_without_partitions_still_reaches_the_core():
    body = {"error_code": 104, "topics": []}  # INCONSISTENT_CLUSTER_ID
    got = wire.response_from_wire(52, 2, _over_the_wire_response(52, 2, body), 2, 1, 5)
    assert got == VoteResponse(2, 1, 5, epoch=-1, leader_id=-1, granted=False, error=104)


# -- entries as record batches ------------------------------------------------------


def test_entries_round_trip_including_control_entries_and_mixed_epochs():
    assert wire.decode_entries(wire.encode_entries(ENTRIES)) == ENTRIES
    assert wire.decode_entries(memoryview(wire.encode_entries(ENTRIES))) == ENTRIES


@st.composite
def _logs(draw) -> tuple[Entry, ...]:
    """Consecutive entries from any start, epochs never decreasing, some control."""
    offset, epoch = draw(st.integers(0, 2**40)), draw(st.integers(0, 2**31 - 10))
    entries = []
    for _ in range(draw(st.integers(0, 12))):
        epoch += draw(st.integers(0, 1))
        entries.append(Entry(offset, epoch, draw(st.binary(max_size=40)), draw(st.booleans())))
        offset += 1
    return tuple(entries)


@settings(max_examples=200, deadline=None)
@given(entries=_logs())
def test_any_log_round_trips_through_record_batches(entries):
    assert wire.decode_entries(wire.encode_entries(entries)) == entries


def test_one_batch_per_run_of_equal_epoch_and_control():
    batches = list(iter_batches(wire.encode_entries(ENTRIES)))
    shape = [(b.base_offset, b.partition_leader_epoch, b.is_control, b.records_count) for b in batches]
    assert shape == [(7, 3, True, 1), (8, 3, False, 2), (10, 4, True, 1), (11, 4, False, 2)]


def test_control_entries_are_leader_change_control_records_and_data_entries_have_null_keys():
    batches = list(iter_batches(wire.encode_entries(ENTRIES[:2])))
    [control], [data] = batches[0].records(), batches[1].records()
    assert struct.unpack(">hh", control.key) == (0, 2)
    assert data.key is None


def test_no_entries_encode_to_no_bytes():
    assert wire.encode_entries(()) == b""
    assert wire.decode_entries(b"") == ()


def test_entries_with_a_gap_in_offsets_are_refused():
    with pytest.raises(ValueError, match="consecutive"):
        wire.encode_entries((Entry(1, 1, b"a"), Entry(3, 1, b"b")))


def test_a_corrupt_batch_is_a_value_error():
    data = bytearray(wire.encode_entries(ENTRIES))
    data[CRC_OFFSET + 10] ^= 0xFF  # inside the first batch's CRC-covered bytes
    with pytest.raises(ValueError):
        wire.decode_entries(bytes(data))


def test_a_truncated_batch_is_a_value_error():
    data = wire.encode_entries(ENTRIES)
    for cut in (1, 11, 12, 40, 61, len(data) - 1):
        with pytest.raises(ValueError):
            wire.decode_entries(data[:cut])


def test_any_damage_to_the_bytes_is_a_value_error_or_goes_unnoticed_never_another_exception():
    data = wire.encode_entries(ENTRIES)
    for pos in range(len(data)):
        damaged = bytearray(data)
        damaged[pos] ^= 0x5A
        try:
            wire.decode_entries(bytes(damaged))
        except ValueError:
            pass


def test_a_control_record_other_than_leader_change_is_refused():
    snapshot_header = build_batch([(struct.pack(">hh", 0, 3), b"hdr", 0, ())], is_control=True)
    with pytest.raises(ValueError, match="LeaderChange"):
        wire.decode_entries(snapshot_header)


# -- malformed bodies ---------------------------------------------------------------


def _vote_body(**partition):
    part = {"partition_index": 0, "candidate_epoch": 5, "candidate_id": 1, "last_offset_epoch": 4,
            "last_offset": 120, **partition}
    return {"cluster_id": None, "topics": [{"topic_name": wire.METADATA_TOPIC, "partitions": [part]}]}


@pytest.mark.parametrize(("body", "complaint"), [
    ({"cluster_id": None, "topics": []}, "one topic"),
    ({"cluster_id": None, "topics": [{"topic_name": "orders", "partitions": []}]}, "orders"),
    ({"cluster_id": None, "topics": [{"topic_name": wire.METADATA_TOPIC, "partitions": []}]}, "one partition"),
    (_vote_body(partition_index=1), "partition 1"),
    ({"cluster_id": None}, "malformed"),
    ({"cluster_id": None, "topics": [{"topic_name": wire.METADATA_TOPIC, "partitions": [{}]}]}, "malformed"),
    ({"cluster_id": None, "topics": None}, "one topic"),
], ids=["no-topics", "wrong-topic", "no-partitions", "wrong-partition", "missing-topics", "empty-partition",
        "null-topics"])
def test_a_request_not_for_exactly_the_metadata_partition_is_a_value_error(body, complaint):
    with pytest.raises(ValueError, match=complaint):
        wire.request_from_wire(52, 1, body, src=1, dst=2, correlation=1)


def test_a_fetch_naming_another_topic_id_is_a_value_error():
    import uuid

    msg = FetchRequest(2, 3, 1, epoch=5, fetch_offset=10, last_fetched_epoch=4)
    api_key, version, body = wire.request_to_wire(msg, None)
    body["topics"][0]["topic_id"] = uuid.UUID(int=2)
    with pytest.raises(ValueError, match="is not"):
        wire.request_from_wire(api_key, version, _over_the_wire_request(api_key, version, body), 2, 3, 1)


@pytest.mark.parametrize("field, value", [("fetch_offset", -1), ("replica_id", -5)])
def test_a_fetch_with_a_negative_offset_or_replica_id_is_a_value_error(field, value):
    msg = FetchRequest(2, 3, 1, epoch=5, fetch_offset=10, last_fetched_epoch=4)
    api_key, version, body = wire.request_to_wire(msg, None)
    if field == "fetch_offset":
        body["topics"][0]["partitions"][0]["fetch_offset"] = value
    else:
        body["replica_id"] = body["replica_state"]["replica_id"] = value
    with pytest.raises(ValueError, match="negative"):
        wire.request_from_wire(api_key, version, _over_the_wire_request(api_key, version, body), 2, 3, 1)


def test_a_fetch_response_with_damaged_records_is_a_value_error():
    msg = FetchResponse(3, 2, 1, epoch=5, leader_id=3, entries=ENTRIES)
    body = wire.response_to_wire(msg, 17)
    body["responses"][0]["partitions"][0]["records"] = body["responses"][0]["partitions"][0]["records"][:-3]
    with pytest.raises(ValueError):
        wire.response_from_wire(1, 17, _over_the_wire_response(1, 17, body), 3, 2, 1)


def test_a_response_for_another_partition_is_a_value_error():
    body = wire.response_to_wire(BeginQuorumEpochResponse(1, 3, 1, epoch=5, leader_id=3), 1)
    body["topics"][0]["partitions"][0]["partition_index"] = 4
    with pytest.raises(ValueError, match="partition 4"):
        wire.response_from_wire(53, 1, body, 1, 3, 1)


def test_versions_we_do_not_speak_are_a_value_error():
    with pytest.raises(ValueError):
        wire.request_from_wire(1, 11, {}, 1, 2, 3)  # Fetch below v12 cannot carry the quorum protocol
    with pytest.raises(ValueError):
        wire.response_from_wire(52, 3, {}, 1, 2, 3)
    with pytest.raises(ValueError):
        wire.request_from_wire(55, 0, {}, 1, 2, 3)  # DescribeQuorum has no core message


def test_none_and_minus_one_pairs_cannot_be_told_apart_so_the_latter_is_refused():
    with pytest.raises(ValueError):
        wire.response_to_wire(FetchResponse(3, 2, 1, epoch=5, leader_id=3, diverging=(-1, -1)), 17)
