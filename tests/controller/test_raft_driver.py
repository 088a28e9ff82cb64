"""The Trio driver: real sockets on loopback, real files, the Kafka codec;
three voters (and an observer) in one Trio run."""

from __future__ import annotations

import functools
import struct

import pytest
import trio

from riverlog.broker.controller.raft.core import NotLeaderError
from riverlog.broker.controller.raft.roles import RaftConfig, Role
from riverlog.broker.controller.raft_driver import RaftDriver
from tests.integration.broker_process import free_ports

FAST = {"tick_ms": 10, "election_timeout_ms": 200, "fetch_timeout_ms": 400, "fetch_max_wait_ms": 100,
        "request_timeout_ms": 400, "election_backoff_max_ms": 200}  # fmt: skip


class ListMachine:
    def __init__(self) -> None:
        self.items: list[bytes] = []
        self.restored = 0

    def apply(self, entries) -> None:
        self.items += [e.data for e in entries]

    def snapshot(self) -> bytes:
        return b"\n".join(self.items)

    def restore(self, data: bytes) -> None:
        self.restored += 1
        self.items = data.split(b"\n") if data else []


class Cluster:
    def __init__(self, tmp_path, nursery, voters=(1, 2, 3), observers=(), **driver_options) -> None:
        self.tmp_path, self.nursery = tmp_path, nursery
        self.voters = frozenset(voters)
        ids = (*voters, *observers)
        self.addresses = {n: ("127.0.0.1", p) for n, p in zip(ids, free_ports(len(ids)))}
        self.options = driver_options
        self.drivers: dict[int, RaftDriver] = {}
        self.scopes: dict[int, trio.CancelScope] = {}

    async def start(self, node: int) -> RaftDriver:
        driver = RaftDriver(RaftConfig(node, self.voters, **FAST), self.tmp_path / f"node{node}", ListMachine(),
                            cluster_id="test-cluster", peers={v: self.addresses[v] for v in self.voters},
                            listen=self.addresses[node], **self.options)  # fmt: skip
        scope = trio.CancelScope()

        async def run(task_status=trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await driver.serve(task_status=task_status)

        await self.nursery.start(run)
        self.drivers[node], self.scopes[node] = driver, scope
        return driver

    def stop(self, node: int) -> None:
        self.scopes.pop(node).cancel()
        self.drivers.pop(node)

    async def leader(self, timeout: float = 10, exclude=()) -> RaftDriver:
        with trio.fail_after(timeout):
            while True:
                for d in self.drivers.values():
                    if d.core.is_leader and d.node_id not in exclude:
                        return d
                await trio.sleep(0.01)


async def test_three_voters_elect_a_leader_and_commit_everywhere(tmp_path, nursery):
    c = Cluster(tmp_path, nursery)
    for n in (1, 2, 3):
        await c.start(n)
    leader = await c.leader()
    offsets = []
    async with trio.open_nursery() as proposers:
        for k in range(5):
            async def propose(k=k):
                for i in range(20):
                    offsets.append(await leader.propose([b"%d-%d" % (k, i)]))
            proposers.start_soon(propose)
    assert len(set(offsets)) == 100
    end = max(offsets) + 1
    with trio.fail_after(5):
        for d in c.drivers.values():
            await d.wait_applied(end)
    contents = [d.state_machine.items for d in c.drivers.values()]
    assert len(contents[0]) == 100 and contents[0] == contents[1] == contents[2]


async def test_a_follower_refuses_proposals(tmp_path, nursery):
    c = Cluster(tmp_path, nursery)
    for n in (1, 2, 3):
        await c.start(n)
    leader = await c.leader()
    follower = next(d for d in c.drivers.values() if d is not leader)
    with pytest.raises(NotLeaderError) as info:
        await follower.propose([b"x"])
    assert info.value.leader_id in (leader.node_id, -1)


async def test_losing_the_leader_elects_another_that_keeps_every_committed_entry(tmp_path, nursery):
    c = Cluster(tmp_path, nursery)
    for n in (1, 2, 3):
        await c.start(n)
    leader = await c.leader()
    for i in range(10):
        await leader.propose([b"before-%d" % i])
    c.stop(leader.node_id)
    new = await c.leader(exclude={leader.node_id})
    await new.propose([b"after"])
    items = new.state_machine.items
    assert items[:10] == [b"before-%d" % i for i in range(10)] and items[-1] == b"after"
    # the old leader comes back with its data and catches up as a follower
    back = await c.start(leader.node_id)
    with trio.fail_after(5):
        await back.wait_applied(new.core.applied_offset)
    assert back.state_machine.items == items and back.core.role is Role.FOLLOWER


async def test_a_restarted_quorum_replays_its_log_from_disk(tmp_path, nursery):
    c = Cluster(tmp_path, nursery, snapshot_interval_entries=25)
    for n in (1, 2, 3):
        await c.start(n)
    leader = await c.leader()
    for i in range(60):
        await leader.propose([b"%d" % i])
    for n in (1, 2, 3):
        c.stop(n)
    for n in (1, 2, 3):
        await c.start(n)
    leader = await c.leader()
    await leader.propose([b"again"])
    assert leader.state_machine.items == [b"%d" % i for i in range(60)] + [b"again"]
    assert leader.state_machine.restored == 1  # from its snapshot, then the log after it


async def test_a_voter_far_behind_catches_up_through_the_snapshot(tmp_path, nursery):
    c = Cluster(tmp_path, nursery, snapshot_interval_entries=20)
    for n in (1, 2):
        await c.start(n)
    leader = await c.leader()
    for i in range(50):
        await leader.propose([b"%d" % i])
    assert leader.core.log_start_offset > 0
    late = await c.start(3)
    with trio.fail_after(5):
        await late.wait_applied(leader.core.applied_offset)
    assert late.state_machine.restored == 1 and late.state_machine.items == leader.state_machine.items


async def test_garbage_on_the_controller_listener_closes_that_connection_only(tmp_path, nursery):
    c = Cluster(tmp_path, nursery)
    for n in (1, 2, 3):
        await c.start(n)
    leader = await c.leader()
    for payload in (struct.pack(">i", -5), struct.pack(">i", 1 << 30), struct.pack(">i", 8) + b"\xff" * 8,
                    struct.pack(">ihhi", 10, 3, 0, 1) + b"\x00\x00"):  # fmt: skip
        stream = await trio.open_tcp_stream(*c.addresses[leader.node_id])
        await stream.send_all(payload)
        with trio.fail_after(5):
            assert await stream.receive_some(100) == b""  # closed, no answer
        await stream.aclose()
    assert await leader.propose([b"still fine"]) >= 0


async def test_the_controller_listener_refuses_connections_beyond_its_cap(tmp_path, nursery, monkeypatch):
    from riverlog.broker.controller import raft_driver

    monkeypatch.setattr(raft_driver, "MAX_PEER_CONNECTIONS", 2)
    c = Cluster(tmp_path, nursery, voters=(1,))
    await c.start(1)
    held = [await trio.open_tcp_stream(*c.addresses[1]) for _ in range(2)]
    await trio.sleep(0.1)  # both are being served
    extra = await trio.open_tcp_stream(*c.addresses[1])
    with trio.fail_after(5):
        assert await extra.receive_some(100) == b""  # closed at once
    for stream in (*held, extra):
        await stream.aclose()
    await trio.sleep(0.1)
    again = await trio.open_tcp_stream(*c.addresses[1])  # room again once they are gone
    await again.send_all(struct.pack(">i", 8) + b"\xff" * 8)  # and it is served (garbage: closed after reading)
    with trio.fail_after(5):
        assert await again.receive_some(100) == b""
    await again.aclose()


async def _closed(stream) -> bool:
    with trio.move_on_after(5):
        try:
            return await stream.receive_some(100) == b""
        except trio.BrokenResourceError:
            return True
    return False


async def test_the_controller_listener_closes_idle_and_trickling_connections(tmp_path, nursery):
    """connections.max.idle.ms on the controller listener: a connection that
    sends nothing, and one whose request trickles in a byte at a time."""
    c = Cluster(tmp_path, nursery, voters=(1,), connections_max_idle_ms=300)
    await c.start(1)
    idle = await trio.open_tcp_stream(*c.addresses[1])
    assert await _closed(idle)
    slow = await trio.open_tcp_stream(*c.addresses[1])
    closed = False
    with trio.fail_after(10):
        for byte in struct.pack(">i", 1000) + bytes(1000):
            try:
                await slow.send_all(bytes([byte]))
            except trio.BrokenResourceError:
                closed = True
                break
            with trio.move_on_after(0.05):
                try:
                    closed = await slow.receive_some(1) == b""
                except trio.BrokenResourceError:
                    closed = True
            if closed:
                break
    assert closed


async def test_the_controller_listener_charges_what_it_reads_to_its_memory_pool(tmp_path, nursery):
    """What a connection takes for a request is charged to the pool as its
    bytes arrive (a size prefix alone costs nothing; a large frame's buffer
    as it is allocated and doubled, as on the client listener: the same
    loop); once the pool is taken, another connection reads nothing more
    until memory comes back."""
    from riverlog.broker.net.memory_pool import MemoryPool

    pool = MemoryPool(1 << 20)
    c = Cluster(tmp_path, nursery, voters=(1,), memory_pool=pool)
    await c.start(1)

    async def wait_for(condition) -> None:
        with trio.fail_after(5):
            while not condition():
                await trio.sleep(0.01)

    first = await trio.open_tcp_stream(*c.addresses[1])
    await first.send_all(struct.pack(">i", 2_000_000) + bytes(1_100_000))  # more than the pool; never finished
    await wait_for(lambda: pool.reserved == 2_000_000)  # it alone held memory, so its buffer grew whole
    second = await trio.open_tcp_stream(*c.addresses[1])
    await second.send_all(struct.pack(">i", 900_000) + bytes(1000))
    await wait_for(lambda: pool.waiting == 1)
    await first.aclose()
    await wait_for(lambda: not pool.waiting and pool.reserved == 900_000)  # the second has its buffer now
    await second.aclose()
    await wait_for(lambda: pool.reserved == 0)


async def test_a_controller_connection_cancelled_waiting_for_the_pool_gives_back_only_what_it_holds():
    """A connection waiting for the pool when its listener stops: it gives
    back nothing it was never granted."""
    from riverlog.broker.controller.quorum_rpc import controller_listener
    from riverlog.broker.net.connection import Connection
    from riverlog.broker.net.memory_pool import MemoryPool

    pool = MemoryPool(1000)
    assert pool.try_reserve(1000)  # all of it held elsewhere
    ours, theirs = (trio.SocketStream(s) for s in trio.socket.socketpair())

    async def never(header, body):
        raise AssertionError("no request is whole")

    listener = controller_listener(never, max_frame_bytes=1 << 20, memory_pool=pool)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(Connection(listener, theirs, "test").run)
        await ours.send_all(struct.pack(">i", 900_000) + bytes(100))
        with trio.fail_after(5):
            while not pool.waiting:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert pool.reserved == 1000 and not pool.waiting
    await ours.aclose()


async def test_a_quorum_elects_after_its_idle_connections_were_closed(tmp_path, nursery):
    """With a short connections.max.idle.ms the listeners close the quiet
    election connections; the next election must not stumble on them."""
    c = Cluster(tmp_path, nursery, connections_max_idle_ms=200)
    for n in (1, 2, 3):
        await c.start(n)
    leader = await c.leader()
    await leader.propose([b"before"])
    followers = [d for d in c.drivers.values() if d is not leader]
    with trio.fail_after(10):  # the leader's election connections to them, quiet since the election, are closed
        while any(d._peer_connections for d in followers):
            await trio.sleep(0.01)
    c.stop(leader.node_id)
    successor = await c.leader(exclude=(leader.node_id,))
    assert await successor.propose([b"after"]) >= 0


async def test_a_controller_connection_whose_peer_takes_no_answer_is_closed():
    """A peer that sends requests and never reads: once the socket buffers
    are full the answers cannot be sent, and after connections.max.idle.ms
    the listener gives up on it rather than hold the connection (and its
    memory) for ever."""
    import socket

    from riverlog.broker.controller.quorum_rpc import controller_listener
    from riverlog.broker.net.connection import Connection
    from riverlog.client.protocol import encode_frame, encode_request
    from riverlog.client.protocol.headers import RequestHeader

    ours, theirs = trio.socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    async def never(header, body):
        raise AssertionError("ApiVersions is answered by the listener")

    done = trio.Event()
    listener = controller_listener(never, max_frame_bytes=1 << 20, max_idle_ms=300)

    async def serve() -> None:
        await Connection(listener, trio.SocketStream(theirs), "test").run()
        done.set()

    requests = b"".join(encode_frame(encode_request(RequestHeader(18, 3, i, "t"), {})) for i in range(20_000))
    stream = trio.SocketStream(ours)

    async def send() -> None:
        try:
            await stream.send_all(requests)  # blocks once the listener stops reading
        except trio.BrokenResourceError:
            pass  # the listener closed the connection with our requests unread

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        nursery.start_soon(send)
        with trio.fail_after(10):
            await done.wait()
        nursery.cancel_scope.cancel()
    await stream.aclose()

