"""Leadership of __consumer_offsets partitions moving: the coordinator drops the
groups of a partition led elsewhere now (`unload`) and takes over those
replayed aside (`adopt`); refusals come in each API's shape (refusals.py)."""

from __future__ import annotations

import pytest

from riverlog.broker.group import refusals
from riverlog.broker.group.records_model import OffsetAndMetadata, OffsetCommitRecord
from riverlog.client.protocol import ApiKey
from riverlog.client.protocol import ErrorCode as E

from .test_coordinator import H, answer, commit, fetch, join, make, new_member, sync


def test_unload_drops_only_the_matching_groups_and_writes_nothing():
    c = make()
    commit(c, group="mine")
    commit(c, group="theirs")
    out = c.unload(lambda group_id: group_id == "theirs")
    assert out.records == [] and out.responses == []
    assert c.group("theirs") is None
    assert fetch(c, group="mine") == {("t1", 0): 10}


def test_unload_answers_parked_joins_and_syncs_with_not_coordinator():
    c = make(group_initial_rebalance_delay_ms=3000)
    m1 = new_member(c)
    parked_join, out = join(c, m1)
    assert answer(out, parked_join) is None  # waits for the initial delay
    out = c.unload(lambda group_id: True)
    assert answer(out, parked_join)["error_code"] == E.NOT_COORDINATOR
    assert c.group("g") is None

    c = make()
    leader = new_member(c, group="g")
    h, out = join(c, leader, group="g")
    gen = answer(out, h)["generation_id"]
    m2 = new_member(c, now=1, group="g")
    join(c, m2, now=1, group="g")  # a rebalance: the leader must rejoin
    h, out = join(c, leader, now=2, group="g")
    assert answer(out, h)["error_code"] == 0 and gen < answer(out, h)["generation_id"]
    waiting, out = sync(c, m2, answer(out, h)["generation_id"], now=3)  # waits for the leader's assignment
    assert answer(out, waiting) is None
    out = c.unload(lambda group_id: True)
    assert answer(out, waiting)["error_code"] == E.NOT_COORDINATOR


def test_adopt_takes_over_groups_replayed_aside_and_refuses_a_group_twice():
    c, aside = make(), make()
    aside.replay(OffsetCommitRecord("loaded", "t1", 0, OffsetAndMetadata(7, -1, "", 0, None)), 0)
    c.adopt(aside)
    assert fetch(c, group="loaded") == {("t1", 0): 7}
    assert c.next_deadline_ms() is not None  # offset expiry is scheduled for the loaded offsets
    with pytest.raises(AssertionError):
        c.adopt(aside)


@pytest.mark.parametrize("api, version, request_body, expected", [
    (ApiKey.JOIN_GROUP, 5, {"group_id": "g", "member_id": "m"}, {"error_code": 16, "member_id": "m", "generation_id": -1}),
    (ApiKey.SYNC_GROUP, 3, {"group_id": "g"}, {"error_code": 16, "assignment": b""}),
    (ApiKey.HEARTBEAT, 3, {"group_id": "g"}, {"error_code": 16}),
    (ApiKey.LEAVE_GROUP, 3, {"group_id": "g"}, {"error_code": 16, "members": []}),
    (ApiKey.OFFSET_DELETE, 0, {"group_id": "g"}, {"error_code": 16, "topics": []}),
    (ApiKey.OFFSET_FETCH, 7, {"group_id": "g", "topics": None}, {"error_code": 16, "topics": []}),
    (ApiKey.OFFSET_COMMIT, 7, {"group_id": "g", "topics": [{"name": "t", "partitions": [{"partition_index": 3}]}]},
     {"topics": [{"name": "t", "partitions": [{"partition_index": 3, "error_code": 16}]}]}),
])  # fmt: skip
def test_a_single_group_api_is_refused_where_it_puts_errors(api, version, request_body, expected):
    body = refusals.refusal(api, request_body, version, E.NOT_COORDINATOR)
    assert {k: body[k] for k in expected} == expected


def test_offset_fetch_before_v2_puts_the_error_on_every_requested_partition():
    body = refusals.refusal(ApiKey.OFFSET_FETCH, {"group_id": "g", "topics": [{"name": "t", "partition_indexes": [0, 1]}]},
                            1, E.COORDINATOR_LOAD_IN_PROGRESS)  # fmt: skip
    rows = body["topics"][0]["partitions"]
    assert [(p["partition_index"], p["error_code"], p["committed_offset"]) for p in rows] == [(0, 14, -1), (1, 14, -1)]


def test_only_a_missing_group_id_goes_to_the_coordinator_unchecked():
    assert refusals.checked_group_id(ApiKey.HEARTBEAT, {"group_id": ""}, 3) is None  # INVALID_GROUP_ID there
    assert refusals.checked_group_id(ApiKey.OFFSET_COMMIT, {"group_id": ""}, 7) == ""  # Kafka allows "" for offsets
    assert refusals.checked_group_id(ApiKey.OFFSET_FETCH, {"group_id": None}, 7) is None


def test_a_batched_answer_keeps_the_request_order_with_refusals_in_place():
    request = {"groups": ["a", "b", "c"], "include_authorized_operations": False}
    keep = [False, True, False]
    assert refusals.subset(ApiKey.DESCRIBE_GROUPS, request, keep)["groups"] == ["b"]
    answered = {"throttle_time_ms": 0, "groups": [{"group_id": "b", "error_code": 0}]}
    merged = refusals.merge(ApiKey.DESCRIBE_GROUPS, request, keep, answered,
                            [E.NOT_COORDINATOR, E.NONE, E.COORDINATOR_LOAD_IN_PROGRESS])  # fmt: skip
    assert [(g["group_id"], g["error_code"]) for g in merged["groups"]] == [("a", 16), ("b", 0), ("c", 14)]
    merged = refusals.merge(ApiKey.DELETE_GROUPS, {"groups_names": ["x"]}, [False], None, [E.NOT_COORDINATOR])
    assert merged["results"] == [{"group_id": "x", "error_code": 16}]
    assert refusals.batched(ApiKey.OFFSET_FETCH, 8) and not refusals.batched(ApiKey.OFFSET_FETCH, 7)
