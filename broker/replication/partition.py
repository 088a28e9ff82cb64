"""Partition: the pure state of one replica of a partition, and Kafka's
rules for it (Kafka's Partition and Replica classes; KIP-497, KIP-841,
KIP-966, KIP-320). No Trio, no files, no clock: the caller passes the time
in ms and applies what the answers say (append, send AlterPartition,
complete parked requests when the high watermark moved).

State: the role (leader or follower of ``leader``), the leader epoch (bumped
by every election), the partition epoch (bumped by every change of the
partition's state, ISR changes included), the replicas, the ISR as committed
by the controller, at most one proposed ISR change in flight, and on the
leader each follower's fetch state (log end offset, last caught-up time,
broker epoch).

The rules:

- **Metadata** (``become_leader`` / ``become_follower``): a state with an
  older partition epoch than ours is stale and ignored; one we already hold
  changes nothing (so it does not drop an AlterPartition in flight); a newer
  one replaces the committed ISR and drops any proposal. A new leader
  epoch's start offset is the leader's log end offset then; the followers'
  fetch state restarts (log end offsets unknown; ISR members count as caught
  up now, others never).
- **High watermark** (leader): the smallest log end offset over the leader
  and the followers in the *maximal ISR* (committed ISR plus a proposed
  addition; a proposed removal still counts until committed, KIP-497), and
  over followers caught up and eligible to join, so that one catching up is
  not outrun for ever. It only moves forward (within and across epochs on
  this leader), never past the leader's log end offset, and not at all while
  the committed ISR is smaller than ``min.insync.replicas`` (KIP-966: a
  record below the HW is then on at least that many replicas). A follower
  takes ``min(leader's HW, own log end offset)``.
- **Caught up** (Kafka's Replica.isCaughtUp): a follower whose last fetch
  reached the leader's log end offset, or did so within
  ``replica.lag.time.max.ms`` (default 30000). A fetch at offset X reaching
  the leader's log end offset as of the previous fetch counts as caught up
  at the time of the previous fetch, so a follower of a busy leader is not
  dropped for never hitting a moving end.
- **Shrink** (``maybe_shrink_isr``, called periodically): ISR followers not
  caught up are proposed out. Kafka shrinks whatever ``min.insync.replicas``
  says; acks=all then answers NOT_ENOUGH_REPLICAS.
- **Expand** (on a follower's fetch): a follower not in the ISR whose log end
  offset reached the HW and the current leader epoch's start offset
  (otherwise it could lead without records committed in this epoch), and
  that is unfenced, not in controlled shutdown, and fetching with the broker
  epoch the metadata has for it (KIP-841), is proposed in.
- **AlterPartition**: one proposal in flight; no shrink or expand while one
  is. The answer to anything but the proposal in flight is stale and
  ignored. Success: adopted unless its leader epoch is not ours or its
  partition epoch is older. OPERATION_NOT_ATTEMPTED and INELIGIBLE_REPLICA
  say it was not applied: back to the committed ISR. FENCED_LEADER_EPOCH,
  INVALID_UPDATE_VERSION, NEW_LEADER_ELECTED, UNKNOWN_TOPIC_OR_PARTITION,
  UNKNOWN_TOPIC_ID and INVALID_REQUEST mean our state is old: stay pending
  until metadata replaces it. Any other error: send it again.
- **Produce**: acks=all is refused with NOT_ENOUGH_REPLICAS before the
  append while the committed ISR is smaller than ``min.insync.replicas``
  (capped at the number of replicas, as Kafka's effective min ISR); it
  completes when the HW passes the batch's last offset, with
  NOT_ENOUGH_REPLICAS_AFTER_APPEND if the maximal ISR has since become
  smaller than that.
- **Leader epoch in requests** (KIP-320): -1 skips the check; an older epoch
  than ours is FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from riverlog.client.protocol import ErrorCode

REPLICA_LAG_TIME_MAX_MS = 30_000  # Kafka's replica.lag.time.max.ms default
MIN_INSYNC_REPLICAS = 1  # Kafka's min.insync.replicas default
UNKNOWN_OFFSET = -1
NO_LEADER = -1
NO_BROKER_EPOCH = -1  # a fetch or ISR entry that does not name a broker epoch
ACKS_ALL = -1

# AlterPartition answers saying the controller's state is newer than ours:
# wait for the metadata that carries it.
_AWAIT_METADATA = frozenset({
    ErrorCode.FENCED_LEADER_EPOCH, ErrorCode.INVALID_UPDATE_VERSION, ErrorCode.NEW_LEADER_ELECTED,
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.UNKNOWN_TOPIC_ID, ErrorCode.INVALID_REQUEST,
})  # fmt: skip
# ... and saying the proposal was not applied, by this or any controller.
_NOT_APPLIED = frozenset({ErrorCode.OPERATION_NOT_ATTEMPTED, ErrorCode.INELIGIBLE_REPLICA})


class Role(Enum):
    LEADER = "leader"
    FOLLOWER = "follower"


@dataclass(frozen=True)
class BrokerState:
    """What the metadata says of a broker, for ISR eligibility (KIP-841)."""

    epoch: int
    fenced: bool = False
    in_controlled_shutdown: bool = False


@dataclass(frozen=True)
class PartitionState:
    """A partition's state as the controller committed it (PartitionRecord and its changes)."""

    leader: int
    leader_epoch: int
    partition_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass
