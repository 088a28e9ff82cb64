"""Random client behaviour against GroupCoordinator, with invariants checked after every step.

Invariants: one leader per generation in every JoinGroup answer; the group's
leader is a member; STABLE means every member holds an assignment for the
current generation; generations never decrease; every request handle is
answered at most once.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riverlog.broker.group import GroupConfig, GroupCoordinator
from riverlog.broker.group.subscription import encode_subscription
from riverlog.client.protocol import ErrorCode as E

N_CLIENTS = 4
PROTOCOLS = [[("range", encode_subscription(["t"]))],
             [("range", encode_subscription(["t"])), ("rr", encode_subscription(["t"]))]]

op = st.one_of(
    st.tuples(st.just("join"), st.integers(0, N_CLIENTS - 1), st.sampled_from([3, 4, 5]), st.integers(0, 1)),
    st.tuples(st.just("sync"), st.integers(0, N_CLIENTS - 1)),
    st.tuples(st.just("hb"), st.integers(0, N_CLIENTS - 1)),
    st.tuples(st.just("leave"), st.integers(0, N_CLIENTS - 1)),
    st.tuples(st.just("commit"), st.integers(0, N_CLIENTS - 1)),
    st.tuples(st.just("time"), st.integers(1, 40_000)),
)


class Client:
    def __init__(self, i: int) -> None:
        self.i = i
        self.member_id = ""
        self.generation = -1
        self.members: list[str] = []
        self.static = i % 2 == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=60))
def test_random_sequences_keep_group_invariants(ops):
    ids = itertools.count()
    c = GroupCoordinator(GroupConfig(group_initial_rebalance_delay_ms=1000),
                         new_member_id=lambda p: f"{p}-{next(ids)}")
    clients = [Client(i) for i in range(N_CLIENTS)]
    handles: dict[object, tuple[Client, str]] = {}
    answered: set[object] = set()
    leader_of_generation: dict[int, str] = {}
    now, last_generation = 0, 0

    def deliver(out):
        for h, body in out.responses:
            assert h not in answered, "a handle was answered twice"
            answered.add(h)
            cl, kind = handles[h]
            err = body["error_code"] if "error_code" in body else body["topics"][0]["partitions"][0]["error_code"]
            if kind == "join":
                if err == E.MEMBER_ID_REQUIRED:
                    cl.member_id = body["member_id"]
                elif err == 0:
                    cl.member_id, cl.generation = body["member_id"], body["generation_id"]
                    cl.members = [m["member_id"] for m in body["members"]]
                    prev = leader_of_generation.setdefault(body["generation_id"], body["leader"])
                    assert prev == body["leader"], "two leaders for one generation"
                elif err in (E.UNKNOWN_MEMBER_ID, E.FENCED_INSTANCE_ID):
                    cl.member_id, cl.generation = "", -1
            elif err in (E.UNKNOWN_MEMBER_ID, E.FENCED_INSTANCE_ID):
                cl.member_id, cl.generation = "", -1

    for step in ops:
        kind = step[0]
        if kind == "time":
            now += step[1]
            deliver(c.tick(now))
        else:
            cl = clients[step[1]]
            h = object()
            handles[h] = (cl, "join" if kind == "join" else kind)
            base = {"group_id": "g", "member_id": cl.member_id,
                    "group_instance_id": f"i{cl.i}" if cl.static else None}
            if kind == "join":
                req = dict(base, session_timeout_ms=10_000, rebalance_timeout_ms=20_000,
                           protocol_type="consumer", reason=None,
                           protocols=[{"name": n, "metadata": m} for n, m in PROTOCOLS[step[3]]])
                deliver(c.join_group(h, req, step[2], now))
            elif kind == "sync":
                assignments = [{"member_id": m, "assignment": m.encode()} for m in cl.members]
                deliver(c.sync_group(h, dict(base, generation_id=cl.generation, protocol_type=None,
                                             protocol_name=None, assignments=assignments), 3, now))
            elif kind == "hb":
                deliver(c.heartbeat(h, dict(base, generation_id=cl.generation), 3, now))
            elif kind == "leave":
                deliver(c.leave_group(h, {"group_id": "g", "members": [
                    {"member_id": cl.member_id, "group_instance_id": base["group_instance_id"]}]}, 3, now))
            elif kind == "commit":
                deliver(c.offset_commit(h, dict(
                    base, generation_id_or_member_epoch=cl.generation, retention_time_ms=-1,
                    topics=[{"name": "t", "partitions": [{"partition_index": 0, "committed_offset": now,
                                                          "committed_leader_epoch": -1,
                                                          "committed_metadata": None}]}]), 7, now))
        deadline = c.next_deadline_ms()
        assert deadline is None or deadline > now or kind != "time"
        g = c.group("g")
        if g is not None:
            g.check_invariants()
            assert g.generation_id >= last_generation
            last_generation = g.generation_id
