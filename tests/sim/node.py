"""One simulated node: a RaftCore driven the way the real driver must.

After every tick, step or proposal the node takes ``ready()``, persists it
on its SimDisk (Ready steps 1-5), calls ``persisted``, hands ``committed``
to its state machine, and only then puts the messages on the network. A
crash armed by the nemesis strikes in the middle of the next Ready: a
prefix of its writes is durable, nothing else of it happens. A restart
builds a new core from what the disk kept.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from riverlog.broker.controller.raft.core import RaftConfig, RaftCore, Role
from riverlog.broker.controller.raft.messages import Entry, Message, Ready, Snapshot, VoteResponse

from tests.sim.disk import SimDisk
from tests.sim.state_machine import StateMachine

if TYPE_CHECKING:
    from tests.sim.cluster import Simulation

MAX_READY_ROUNDS = 100  # a core that keeps producing Readys without input is stuck in a loop


class SimNode:
    def __init__(self, sim: Simulation, config: RaftConfig, snapshot_every: int) -> None:
        self.sim = sim
        self.id = config.node_id
        self.config = config
        self.voter = config.node_id in config.voters
        self.snapshot_every = snapshot_every
        self.disk = SimDisk()
        self.core: RaftCore | None = None
        self.sm: StateMachine = sim.restore_machine(config.node_id, None)
        self.incarnation = 0
        self.crash_armed = False
        self.paused_until_ms = 0  # a stalled process (a long GC pause, a frozen VM): no ticks, no input
        self.crashes = 0
        self._role: Role | None = None

    @property
    def up(self) -> bool:
        return self.core is not None

    def describe(self) -> str:
        core = self.core
        if core is None:
            return "DOWN"
        return f"{core.role.name}/{core.epoch}"

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        assert self.core is None
        self.incarnation += 1
        rng = random.Random(self.sim.seed * 1_000_003 + self.id * 1009 + self.incarnation)
        disk = self.disk
        self.core = RaftCore(self.config, rng, disk.hard_state, disk.snapshot, list(disk.entries))
        self.sm = self.sim.restore_machine(self.id, disk.snapshot)
        self._role = None
        self.sim.checker.restarted(self.id, self.core.epoch, self.core.high_watermark)
        if disk.snapshot is not None:
            self.sim.checker.committed_entries(self.id, snapshot_entries(disk.snapshot, self.sm),
                                              "in its snapshot at restart", known_only=True)
        self.sim.node_started(self)
        self.sim.trace(self, f"start (incarnation {self.incarnation}) from disk: {disk.hard_state}, "
                       f"snapshot {disk.snapshot and disk.snapshot.id}, log [{disk.log_start_offset}, "
                       f"{disk.log_end_offset})")
        self.drive()

    def crash(self, why: str) -> None:
        assert self.core is not None
        self.core = None
        self.crash_armed = False
        self.crashes += 1
        self.sim.trace(self, f"CRASH ({why}); disk keeps {self.disk.hard_state}, log [{self.disk.log_start_offset}, "
                       f"{self.disk.log_end_offset})")
        self.sim.node_crashed(self)

    # -- inputs --------------------------------------------------------------------

    def tick(self) -> None:
        if self.core is not None:
            self.core.tick()
            self.drive()

    def step(self, message: Message) -> None:
        if self.core is not None:
            self.core.step(message)
            self.drive()

    def propose(self, datas: list[bytes]) -> int:
        assert self.core is not None
        offset = self.core.propose(datas)
        self.drive()
        return offset

    def peer_unreachable(self, peer: int) -> None:
        if self.core is not None:
            self.core.peer_unreachable(peer)
            self.drive()

    def resign(self) -> None:
        if self.core is not None:
            self.core.resign()
            self.drive()

    # -- the driver loop -------------------------------------------------------------

    def drive(self) -> None:
        for _ in range(MAX_READY_ROUNDS):
            core = self.core
            if core is None:
                return
            ready = core.ready()
            if not ready:
                self.observe()
                return
            self.handle(ready)
        self.sim.checker.fail("the core settles", f"node {self.id} produced {MAX_READY_ROUNDS} Readys in a row")

    def handle(self, ready: Ready) -> None:
        core, sim, checker = self.core, self.sim, self.sim.checker
        assert core is not None
        writes = self.disk.writes(ready)
        if ready.truncate_to is not None:
            checker.truncated(self.id, ready.truncate_to)
        if self.crash_armed:
            kept = sim.rng.randint(0, len(writes))
            self.disk.apply(writes[:kept])
            if ready.hard_state is not None and kept == len(writes):
                checker.hard_state_written(self.id, ready.hard_state)
            self.crash(f"in the middle of a Ready: {kept} of {len(writes)} writes durable")
            return
        if ready.hard_state is not None:
            checker.hard_state_written(self.id, ready.hard_state)
        self.disk.apply(writes)
        core.persisted(ready)
        if sim.tracing and (writes or ready.committed):
            sim.trace(self, describe_ready(ready))
        # step 6: apply, then send
        if ready.snapshot is not None:
            self.sm = sim.restore_machine(self.id, ready.snapshot)
            checker.committed_entries(self.id, snapshot_entries(ready.snapshot, self.sm), "in an installed snapshot",
                                      known_only=True)
        for entry in ready.committed:
            if entry.offset >= core.high_watermark:
                checker.fail("only entries below the high watermark are committed",
                             f"node {self.id} handed out offset {entry.offset}, high watermark {core.high_watermark}")
            checker.committed(self.id, entry.offset, entry.epoch, entry.data, entry.control, "applied")
            if entry.offset != self.sm.applied_end_offset:
                checker.fail("committed entries are applied in order, at most once",
                             f"node {self.id} got offset {entry.offset}, expected {self.sm.applied_end_offset}")
            self.sm.apply(entry)
        if ready.snapshot is not None or ready.committed:
            sim.node_applied(self)
        if (self.sm.since_snapshot >= self.snapshot_every
                and self.sm.applied_end_offset > self.disk.log_start_offset):
            snapshot = self.sm.snapshot()
            self.disk.store_snapshot(snapshot)
            core.take_snapshot(snapshot)
            sim.trace(self, f"snapshot taken at {snapshot.id}")
        for message in ready.messages:
            if isinstance(message, VoteResponse) and message.granted and not message.pre_vote:
                checker.vote_sent(self.id, message.dst, message.epoch, self.disk.hard_state)
            sim.send(self, message)

    def observe(self) -> None:
        """After the node has settled: leadership, monotonic epoch and high
        watermark, newly committed entries, and client acknowledgements."""
        core, checker = self.core, self.sim.checker
        assert core is not None
        role = core.role
        if role is Role.LEADER:
            checker.leader_seen(self.id, core.epoch)
        if role is not self._role:
            self.sim.trace(self, f"role -> {role.name} (epoch {core.epoch}, leader {core.leader_id})")
            self._role = role
        hw = core.high_watermark
        last_hw = checker.progress(self.id, core.epoch, hw)
        if hw > last_hw:
            start = max(last_hw, core.log_start_offset)
            if start < hw:
                checker.committed_entries(self.id, core.entries_from(start)[: hw - start], "below high watermark")
        self.sim.node_settled(self)

    def full_check(self) -> None:
        """The whole log below the high watermark and the state machine
        against the history, and the disk against the core's log."""
        core, checker = self.core, self.sim.checker
        assert core is not None
        start, hw = core.log_start_offset, core.high_watermark
        entries = core.entries_from(start)
        checker.committed_entries(self.id, entries[: max(0, hw - start)], "below high watermark (full check)")
        checker.applied_is_prefix(self.id, self.sm.applied, self.sm.applied_end_offset)
        disk = self.disk
        if [e for e in disk.entries if e.offset >= start] != [e for e in entries if e.offset >= disk.log_start_offset]:
            checker.fail("the disk holds the core's log",
                         f"node {self.id}: disk log [{disk.log_start_offset}, {disk.log_end_offset}), "
                         f"core log [{start}, {core.log_end_offset})")


def snapshot_entries(snapshot: Snapshot, machine: StateMachine) -> list[Entry]:
    """The payloads a snapshot says were applied (the machine's kind knows its encoding)."""
    return [Entry(offset, epoch, data) for offset, epoch, data in machine.applied_in(snapshot.data)]


def describe_ready(ready: Ready) -> str:
    parts = []
    if ready.snapshot is not None:
        parts.append(f"install snapshot {ready.snapshot.id}")
    if ready.truncate_to is not None:
        parts.append(f"truncate to {ready.truncate_to}")
    if ready.entries:
        parts.append(f"append [{ready.entries[0].offset}..{ready.entries[-1].offset}] "
                     f"epoch {ready.entries[-1].epoch}")
    if ready.hard_state is not None:
        hs = ready.hard_state
        parts.append(f"hard state epoch {hs.epoch} voted {hs.voted_for} leader {hs.leader_id}")
    if ready.committed:
        parts.append(f"apply [{ready.committed[0].offset}..{ready.committed[-1].offset}]")
    return "persist: " + ", ".join(parts)