class FollowerState:
    """The leader's view of one follower, from its fetches."""

    log_end_offset: int = UNKNOWN_OFFSET
    last_fetch_ms: int = 0
    last_fetch_leader_end_offset: int = UNKNOWN_OFFSET  # the leader's log end offset at that fetch
    last_caught_up_ms: int = 0
    broker_epoch: int | None = None  # None: no fetch seen in this leadership

    def caught_up(self, leader_end_offset: int, now_ms: int, max_lag_ms: int) -> bool:
        return self.log_end_offset == leader_end_offset or now_ms - self.last_caught_up_ms <= max_lag_ms


@dataclass(frozen=True)
class AlterPartitionRequest:
    """The leader's proposal: the ISR it wants, at the epochs it knows."""

    leader_id: int
    leader_epoch: int
    partition_epoch: int
    new_isr: tuple[tuple[int, int], ...]  # (broker id, broker epoch or -1), by broker id

    @property
    def isr(self) -> tuple[int, ...]:
        return tuple(broker for broker, _ in self.new_isr)


@dataclass(frozen=True)
class PendingIsrChange:
    request: AlterPartitionRequest
    added: frozenset[int] = frozenset()  # counted in the maximal ISR at once
    removed: frozenset[int] = frozenset()  # still counted until committed


@dataclass(frozen=True)
class FetchUpdate:
    """What a follower's fetch did on the leader."""

    error: ErrorCode = ErrorCode.NONE
    high_watermark_advanced: bool = False
    alter_partition: AlterPartitionRequest | None = None  # an expansion to send


@dataclass(frozen=True)
class AlterOutcome:
    high_watermark_advanced: bool = False
    resend: AlterPartitionRequest | None = None


