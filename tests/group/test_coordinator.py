"""GroupCoordinator: Kafka's classic group rules, driven without sockets or clocks."""

from __future__ import annotations

import itertools

import pytest

from riverlog.broker.group import GroupConfig, GroupCoordinator, GroupState
from riverlog.broker.group.records_model import (
    GroupMetadataRecord,
    GroupTombstone,
    OffsetCommitRecord,
    OffsetTombstone,
)
from riverlog.broker.group.subscription import encode_subscription, subscription_topics
from riverlog.client.protocol import ErrorCode as E

SUB = encode_subscription(["t1"])
GEN = -1


class H:
    """An opaque request handle."""

    _ids = itertools.count()

    def __init__(self, name: str = "") -> None:
        self.name = f"{name}#{next(self._ids)}"

    def __repr__(self) -> str:
        return self.name


def make(**cfg) -> GroupCoordinator:
    cfg.setdefault("group_initial_rebalance_delay_ms", 0)
    n = itertools.count(1)
    return GroupCoordinator(GroupConfig(**cfg), new_member_id=lambda prefix: f"{prefix or 'm'}-{next(n)}")


def answer(out, handle) -> dict | None:
    found = [body for h, body in out.responses if h is handle]
    assert len(found) <= 1, f"{handle} answered twice"
    return found[0] if found else None


def join_req(member_id="", *, group="g", protocols=(("range", SUB),), instance=None,
             session=10_000, rebalance=30_000, ptype="consumer") -> dict:
    return {"group_id": group, "session_timeout_ms": session, "rebalance_timeout_ms": rebalance,
            "member_id": member_id, "group_instance_id": instance, "protocol_type": ptype,
            "protocols": [{"name": n, "metadata": m} for n, m in protocols], "reason": None}


def join(c, member_id="", now=0, version=5, client_id="c", **kw):
    h = H("join")
    out = c.join_group(h, join_req(member_id, **kw), version, now, client_id=client_id)
    return h, out


def new_member(c, now=0, version=5, **kw) -> str:
    """The member-id handshake, then a join; returns the id (join may still wait)."""
    h, out = join(c, "", now, version, **kw)
    if kw.get("instance") is None and version >= 4:
        r = answer(out, h)
        assert r["error_code"] == E.MEMBER_ID_REQUIRED
        return r["member_id"]
    return None


def sync(c, member_id, gen, assignments=None, now=0, group="g", instance=None, version=3):
    h = H("sync")
    req = {"group_id": group, "generation_id": gen, "member_id": member_id,
           "group_instance_id": instance, "protocol_type": None, "protocol_name": None,
           "assignments": [{"member_id": m, "assignment": a} for m, a in (assignments or {}).items()]}
    return h, c.sync_group(h, req, version, now)


def heartbeat(c, member_id, gen, now=0, group="g", instance=None) -> int:
    h = H("hb")
    out = c.heartbeat(h, {"group_id": group, "generation_id": gen, "member_id": member_id,
                          "group_instance_id": instance}, 3, now)
    return answer(out, h)["error_code"]


