"""RaftDriver: the Trio side of one quorum member around the pure core.

- Time: a ticker calls ``core.tick()`` every ``tick_ms``.
- Every change to the core is followed by ``_process()``: for each Ready,
  write it to the RaftStore (fsynced), ``core.persisted()``, and only then
  send its messages and apply its committed entries. ``_process`` never
  awaits, so no other core call can come between a Ready and its
  persisted() (the core asserts it). The fsync therefore runs on the Trio
  thread: a metadata quorum writes small batches, and proposals that
  arrive meanwhile are gathered into the next one.
- Messages: requests go out on a link per (peer, lane), Fetch and
  FetchSnapshot on one lane and the election RPCs on the other (quorum_rpc
  says why), through a bounded queue that drops when full (Raft survives
  lost messages; an unbounded queue to a dead peer would not be survived).
  Requests from peers arrive on the controller listener; the core's answer
  goes back on the connection that asked.
- The state machine gets ``apply(entries)`` with the committed entries of
  each Ready that are not control entries, ``restore(data)`` when a snapshot replaces its state
  and ``snapshot()`` every ``snapshot_interval_entries`` applied entries.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import trio

from riverlog.broker.net.connection import Connection
from riverlog.broker.net.memory_pool import MemoryPool
from riverlog.client.protocol import RequestHeader

from . import wire
from .quorum_rpc import DEFAULT_MAX_IDLE_MS, Extra, PeerLink, controller_listener, peer_name
from .raft.core import NotLeaderError, RaftCore
from .raft.messages import REQUESTS, Entry, FetchRequest, FetchSnapshotRequest, Message, Snapshot, SnapshotId, VoteRequest
from .raft.roles import RaftConfig
from .raft_store import RaftStore

log = logging.getLogger(__name__)

# Each member opens two links to each other member, each broker a few: any
# more is not a quorum member, and each connection costs a task and buffers.
MAX_PEER_CONNECTIONS = 1024


class StateMachine(Protocol):
    def apply(self, entries: Sequence[Entry]) -> None: ...  # committed, in order, control entries left out
    def snapshot(self) -> bytes: ...
    def restore(self, data: bytes) -> None: ...


@dataclass
class Proposal:
    datas: list[bytes]
    done: trio.Event = field(default_factory=trio.Event)
    offset: int = -1
    epoch: int = -1
    error: Exception | None = None


class RaftDriver:
    def __init__(
        self,
        config: RaftConfig,
        data_dir: Path,
        state_machine: StateMachine,
        *,
        cluster_id: str,
        peers: Mapping[int, tuple[str, int]],
        listen: tuple[str, int] | None = ("127.0.0.1", 0),
        snapshot_interval_entries: int = 20_000,
        send_queue_max: int = 1024,
        rng: random.Random | None = None,
        extra_apis: Extra | None = None,
        connections_max_idle_ms: int = DEFAULT_MAX_IDLE_MS,
        memory_pool: MemoryPool | None = None,
    ) -> None:
        self.config = config
        self.node_id = config.node_id
        self.cluster_id = cluster_id
        self.state_machine = state_machine
        self.peers = {n: a for n, a in peers.items() if n != config.node_id}
        self.listen = listen
        self.snapshot_interval_entries = snapshot_interval_entries
        self.connections_max_idle_ms = connections_max_idle_ms
        # What the controller listener serves (the quorum's RPCs and
        # ``extra_apis``) and its bounds; memory_pool None: no pool.
        self._listener = controller_listener(self._handle_request, extra_apis, max_idle_ms=connections_max_idle_ms,
                                             memory_pool=memory_pool)  # fmt: skip
        self.store = RaftStore(data_dir)
        hard, snapshot, entries = self.store.load()
        if snapshot is not None:
            state_machine.restore(snapshot.data)
        self.core = RaftCore(config, rng or random.Random(), hard, snapshot, entries)
        self.port = -1
        self._queues: dict[tuple[int, str], tuple[trio.MemorySendChannel, trio.MemoryReceiveChannel]] = {
            (peer, lane): trio.open_memory_channel(send_queue_max) for peer in self.peers for lane in ("fetch", "elect")
        }
        self._inbound: dict[tuple[int, int], list] = {}  # (peer, correlation) -> [event, answer]
        self._inbound_seq = 0
        self._peer_connections = 0
        self._proposals: list[Proposal] = []
        self._proposal_wake = trio.Event()
        self._waiting: list[Proposal] = []
        self._changed = trio.Event()  # set (and replaced) after every _process: roles, applied entries

    # -- running -------------------------------------------------------------------

    async def serve(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                if self.listen is not None:  # (a quorum of one needs no listener)
                    host, port = self.listen
                    listeners = await nursery.start(functools.partial(trio.serve_tcp, self._serve_peer, port,
                                                                      host=host))  # fmt: skip
                    self.port = listeners[0].socket.getsockname()[1]
                for (peer, lane), (_, receive) in self._queues.items():
                    nursery.start_soon(self._sender, peer, lane, receive)
                nursery.start_soon(self._proposer)
                nursery.start_soon(self._ticker)
                if self.config.voters == frozenset({self.node_id}):
                    self.core.tick()  # a quorum of one elects itself on its first tick: take it now
                self._process()
                task_status.started(self)
        finally:
            self.store.close()

    async def _ticker(self) -> None:
        period = self.config.tick_ms / 1000
        deadline = trio.current_time()
        while True:
            deadline += period
            await trio.sleep_until(deadline)
            self.core.tick()
            self._process()

    def _process(self) -> None:
        core = self.core
        while ready := core.ready():
            try:
                self.store.write(ready)
            except Exception:
                # Nothing of this Ready may leave: a vote or an acknowledgement
                # for state that is not on disk would break the protocol's
                # safety. A node whose disk fails stops here.
                log.critical("raft node %d: persisting failed; stopping", self.node_id, exc_info=True)
                raise
            if ready.snapshot is not None:
                self.state_machine.restore(ready.snapshot.data)
            core.persisted(ready)
            for message in ready.messages:
                self._route(message)
            if ready.committed:
                entries = [e for e in ready.committed if not e.control]
                if entries:
                    self.state_machine.apply(entries)
            if ready.committed or ready.snapshot is not None:
                self._settle_proposals()
                self._maybe_snapshot()
        self._fail_orphaned_proposals()
        self._changed.set()
        self._changed = trio.Event()

    def _maybe_snapshot(self) -> None:
        core = self.core
        end = core.applied_offset
        if end - core.log_start_offset < self.snapshot_interval_entries:
            return
        epoch = core.entry_epoch(end - 1)
        assert epoch is not None
        snapshot = Snapshot(SnapshotId(end, epoch), self.state_machine.snapshot())
        self.store.save_snapshot(snapshot)
        core.take_snapshot(snapshot)

    # -- proposals -----------------------------------------------------------------

    async def propose(self, datas: Sequence[bytes]) -> int:
        """Append ``datas`` through the leader and return the offset of the
        last once it is committed and applied here. NotLeaderError if this
        node does not lead, or stopped leading before the entries committed
        (they may still commit under the next leader, as with Kafka's
        NOT_CONTROLLER)."""
        return await self.committed(self.submit(datas))

    def submit(self, datas: Sequence[bytes]) -> Proposal:
        """``propose`` in two steps: hand ``datas`` to the proposer now (its
        ``done`` is set once they are applied here or have failed, whether
        or not anyone still waits), then ``committed``."""
        if not self.core.is_leader:
            raise NotLeaderError(self.core.leader_id, self.core.epoch)
        proposal = Proposal([bytes(d) for d in datas])
        if not proposal.datas:
            raise ValueError("propose needs at least one entry")
        self._proposals.append(proposal)
        self._proposal_wake.set()
        return proposal

    @staticmethod
    async def committed(proposal: Proposal) -> int:
        """The offset of the proposal's last entry once applied here; its error if it failed."""
        await proposal.done.wait()
        if proposal.error is not None:
            raise proposal.error
        return proposal.offset

    async def _proposer(self) -> None:
        """Gathers the proposals made since the last round into one append:
        one Ready, one fsync, however many callers."""
        while True:
            await self._proposal_wake.wait()
            self._proposal_wake = trio.Event()
            batch, self._proposals = self._proposals, []
            if not batch:
                continue
            try:
                last = self.core.propose([d for p in batch for d in p.datas])
            except NotLeaderError as exc:
                for p in batch:
                    p.error = exc
                    p.done.set()
                continue
            offset = last - sum(len(p.datas) for p in batch)
            for p in batch:
                offset += len(p.datas)
                p.offset, p.epoch = offset, self.core.epoch
            self._waiting.extend(batch)
            self._process()

    def _settle_proposals(self) -> None:
        applied = self.core.applied_offset
        still = []
        for p in self._waiting:
            if p.offset >= applied:
                still.append(p)
                continue
            epoch = self.core.entry_epoch(p.offset)
            if epoch is not None and epoch != p.epoch:
                p.error = NotLeaderError(self.core.leader_id, self.core.epoch)  # replaced by another leader's entry
            p.done.set()
        self._waiting = still

    def _fail_orphaned_proposals(self) -> None:
        if self._waiting and not self.core.is_leader:
            for p in self._waiting:
                p.error = NotLeaderError(self.core.leader_id, self.core.epoch)
                p.done.set()
            self._waiting = []

    async def wait_leading(self) -> None:
        """Until this node leads and has applied everything committed before
        its epoch (its LeaderChange entry is applied): decisions made on the
        state machine from then on see all earlier ones. NotLeaderError if it
        does not lead, or stops leading meanwhile (never wait for a later
        leadership: an operation run then could undo what a client retried
        elsewhere)."""
        epoch = self.core.epoch
        while not (self.core.is_leader and self.core.applied_offset > self.core.leader_epoch_start):
            if not self.core.is_leader or self.core.epoch != epoch:
                raise NotLeaderError(self.core.leader_id, self.core.epoch)  # lost it, or never had it
            await self._changed.wait()

    async def wait_changed(self) -> None:
        """Until the next round of work on the core (a tick, a message, a proposal)."""
        await self._changed.wait()

    async def wait_applied(self, offset: int) -> None:
        """Until every entry below ``offset`` is applied here."""
        while self.core.applied_offset < offset:
            await self._changed.wait()

    def resign(self) -> None:
        self.core.resign()
        self._process()

    # -- messages --------------------------------------------------------------------

    def _route(self, message: Message) -> None:
        if isinstance(message, REQUESTS):
            lane = "fetch" if isinstance(message, (FetchRequest, FetchSnapshotRequest)) else "elect"
            queue = self._queues.get((message.dst, lane))
            if queue is None:
                log.warning("raft node %d: no address for node %d", self.node_id, message.dst)
                return
            try:
                queue[0].send_nowait(message)
            except trio.WouldBlock:
                pass  # a lost message, as far as the protocol knows
            return
        slot = self._inbound.pop((message.dst, message.correlation), None)
        if slot is not None:
            slot[1] = message
            slot[0].set()

    async def _sender(self, peer: int, lane: str, receive: trio.MemoryReceiveChannel) -> None:
        host, port = self.peers[peer]
        link = PeerLink(host, port, f"raft-{self.node_id}", max_idle_ms=self.connections_max_idle_ms)
        timeout_s = self.config.request_timeout_ms / 1000
        async for message in receive:
            api_key, version, body = wire.request_to_wire(message, self.cluster_id, tick_ms=self.config.tick_ms)
            try:
                answer = await link.request(api_key, version, body, timeout_s)
                response = wire.response_from_wire(
                    api_key, version, answer, peer, self.node_id, message.correlation,
                    pre_vote=isinstance(message, VoteRequest) and message.pre_vote,
                )  # fmt: skip
            except (ConnectionError, ValueError) as exc:
                log.debug("raft node %d -> %d: %s", self.node_id, peer, exc)
                self.core.peer_unreachable(peer)
                self._process()
                await trio.sleep(min(0.05, self.config.tick_ms / 1000))  # a dead peer must not spin us
                continue
            self.core.step(response)
            self._process()

    async def _serve_peer(self, stream: trio.SocketStream) -> None:
        if self._peer_connections >= MAX_PEER_CONNECTIONS:
            log.warning("raft node %d: %d controller-listener connections open: refusing another",
                        self.node_id, MAX_PEER_CONNECTIONS)  # fmt: skip
            await stream.aclose()
            return
        self._peer_connections += 1
        try:
            await Connection(self._listener, stream, peer_name(stream)).run()
        finally:
            self._peer_connections -= 1

    async def _handle_request(self, header: RequestHeader, body: dict) -> dict | None:
        self._inbound_seq += 1
        correlation = self._inbound_seq
        message, cluster_id = wire.request_from_wire(header.api_key, header.api_version, body, -1, self.node_id,
                                                     correlation, tick_ms=self.config.tick_ms)  # fmt: skip
        if cluster_id is not None and cluster_id != self.cluster_id:
            log.warning("raft node %d: a request from node %d of cluster %r (ours: %r)", self.node_id,
                        message.src, cluster_id, self.cluster_id)  # fmt: skip
            return None  # closes the connection: a member of another cluster must not take part
        slot = [trio.Event(), None]
        self._inbound[(message.src, correlation)] = slot
        try:
            self.core.step(message)
            self._process()
            with trio.move_on_after(self.config.request_timeout_ms / 1000):
                await slot[0].wait()
        finally:
            self._inbound.pop((message.src, correlation), None)
        if slot[1] is None:
            return None
        return wire.response_to_wire(slot[1], header.api_version)

    # -- reading -----------------------------------------------------------------------

    def describe(self) -> dict:
        """What DescribeQuorum reports: leader, epoch, high watermark, and the
        replicas' end offsets as the leader sees them."""
        core = self.core
        return {
            "node_id": self.node_id, "role": core.role.value, "leader_id": core.leader_id, "epoch": core.epoch,
            "high_watermark": core.high_watermark, "log_end_offset": core.log_end_offset,
            "replicas": core.replica_states(),
        }  # fmt: skip