@dataclass
class Partition:
    broker_id: int
    brokers: Callable[[int], BrokerState | None]  # the metadata's view of each broker
    replica_lag_time_max_ms: int = REPLICA_LAG_TIME_MAX_MS
    min_insync_replicas: int = MIN_INSYNC_REPLICAS
    log_end_offset: int = 0
    high_watermark: int = 0
    role: Role = Role.FOLLOWER
    leader: int = NO_LEADER
    leader_epoch: int = -1
    partition_epoch: int = -1
    leader_epoch_start_offset: int | None = None  # set on the leader only
    replicas: tuple[int, ...] = ()
    isr: frozenset[int] = frozenset()  # committed; empty on a follower, as in Kafka
    pending: PendingIsrChange | None = None
    followers: dict[int, FollowerState] = field(default_factory=dict)

    # -- reading -------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    @property
    def maximal_isr(self) -> frozenset[int]:
        return self.isr | self.pending.added if self.pending else self.isr

    @property
    def effective_min_insync_replicas(self) -> int:
        return min(self.min_insync_replicas, len(self.replicas))

    @property
    def under_min_isr(self) -> bool:
        return self.is_leader and len(self.isr) < self.effective_min_insync_replicas

    def check_leader_epoch(self, current_leader_epoch: int) -> ErrorCode:
        """KIP-320's fencing of a request's current_leader_epoch (-1: not given)."""
        if current_leader_epoch == -1 or current_leader_epoch == self.leader_epoch:
            return ErrorCode.NONE
        if current_leader_epoch < self.leader_epoch:
            return ErrorCode.FENCED_LEADER_EPOCH
        return ErrorCode.UNKNOWN_LEADER_EPOCH

    # -- metadata --------------------------------------------------------------------

    def _ignored(self, state: PartitionState, as_leader: bool) -> bool:
        """Stale, or what we already hold."""
        if state.partition_epoch < self.partition_epoch:
            return True
        same = state.partition_epoch == self.partition_epoch and state.leader_epoch == self.leader_epoch
        return same and self.is_leader == as_leader

    def become_leader(self, state: PartitionState, now_ms: int) -> bool:
        """Apply a state naming this broker leader; True when it starts a new
        leader epoch (the caller records (epoch, ``leader_epoch_start_offset``)
        in the epoch cache and stamps the epoch into new batches)."""
        if state.leader != self.broker_id:
            raise ValueError(f"state names {state.leader} leader, not {self.broker_id}")
        if self._ignored(state, as_leader=True):
            return False
        new_leader = not self.is_leader
        new_epoch = state.leader_epoch > self.leader_epoch
        self.role, self.leader = Role.LEADER, self.broker_id
        self.replicas, self.isr, self.pending = state.replicas, frozenset(state.isr), None
        self.followers = {r: self.followers.get(r, FollowerState()) for r in state.replicas if r != self.broker_id}
        if new_epoch:
            self.leader_epoch_start_offset = self.log_end_offset
            for replica, f in self.followers.items():
                in_sync = replica in self.isr
                f.last_caught_up_ms = now_ms if in_sync else 0
                f.last_fetch_ms = now_ms if in_sync and not new_leader else 0
                f.last_fetch_leader_end_offset = UNKNOWN_OFFSET if new_leader else self.log_end_offset
                if new_leader:  # what it told an earlier leadership of ours says nothing now
                    f.log_end_offset, f.broker_epoch = UNKNOWN_OFFSET, None
            self.leader_epoch = state.leader_epoch
        self.partition_epoch = state.partition_epoch
        self._maybe_advance_high_watermark(now_ms)
        return new_epoch

    def become_follower(self, state: PartitionState) -> bool:
        """Apply a state naming another broker leader (or none); True when the
        leader epoch is new (the caller restarts fetching: truncation first)."""
        if state.leader == self.broker_id:
            raise ValueError("a state naming this broker leader goes to become_leader")
        if self._ignored(state, as_leader=False):
            return False
        new_epoch = state.leader_epoch > self.leader_epoch
        self.role, self.leader, self.leader_epoch = Role.FOLLOWER, state.leader, state.leader_epoch
        self.partition_epoch, self.replicas = state.partition_epoch, state.replicas
        self.isr, self.pending, self.followers, self.leader_epoch_start_offset = frozenset(), None, {}, None
        return new_epoch

    # -- leader: produce ---------------------------------------------------------------

    def append_error(self, acks: int) -> ErrorCode:
        """Whether a produce may be appended here at all."""
        if not self.is_leader:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        if acks == ACKS_ALL and len(self.isr) < self.effective_min_insync_replicas:
            return ErrorCode.NOT_ENOUGH_REPLICAS
        return ErrorCode.NONE

    def appended_as_leader(self, log_end_offset: int, now_ms: int) -> bool:
        """The leader's log now ends at ``log_end_offset``; True if the HW moved."""
        if not self.is_leader:
            raise ValueError("appended_as_leader on a follower")
        if log_end_offset < self.log_end_offset:
            raise ValueError(f"a leader's log end offset went back: {self.log_end_offset} -> {log_end_offset}")
        self.log_end_offset = log_end_offset
        return self._maybe_advance_high_watermark(now_ms)

    def acks_all_result(self, last_offset: int) -> ErrorCode | None:
        """An acks=all produce whose batch ends at ``last_offset``: None while it
        waits for the HW, else the code to answer with."""
        if not self.is_leader:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        if self.high_watermark <= last_offset:
            return None
        if len(self.maximal_isr) < self.effective_min_insync_replicas:
            return ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
        return ErrorCode.NONE

    # -- leader: follower fetches, the HW and the ISR ------------------------------

    def update_follower_fetch(
        self, replica_id: int, fetch_offset: int, now_ms: int, broker_epoch: int = NO_BROKER_EPOCH
    ) -> FetchUpdate:
        """A follower fetched from ``fetch_offset`` (so its log ends there).
        Call it only for a fetch that did not diverge (truncation.diverging_epoch)."""
        if not self.is_leader:
            return FetchUpdate(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        f = self.followers.get(replica_id)
        if f is None:  # not a replica in our state (yet): it retries (Kafka's answer since KRaft)
            return FetchUpdate(ErrorCode.UNKNOWN_LEADER_EPOCH)
        known = self.brokers(replica_id)
        if broker_epoch != NO_BROKER_EPOCH and known is not None and known.epoch > broker_epoch:
            return FetchUpdate(ErrorCode.NOT_LEADER_OR_FOLLOWER)  # a fetch from a zombie incarnation
        if fetch_offset > self.log_end_offset:
            return FetchUpdate(ErrorCode.OFFSET_OUT_OF_RANGE)
        before = f.log_end_offset
        if fetch_offset >= self.log_end_offset:
            f.last_caught_up_ms = max(f.last_caught_up_ms, now_ms)
        elif fetch_offset >= f.last_fetch_leader_end_offset:
            f.last_caught_up_ms = max(f.last_caught_up_ms, f.last_fetch_ms)
        f.log_end_offset, f.last_fetch_ms, f.broker_epoch = fetch_offset, now_ms, broker_epoch
        f.last_fetch_leader_end_offset = max(self.log_end_offset, f.last_fetch_leader_end_offset)
        alter = self._maybe_expand_isr(replica_id, f)
        advanced = f.log_end_offset != before and self._maybe_advance_high_watermark(now_ms)
        return FetchUpdate(ErrorCode.NONE, advanced, alter)

    def _isr_eligible(self, replica_id: int, f: FollowerState) -> bool:
        known = self.brokers(replica_id)
        return (
            known is not None
            and not known.fenced
            and not known.in_controlled_shutdown
            and f.broker_epoch is not None
            and f.broker_epoch in (NO_BROKER_EPOCH, known.epoch)
        )

    def _maybe_advance_high_watermark(self, now_ms: int) -> bool:
        if not self.is_leader or self.under_min_isr:
            return False
        high_watermark, maximal = self.log_end_offset, self.maximal_isr
        for replica, f in self.followers.items():
            if f.log_end_offset < high_watermark and (
                replica in maximal
                or (
                    f.caught_up(self.log_end_offset, now_ms, self.replica_lag_time_max_ms)
                    and self._isr_eligible(replica, f)
                )
            ):
                high_watermark = f.log_end_offset
        if high_watermark <= self.high_watermark:
            return False
        self.high_watermark = high_watermark
        return True

    def _maybe_expand_isr(self, replica_id: int, f: FollowerState) -> AlterPartitionRequest | None:
        if self.pending or replica_id in self.isr or not self._isr_eligible(replica_id, f):
            return None
        assert self.leader_epoch_start_offset is not None
        if f.log_end_offset < self.high_watermark or f.log_end_offset < self.leader_epoch_start_offset:
            return None
        return self._propose(self.isr | {replica_id}, added=frozenset({replica_id}))

    def maybe_shrink_isr(self, now_ms: int) -> AlterPartitionRequest | None:
        """Propose out the ISR followers that are not caught up (Kafka runs
        this every replica.lag.time.max.ms / 2)."""
        if not self.is_leader or self.pending:
            return None
        out = frozenset(
            r
            for r in self.isr - {self.broker_id}
            if r not in self.followers
            or not self.followers[r].caught_up(self.log_end_offset, now_ms, self.replica_lag_time_max_ms)
        )
        return self._propose(self.isr - out, removed=out) if out else None

    def _propose(self, isr: frozenset[int], **change: frozenset[int]) -> AlterPartitionRequest:
        def epoch_of(broker: int) -> int:
            if broker == self.broker_id:
                own = self.brokers(broker)
                return own.epoch if own else NO_BROKER_EPOCH
            f = self.followers.get(broker)
            return f.broker_epoch if f and f.broker_epoch is not None else NO_BROKER_EPOCH

        request = AlterPartitionRequest(
            self.broker_id, self.leader_epoch, self.partition_epoch, tuple((b, epoch_of(b)) for b in sorted(isr))
        )
        self.pending = PendingIsrChange(request, **change)
        return request

    def on_alter_partition_response(
        self,
        request: AlterPartitionRequest,
        error: ErrorCode,
        committed: PartitionState | None,
        now_ms: int,
    ) -> AlterOutcome:
        """The controller's answer to ``request``: ``committed`` is the state it
        returned on success."""
        if self.pending is None or self.pending.request != request:
            return AlterOutcome()  # our state moved on (metadata, or an election) since we sent it
        if error == ErrorCode.NONE:
            if committed is None:
                raise ValueError("a successful AlterPartition answer carries the committed state")
            if committed.leader_epoch != self.leader_epoch or committed.partition_epoch < self.partition_epoch:
                return AlterOutcome()  # stays pending until metadata settles it
            self.isr, self.partition_epoch, self.pending = frozenset(committed.isr), committed.partition_epoch, None
            return AlterOutcome(self._maybe_advance_high_watermark(now_ms))
        if error in _NOT_APPLIED:
            self.pending = None
            return AlterOutcome()
        if error in _AWAIT_METADATA:
            return AlterOutcome()
        return AlterOutcome(resend=request)

    # -- follower ------------------------------------------------------------------------

    def appended_as_follower(self, log_end_offset: int, leader_high_watermark: int) -> None:
        """Batches copied from the leader; its fetch answer carried its HW."""
        if self.is_leader:
            raise ValueError("appended_as_follower on the leader")
        self.log_end_offset = log_end_offset
        self.high_watermark = min(leader_high_watermark, log_end_offset)

    def truncated(self, offset: int) -> None:
        """The follower's log (and epoch cache) now ends at ``offset`` (truncation.py)."""
        if self.is_leader:
            raise ValueError("a leader never truncates")
        self.log_end_offset = offset
        self.high_watermark = min(self.high_watermark, offset)