def commit(c, member_id="", gen=-1, offsets=None, now=0, group="g", version=6, metadata="", instance=None):
    h = H("commit")
    offsets = offsets or {("t1", 0): 10}
    topics = {}
    for (t, p), o in offsets.items():
        topics.setdefault(t, []).append({"partition_index": p, "committed_offset": o,
                                         "committed_leader_epoch": 3, "commit_timestamp": -1,
                                         "committed_metadata": metadata})
    req = {"group_id": group, "generation_id_or_member_epoch": gen, "member_id": member_id,
           "group_instance_id": instance, "retention_time_ms": -1,
           "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]}
    out = c.offset_commit(h, req, version, now)
    body = answer(out, h)
    codes = {(t["name"], p["partition_index"]): p["error_code"] for t in body["topics"] for p in t["partitions"]}
    return codes, out


def fetch(c, topics=None, group="g", version=5, now=0) -> dict:
    h = H("fetch")
    req = {"group_id": group, "require_stable": False,
           "topics": None if topics is None else [{"name": t, "partition_indexes": ps} for t, ps in topics.items()]}
    body = answer(c.offset_fetch(h, req, version, now), h)
    assert body["error_code"] == 0
    return {(t["name"], p["partition_index"]): p["committed_offset"] for t in body["topics"] for p in t["partitions"]}


def two_member_stable(c, now=0):
    a = new_member(c, now)
    ha, out = join(c, a, now)
    assert answer(out, ha)["generation_id"] == 1  # alone: completes at once (no initial delay)
    b = new_member(c, now)
    g = c.group("g")
    hb, out = join(c, b, now)
    assert g.state is GroupState.PREPARING_REBALANCE and answer(out, hb) is None
    ha, out = join(c, a, now)
    ra, rb = answer(out, ha), answer(out, hb)
    assert ra["generation_id"] == rb["generation_id"] == 2
    gen = 2
    hf, _ = sync(c, b, gen, now=now)
    h, out = sync(c, a, gen, {a: b"A", b: b"B"}, now=now)
    assert answer(out, hf)["assignment"] == b"B" and answer(out, h)["assignment"] == b"A"
    assert g.state is GroupState.STABLE
    return a, b


# --- JoinGroup ---------------------------------------------------------------

def test_join_v4_requires_a_member_id_first():
    c = make()
    h, out = join(c, "", version=4)
    r = answer(out, h)
    assert r["error_code"] == E.MEMBER_ID_REQUIRED and r["member_id"] == "c-1"
    g = c.group("g")
    assert "c-1" in g.pending_members and not g.members
    h, out = join(c, "c-1", version=4)
    r = answer(out, h)
    assert r["error_code"] == 0 and r["generation_id"] == 1 and r["leader"] == "c-1"
    assert r["members"] == [{"member_id": "c-1", "group_instance_id": None, "metadata": SUB}]
    assert g.state is GroupState.COMPLETING_REBALANCE and r["protocol_name"] == "range"


def test_join_v3_gets_an_id_without_the_handshake():
    c = make()
    h, out = join(c, "", version=3)
    r = answer(out, h)
    assert r["error_code"] == 0 and r["member_id"] == "c-1" and r["generation_id"] == 1


def test_pending_member_expires_after_its_session_timeout():
    c = make()
    h, out = join(c, "", version=4, session=7000)
    assert c.next_deadline_ms() == 7000
    c.tick(7000)
    assert "c-1" not in (c.group("g").pending_members if c.group("g") else {})
    h, out = join(c, "c-1", 7001, version=4)
    assert answer(out, h)["error_code"] == E.UNKNOWN_MEMBER_ID


def test_join_with_unknown_member_id_is_refused():
    c = make()
    h, out = join(c, "ghost")
    assert answer(out, h)["error_code"] == E.UNKNOWN_MEMBER_ID
    assert c.group("g") is None


@pytest.mark.parametrize("session", [5999, 1_800_001])
def test_session_timeout_outside_broker_limits(session):
    c = make()
    h, out = join(c, "", session=session)
    assert answer(out, h)["error_code"] == E.INVALID_SESSION_TIMEOUT


def test_empty_group_id_is_invalid_for_membership_apis():
    c = make()
    h, out = join(c, "", group="")
    assert answer(out, h)["error_code"] == E.INVALID_GROUP_ID
    assert heartbeat(c, "m", 1, group="") == E.INVALID_GROUP_ID
    h, out = sync(c, "m", 1, group="")
    assert answer(out, h)["error_code"] == E.INVALID_GROUP_ID


def test_group_max_size():
    c = make(group_max_size=1)
    a, _ = two_member_stable_one(c)
    h, out = join(c, "")
    assert answer(out, h)["error_code"] == E.GROUP_MAX_SIZE_REACHED
    assert list(c.group("g").members) == [a]


def two_member_stable_one(c):
    a = new_member(c)
    h, out = join(c, a)
    h, out = sync(c, a, 1, {a: b"A"})
    return a, c.group("g")


def test_rejoin_without_change_in_stable_answers_current_generation():
    c = make()
    a, b = two_member_stable(c)
    h, out = join(c, b)
    r = answer(out, h)
    assert r["generation_id"] == 2 and r["leader"] == a and r["members"] == []
    assert c.group("g").state is GroupState.STABLE


def test_leader_rejoining_stable_group_triggers_rebalance():
    c = make()
    a, b = two_member_stable(c)
    h, out = join(c, a)
    assert answer(out, h) is None
    assert c.group("g").state is GroupState.PREPARING_REBALANCE
    assert heartbeat(c, b, 2) == E.REBALANCE_IN_PROGRESS


def test_changed_metadata_triggers_rebalance():
    c = make()
    a, b = two_member_stable(c)
    h, out = join(c, b, protocols=(("range", encode_subscription(["t1", "t2"])),))
    assert answer(out, h) is None and c.group("g").state is GroupState.PREPARING_REBALANCE


# --- protocols ---------------------------------------------------------------

def test_protocol_chosen_by_votes_among_common_protocols():
    c = make(group_initial_rebalance_delay_ms=3000)
    ids = []
    prefs = [(("roundrobin", b"r"), ("range", b"g")), (("range", b"g"), ("roundrobin", b"r")),
             (("range", b"g"), ("sticky", b"s"), ("roundrobin", b"r"))]
    hs = []
    for p in prefs:
        h, out = join(c, "", version=3, protocols=p)
        hs.append(h)
    c.tick(3000)  # members arrived during the initial delay: it is extended once
    out = c.tick(6000)
    rs = [answer(out, h) for h in hs]
    assert {r["protocol_name"] for r in rs} == {"range"}  # 2 votes to 1; sticky not common
    leader = [r for r in rs if r["members"]]
    assert len(leader) == 1 and {m["metadata"] for m in leader[0]["members"]} == {b"g"}


def test_inconsistent_group_protocol():
    c = make()
    a = new_member(c)
    join(c, a, protocols=(("range", SUB),))
    h, out = join(c, "", version=3, protocols=(("roundrobin", SUB),))
    assert answer(out, h)["error_code"] == E.INCONSISTENT_GROUP_PROTOCOL
    h, out = join(c, "", version=3, ptype="connect")
    assert answer(out, h)["error_code"] == E.INCONSISTENT_GROUP_PROTOCOL
    h, out = join(c, "", group="other", version=3, protocols=())
    assert answer(out, h)["error_code"] == E.INCONSISTENT_GROUP_PROTOCOL
    assert c.group("other") is None


# --- rebalance timing --------------------------------------------------------

def test_rebalance_timeout_removes_members_that_did_not_rejoin():
    c = make()
    a, b = two_member_stable(c)
    c_id = new_member(c, 10)
    hc, out = join(c, c_id, 10)
    ha, out = join(c, a, 20)
    assert c.next_deadline_ms() <= 10 + 30_000
    heartbeat(c, b, 2, now=5000)  # keeps b's session alive but it never rejoins
    out = c.tick(10 + 30_000)
    g = c.group("g")
    assert set(g.members) == {a, c_id} and g.generation_id == 3
    assert answer(out, ha)["leader"] == a and answer(out, hc)["generation_id"] == 3
    assert heartbeat(c, b, 2, now=30_020) == E.UNKNOWN_MEMBER_ID


def test_leader_departure_elects_a_rejoined_member():
    c = make()
    a, b = two_member_stable(c)
    h = H("leave")
    out = c.leave_group(h, {"group_id": "g", "member_id": a}, 1, 100)
    assert answer(out, h)["error_code"] == 0
    g = c.group("g")
    assert g.state is GroupState.PREPARING_REBALANCE and g.leader_id == b
    hb, out = join(c, b, 200)
    r = answer(out, hb)
    assert r["leader"] == b and r["generation_id"] == 3 and len(r["members"]) == 1


def test_new_leader_chosen_when_old_leader_does_not_rejoin():
    c = make()
    a, b = two_member_stable(c)
    x = new_member(c, 0)
    hx, out = join(c, x, 0)
    hb, out = join(c, b, 0)
    heartbeat(c, a, 2, now=9000)
    out = c.tick(30_000)  # a never rejoined
    assert c.group("g").leader_id in (b, x) and a not in c.group("g").members
    leaders = [answer(out, h)["members"] for h in (hx, hb)]
    assert sorted(len(m) for m in leaders) == [0, 2]


def test_join_during_completing_rebalance_restarts_it():
    c = make()
    a = new_member(c)
    ha, out = join(c, a)
    assert c.group("g").state is GroupState.COMPLETING_REBALANCE
    b = new_member(c)
    hb, out = join(c, b)
    ha2, out = join(c, a)
    assert c.group("g").state is GroupState.COMPLETING_REBALANCE and c.group("g").generation_id == 2
    hs, out = sync(c, b, 2)
    assert answer(out, hs) is None
    x = new_member(c)
    hx, out = join(c, x)
    assert answer(out, hs)["error_code"] == E.REBALANCE_IN_PROGRESS
    assert c.group("g").state is GroupState.PREPARING_REBALANCE


def test_initial_rebalance_delay_waits_for_more_members():
    c = make(group_initial_rebalance_delay_ms=3000)
    h1, out = join(c, "", 0, version=3)
    assert answer(out, h1) is None and c.next_deadline_ms() == 3000
    h2, out = join(c, "", 2000, version=3)
    assert answer(out, h2) is None
    out = c.tick(3000)  # a member arrived during the delay: wait another delay
    assert answer(out, h1) is None and c.next_deadline_ms() == 6000
    out = c.tick(6000)
    assert answer(out, h1)["generation_id"] == answer(out, h2)["generation_id"] == 1


def test_member_session_timeout_in_stable_group_triggers_rebalance():
    c = make()
    a, b = two_member_stable(c)
    heartbeat(c, a, 2, now=9000)
    out = c.tick(10_000)  # b's session (10 s) expired
    g = c.group("g")
    assert b not in g.members
    # a was the only member left and had not rejoined: the rebalance waits for it
    assert g.state is GroupState.PREPARING_REBALANCE
    assert heartbeat(c, a, 2, now=10_001) == E.REBALANCE_IN_PROGRESS
    h, out = join(c, a, 10_002)
    assert answer(out, h)["generation_id"] == 3


def test_removals_and_rebalances_are_logged_with_their_reason(caplog):
    """What a group went through is in the broker's log, as Kafka's coordinator logs it."""
    c = make()
    with caplog.at_level("INFO", logger="riverlog.broker.group"):
        a, b = two_member_stable(c)
        heartbeat(c, a, 2, now=9000)
        c.tick(10_000)  # b's session expires
        join(c, a, 10_002)
        c.leave_group(H(), {"group_id": "g", "members": [{"member_id": a, "group_instance_id": None}]}, 3, 10_003)
    assert [r.getMessage() for r in caplog.records] == [
        f"preparing to rebalance group g in state Empty with old generation 0 (reason: adding new member {a})",
        "stabilized group g generation 1 with 1 members",
        "preparing to rebalance group g in state CompletingRebalance with old generation 1 "
        f"(reason: adding new member {b})",
        "stabilized group g generation 2 with 2 members",
        f"removing member {b} from group g in state Stable: no heartbeat within its session timeout (10000 ms)",
        f"preparing to rebalance group g in state Stable with old generation 2 (reason: removing member {b}: "
        "no heartbeat within its session timeout (10000 ms))",
        "stabilized group g generation 3 with 1 members",
        f"removing member {a} from group g in state CompletingRebalance: left the group (LeaveGroup)",
        "preparing to rebalance group g in state CompletingRebalance with old generation 3 "
        f"(reason: removing member {a}: left the group (LeaveGroup))",
        "group g with generation 4 is now empty",
    ]


def test_member_timing_out_mid_sync_restarts_the_rebalance():
    c = make()
    a = new_member(c)
    join(c, a)
    b = new_member(c)
    hb, _ = join(c, b)
    join(c, a)
    g = c.group("g")
    assert g.state is GroupState.COMPLETING_REBALANCE and g.leader_id == a
    hs, out = sync(c, b, 2, now=1000)
    assert answer(out, hs) is None
    out = c.tick(10_000)  # the leader never synced nor heartbeated
    assert answer(out, hs)["error_code"] == E.REBALANCE_IN_PROGRESS
    assert a not in g.members and g.state is GroupState.PREPARING_REBALANCE and g.leader_id == b


def test_last_member_leaving_empties_the_group_and_bumps_generation():
    c = make()
    a, _ = two_member_stable_one(c)
    h = H()
    out = c.leave_group(h, {"group_id": "g", "members": [{"member_id": a, "group_instance_id": None}]}, 3, 5)
    g = c.group("g")
    assert g.state is GroupState.EMPTY and g.generation_id == 2
    rec = [r for r in out.records if isinstance(r, GroupMetadataRecord)]
    assert rec and rec[0].members == () and rec[0].generation_id == 2


# --- SyncGroup / Heartbeat fencing ------------------------------------------

def test_sync_and_heartbeat_fencing():
    c = make()
    a, b = two_member_stable(c)
    h, out = sync(c, a, 1)
    assert answer(out, h)["error_code"] == E.ILLEGAL_GENERATION
    h, out = sync(c, "ghost", 2)
    assert answer(out, h)["error_code"] == E.UNKNOWN_MEMBER_ID
    h, out = sync(c, a, 2, group="nope")
    assert answer(out, h)["error_code"] == E.UNKNOWN_MEMBER_ID
    assert heartbeat(c, a, 1) == E.ILLEGAL_GENERATION
    assert heartbeat(c, "ghost", 2) == E.UNKNOWN_MEMBER_ID
    assert heartbeat(c, a, 2) == 0
    h, out = sync(c, b, 2)  # stable: the current assignment again
    assert answer(out, h)["assignment"] == b"B"
    join(c, a)  # the leader rejoins -> PreparingRebalance
    h, out = sync(c, b, 2)
    assert answer(out, h)["error_code"] == E.REBALANCE_IN_PROGRESS
    assert heartbeat(c, b, 2) == E.REBALANCE_IN_PROGRESS


def test_heartbeat_during_completing_rebalance_is_fine():
    c = make()
    a = new_member(c)
    join(c, a)
    assert heartbeat(c, a, 1) == 0


def test_leader_assignment_missing_a_member_gives_it_empty_bytes():
    c = make()
    a = new_member(c)
    join(c, a)
    b = new_member(c)
    hb, _ = join(c, b)
    join(c, a)
    hs, _ = sync(c, b, 2)
    h, out = sync(c, a, 2, {a: b"A"})
    assert answer(out, hs)["assignment"] == b"" and c.group("g").state is GroupState.STABLE


def test_sync_v5_checks_protocol_type_and_name():
    c = make()
    a = new_member(c)
    join(c, a)
    h = H()
    out = c.sync_group(h, {"group_id": "g", "generation_id": 1, "member_id": a, "group_instance_id": None,
                           "protocol_type": "consumer", "protocol_name": "roundrobin", "assignments": []}, 5, 0)
    assert answer(out, h)["error_code"] == E.INCONSISTENT_GROUP_PROTOCOL


# --- LeaveGroup ---------------------------------------------------------------

def test_leave_batched_reports_per_member_errors():
    c = make()
    a, b = two_member_stable(c)
    h = H()
    out = c.leave_group(h, {"group_id": "g", "members": [
        {"member_id": b, "group_instance_id": None, "reason": None},
        {"member_id": "ghost", "group_instance_id": None, "reason": None}]}, 3, 0)
    r = answer(out, h)
    assert r["error_code"] == 0
    assert [(m["member_id"], m["error_code"]) for m in r["members"]] == [(b, 0), ("ghost", E.UNKNOWN_MEMBER_ID)]
    assert c.group("g").state is GroupState.PREPARING_REBALANCE


def test_leave_v1_unknown_member_is_top_level_error():
    c = make()
    two_member_stable(c)
    h = H()
    out = c.leave_group(h, {"group_id": "g", "member_id": "ghost"}, 1, 0)
    assert answer(out, h)["error_code"] == E.UNKNOWN_MEMBER_ID


# --- static membership --------------------------------------------------------

def static_stable(c, protocols=(("range", SUB),), **kw):
    ha, out = join(c, "", instance="ia", protocols=protocols, **kw)
    a = answer(out, ha)["member_id"]
    h, out = sync(c, a, 1, {a: b"A"}, instance="ia")
    assert c.group("g").state is GroupState.STABLE
    return a


def test_static_member_rejoin_replaces_old_id_without_rebalance():
    c = make()
    a = static_stable(c)
    h, out = join(c, "", 100, instance="ia")
    r = answer(out, h)
    new = r["member_id"]
    g = c.group("g")
    assert new != a and g.state is GroupState.STABLE and g.generation_id == 1
    assert r["error_code"] == 0 and r["leader"] == a and r["members"] == []  # old leader id: no reassignment
    assert g.static_members == {"ia": new} and g.leader_id == new
    assert any(isinstance(rec, GroupMetadataRecord) for rec in out.records)
    h, out = sync(c, new, 1, instance="ia")
    assert answer(out, h)["assignment"] == b"A"
    assert heartbeat(c, a, 1, instance="ia") == E.FENCED_INSTANCE_ID
    h, out = join(c, a, instance="ia")
    assert answer(out, h)["error_code"] == E.FENCED_INSTANCE_ID
    codes, _ = commit(c, a, 1, instance="ia", version=7)
    assert set(codes.values()) == {E.FENCED_INSTANCE_ID}


def test_static_leader_rejoin_v9_skips_assignment():
    c = make()
    a = static_stable(c)
    h, out = join(c, "", 100, version=9, instance="ia")
    r = answer(out, h)
    assert r["skip_assignment"] is True and r["leader"] == r["member_id"] and len(r["members"]) == 1


def test_static_member_with_changed_protocol_triggers_rebalance():
    c = make()
    static_stable(c)
    h, out = join(c, "", 100, instance="ia", protocols=(("roundrobin", SUB), ("range", SUB)))
    # it now prefers another protocol, which would be selected: rebalance (alone, it completes at once)
    r = answer(out, h)
    assert r["generation_id"] == 2 and r["protocol_name"] == "roundrobin"


def test_static_replacement_fences_a_waiting_old_member():
    c = make()
    ha, out = join(c, "", instance="ia")
    a = answer(out, ha)["member_id"]
    hb, out = join(c, "", instance="ib")  # rebalance: waits for a
    ha2, out = join(c, a, instance="ia")
    g = c.group("g")
    assert g.state is GroupState.COMPLETING_REBALANCE
    b = answer(out, hb)["member_id"]
    hs, out = sync(c, b, 2, instance="ib")
    h, out = join(c, "", instance="ib")  # ib restarts while its old id waits in SyncGroup
    assert answer(out, hs)["error_code"] == E.FENCED_INSTANCE_ID
    assert g.state is GroupState.PREPARING_REBALANCE


def test_static_member_is_kept_through_a_missed_join_but_not_past_its_session():
    c = make()
    a = static_stable(c)
    join(c, "", 10, instance="ib")
    assert heartbeat(c, a, 1, now=9000, instance="ia") == E.REBALANCE_IN_PROGRESS
    c.tick(18_999)
    assert a in c.group("g").members
    c.tick(19_000)  # no heartbeat for its 10 s session
    assert a not in c.group("g").members


def test_leave_by_instance_id_only():
    c = make()
    a = static_stable(c)
    h = H()
    out = c.leave_group(h, {"group_id": "g", "members": [{"member_id": "", "group_instance_id": "ia"}]}, 4, 0)
    assert answer(out, h)["members"][0]["error_code"] == 0
    assert c.group("g").state is GroupState.EMPTY


# --- offsets ------------------------------------------------------------------

def test_simple_commit_without_membership():
    c = make()
    codes, out = commit(c, now=5)
    assert codes == {("t1", 0): 0}
    (rec,) = out.records
    assert isinstance(rec, OffsetCommitRecord) and rec.offset.offset == 10 and rec.offset.leader_epoch == 3
    assert fetch(c) == {("t1", 0): 10}
    assert fetch(c, {"t1": [0, 1], "t9": [0]}) == {("t1", 0): 10, ("t1", 1): -1, ("t9", 0): -1}
    assert fetch(c, group="unknown") == {}


def test_commit_generation_and_member_rules():
    c = make()
    codes, _ = commit(c, "m", 3, group="fresh")
    assert set(codes.values()) == {E.ILLEGAL_GENERATION}
    a, b = two_member_stable(c)
    assert set(commit(c)[0].values()) == {E.UNKNOWN_MEMBER_ID}  # simple commit into a live group
    assert set(commit(c, a, 1)[0].values()) == {E.ILLEGAL_GENERATION}
    assert set(commit(c, "ghost", 2)[0].values()) == {E.UNKNOWN_MEMBER_ID}
    assert set(commit(c, a, 2)[0].values()) == {0}
    join(c, a)  # PreparingRebalance: commits still accepted
    assert set(commit(c, b, 2)[0].values()) == {0}
    join(c, b)  # CompletingRebalance
    assert set(commit(c, b, 3)[0].values()) == {E.REBALANCE_IN_PROGRESS}


def test_offset_metadata_too_large():
    c = make(offset_metadata_max_bytes=5)
    codes, out = commit(c, metadata="123456")
    assert codes == {("t1", 0): E.OFFSET_METADATA_TOO_LARGE} and out.records == []


def test_offsets_expire_after_retention_from_when_the_group_became_empty():
    c = make(offsets_retention_minutes=1, offsets_retention_check_interval_ms=1000)
    a, _ = two_member_stable_one(c)
    commit(c, a, 1, now=0)
    h = H()
    c.leave_group(h, {"group_id": "g", "member_id": a}, 1, 50_000)  # empty at t=50 s
    assert c.tick(100_000).records == []  # 100 s after the commit, 50 s after emptying
    out = c.tick(110_000)
    assert OffsetTombstone("g", "t1", 0) in out.records and GroupTombstone("g") in out.records
    assert c.group("g") is None


def test_stable_group_keeps_subscribed_offsets_and_expires_others():
    c = make(offsets_retention_minutes=1, offsets_retention_check_interval_ms=1000)
    a, _ = two_member_stable_one(c)
    commit(c, a, 1, {("t1", 0): 1, ("old", 0): 2})
    assert heartbeat(c, a, 1, now=55_000) == 0
    out = c.tick(60_000)
    assert out.records == [OffsetTombstone("g", "old", 0)]
    assert ("t1", 0) in c.group("g").offsets


def test_simple_group_offsets_expire_from_commit_time():
    c = make(offsets_retention_minutes=1, offsets_retention_check_interval_ms=1000)
    commit(c, now=0)
    commit(c, offsets={("t1", 1): 5}, now=30_000)
    out = c.tick(60_000)
    assert out.records == [OffsetTombstone("g", "t1", 0)]
    out = c.tick(90_000)
    assert out.records == [OffsetTombstone("g", "t1", 1), GroupTombstone("g")]


def test_fetch_v8_groups_form():
    c = make()
    commit(c)
    h = H()
    out = c.offset_fetch(h, {"groups": [{"group_id": "g", "member_id": None, "member_epoch": -1, "topics": None}],
                             "require_stable": False}, 8, 0)
    (g,) = answer(out, h)["groups"]
    assert g["topics"][0]["partitions"][0]["committed_offset"] == 10


# --- DeleteGroups / OffsetDelete / Describe / List ----------------------------

def test_delete_groups_only_when_empty():
    c = make()
    two_member_stable(c)
    commit(c, group="simple")
    h = H()
    out = c.delete_groups(h, {"groups_names": ["g", "simple", "nope"]}, 1, 0)
    assert [(r["group_id"], r["error_code"]) for r in answer(out, h)["results"]] == [
        ("g", E.NON_EMPTY_GROUP), ("simple", 0), ("nope", E.GROUP_ID_NOT_FOUND)]
    assert out.records == [OffsetTombstone("simple", "t1", 0), GroupTombstone("simple")]
    assert c.group("simple") is None


def test_offset_delete_rules():
    c = make()
    a, b = two_member_stable(c)
    commit(c, a, 2, {("t1", 0): 1, ("t2", 0): 2})
    h = H()
    out = c.offset_delete(h, {"group_id": "g", "topics": [
        {"name": "t1", "partitions": [{"partition_index": 0}]},
        {"name": "t2", "partitions": [{"partition_index": 0}]}]}, 0, 0)
    r = answer(out, h)
    codes = {(t["name"], p["partition_index"]): p["error_code"] for t in r["topics"] for p in t["partitions"]}
    assert codes == {("t1", 0): E.GROUP_SUBSCRIBED_TO_TOPIC, ("t2", 0): 0}
    assert out.records == [OffsetTombstone("g", "t2", 0)]
    h = H()
    out = c.offset_delete(h, {"group_id": "nope", "topics": []}, 0, 0)
    assert answer(out, h)["error_code"] == E.GROUP_ID_NOT_FOUND
    commit(c, group="simple")
    h = H()
    out = c.offset_delete(h, {"group_id": "simple", "topics": [{"name": "t1", "partitions": [{"partition_index": 0}]}]}, 0, 0)
    assert answer(out, h)["error_code"] == 0 and GroupTombstone("simple") in out.records


def test_describe_and_list_groups():
    c = make()
    a, b = two_member_stable(c)
    commit(c, group="simple")
    h = H()
    out = c.describe_groups(h, {"groups": ["g", "nope"], "include_authorized_operations": False}, 4, 0)
    g, nope = answer(out, h)["groups"]
    assert g["group_state"] == "Stable" and g["protocol_type"] == "consumer" and g["protocol_data"] == "range"
    assert [(m["member_id"], m["member_assignment"], m["member_metadata"]) for m in g["members"]] == [
        (a, b"A", SUB), (b, b"B", SUB)]
    assert nope["group_state"] == "Dead" and nope["error_code"] == 0
    h = H()
    out = c.list_groups(h, {"states_filter": []}, 4, 0)
    assert {(x["group_id"], x["group_state"]) for x in answer(out, h)["groups"]} == {("g", "Stable"), ("simple", "Empty")}
    h = H()
    out = c.list_groups(h, {"states_filter": ["empty"]}, 4, 0)
    assert [x["group_id"] for x in answer(out, h)["groups"]] == ["simple"]


# --- replay -------------------------------------------------------------------

def snapshot(c):
    return {g.group_id: (g.state, g.generation_id, g.protocol_type, g.protocol_name, g.leader_id,
                         {m.member_id: (m.group_instance_id, m.assignment) for m in g.members.values()},
                         dict(g.offsets))
            for g in c.groups()}


def test_replay_rebuilds_groups_and_offsets():
    c = make()
    log = []

    def rec(out):
        log.extend(out.records)
        return out

    a = new_member(c)
    rec(join(c, a)[1])
    b = new_member(c)
    rec(join(c, b)[1])
    rec(join(c, a)[1])
    rec(sync(c, b, 2)[1])
    rec(sync(c, a, 2, {a: b"A", b: b"B"})[1])
    rec(commit(c, a, 2, {("t1", 0): 5, ("t1", 1): 6})[1])
    rec(commit(c, group="simple")[1])
    h = H()
    rec(c.offset_delete(h, {"group_id": "g", "topics": [{"name": "t1", "partitions": [{"partition_index": 1}]}]}, 0, 0))
    rec(join(c, "", group="gone", version=3)[1])
    h = H()
    rec(c.leave_group(h, {"group_id": "gone", "member_id": "c-4"}, 1, 0))
    rec(c.tick(700_000))  # sessions expire: g empties; gone (no offsets) is removed
    assert c.group("gone") is None and c.group("g").state is GroupState.EMPTY
    s = make()
    for r in log:
        s.replay(r, 700_000)
    assert snapshot(s) == snapshot(c)


def test_replayed_members_get_fresh_sessions():
    c = make()
    a, b = two_member_stable(c)
    g = c.group("g")
    s = make()
    s.replay(GroupMetadataRecord.of(g), 1_000_000)
    r = s.group("g")
    assert r.state is GroupState.STABLE and r.leader_id == a and r.generation_id == 2
    assert s.next_deadline_ms() == 1_010_000
    assert heartbeat(s, b, 2, now=1_005_000) == 0
    h, out = sync(s, b, 2, now=1_005_000)
    assert answer(out, h)["assignment"] == b"B"


def test_subscription_parser():
    assert subscription_topics(encode_subscription(["a", "bb"], version=3)) == {"a", "bb"}
    assert subscription_topics(b"\x00") is None


def test_a_rebalance_timeout_of_zero_does_not_make_the_coordinator_spin():
    # Two static members asking for rebalance_timeout_ms=0; one leaves and the
    # other does not rejoin: "nobody rejoined, wait another round" must set a
    # deadline in a later tick, not "now" again, round after round in one tick.
    c = make()
    a = static_stable(c, rebalance=0)
    hb, out = join(c, "", 10, instance="ib", rebalance=0)
    ha, out = join(c, a, 20, instance="ia", rebalance=0)
    b = answer(out, hb)["member_id"]
    gen = answer(out, ha)["generation_id"]
    sync(c, b, gen, now=30, instance="ib")
    sync(c, a, gen, {a: b"A", b: b"B"}, now=30, instance="ia")
    assert c.group("g").state is GroupState.STABLE
    out = c.leave_group(H(), {"group_id": "g", "members": [{"member_id": b, "group_instance_id": "ib"}]}, 4, 40)
    assert c.group("g").state is GroupState.PREPARING_REBALANCE
    for now in range(40, 5_000, 100):
        c.tick(now)  # raised AssertionError ("made no progress") without the floor
        heartbeat(c, a, gen, now=now, instance="ia")  # keeps its session; the answer does not matter here


def test_a_huge_client_id_still_makes_a_member_id_the_group_record_can_hold():
    from riverlog.broker.group.coordinator import GroupCoordinator
    from riverlog.broker.group.record_codec import encode
    from riverlog.broker.group.records_model import GroupMetadataRecord

    c = GroupCoordinator(GroupConfig(group_initial_rebalance_delay_ms=0))
    h, out = join(c, "", 0, version=3, client_id="c" * 32_000)  # v3: an id at once, no handshake
    member_id = answer(out, h)["member_id"]
    assert len(member_id) < 300 and member_id.startswith("c" * 255 + "-")
    encode(GroupMetadataRecord.of(c.group("g")))  # raised ValueError (string too long) before
