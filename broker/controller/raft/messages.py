"""The quorum's messages and the values the core hands to its driver.

Each message mirrors one of Kafka's KRaft RPCs (KIP-595), reduced
to the fields the protocol needs; ``broker/controller/wire.py`` maps them
to and from the real request and response schemas. ``src`` and ``dst`` are
node ids; ``correlation`` pairs a response with the request it answers
(Kafka's correlation id): the core numbers its requests, a response echoes
the number, and a late answer to an abandoned request is recognised and
dropped. The driver keeps the wire's own correlation ids apart from these.

Offsets are Kafka's: an entry's offset is its position in the log, an *end
offset* is the offset the next entry would get. A log position is named by
``(epoch, end_offset)`` pairs, as KRaft's Vote and Fetch do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# -- log contents ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One record of the replicated log. ``control`` entries are the
    LeaderChange record a leader writes at the start of its epoch: they
    take an offset and commit like any other but are not handed to the
    state machine."""

    offset: int
    epoch: int
    data: bytes
    control: bool = False


@dataclass(frozen=True, slots=True)
class SnapshotId:
    """A snapshot holds the state of every entry below ``end_offset``;
    ``epoch`` is the epoch of the last entry it includes (KIP-630)."""

    end_offset: int
    epoch: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    id: SnapshotId
    data: bytes


@dataclass(frozen=True, slots=True)
class HardState:
    """What a voter must have on disk before it answers or acts (Kafka's
    quorum-state file): its epoch, whom it voted for in that epoch (-1:
    nobody) and the leader it knows for that epoch (-1: none)."""

    epoch: int = 0
    voted_for: int = -1
    leader_id: int = -1


# -- messages --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    src: int
    dst: int
    correlation: int


@dataclass(frozen=True, slots=True)
class VoteRequest(Message):
    """Vote: the candidate's epoch and last log position. ``pre_vote``
    (KIP-996) asks whether the voter *would* vote at ``epoch`` without
    anyone changing state; ``epoch`` is then the candidate's epoch + 1."""

    epoch: int
    last_epoch: int
    last_end_offset: int
    pre_vote: bool = False


@dataclass(frozen=True, slots=True)
class VoteResponse(Message):
    """``epoch``/``leader_id``: the responder's view, so a stale candidate
    learns the newer epoch and its leader (-1: unknown)."""

    epoch: int
    leader_id: int
    granted: bool
    pre_vote: bool = False
    error: int = 0


@dataclass(frozen=True, slots=True)
class BeginQuorumEpochRequest(Message):
    """A new leader announces itself so the voters stop waiting (they would
    find it through their next Fetch otherwise)."""

    epoch: int


@dataclass(frozen=True, slots=True)
class BeginQuorumEpochResponse(Message):
    epoch: int
    leader_id: int
    error: int = 0


@dataclass(frozen=True, slots=True)
class EndQuorumEpochRequest(Message):
    """A leader resigning gracefully; ``preferred_successors`` are ranked by
    log progress, and a voter campaigns after a backoff that grows with its
    rank, so the best placed one goes first."""

    epoch: int
    preferred_successors: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class EndQuorumEpochResponse(Message):
    epoch: int
    leader_id: int
    error: int = 0


@dataclass(frozen=True, slots=True)
class FetchRequest(Message):
    """Pull replication. ``epoch`` is the fetcher's view of the leader epoch
    (current_leader_epoch); ``(last_fetched_epoch, fetch_offset)`` is the
    position the leader checks against its own log. The answer doubles as
    the leader's proof of life and the fetch as the fetcher's."""

    epoch: int
    fetch_offset: int
    last_fetched_epoch: int
    max_wait_ticks: int = 0


@dataclass(frozen=True, slots=True)
class FetchResponse(Message):
    """One of: ``entries`` from the fetch offset on (maybe none), a
    ``diverging`` (epoch, end offset) to truncate to, or a ``snapshot_id``
    to download because the fetch offset is below the leader's log start.
    ``error`` is a Kafka code (FENCED_LEADER_EPOCH, NOT_LEADER_OR_FOLLOWER,
    UNKNOWN_LEADER_EPOCH) with the responder's epoch and known leader."""

    epoch: int
    leader_id: int
    error: int = 0
    high_watermark: int = -1
    log_start_offset: int = 0
    entries: tuple[Entry, ...] = ()
    diverging: tuple[int, int] | None = None
    snapshot_id: SnapshotId | None = None


@dataclass(frozen=True, slots=True)
class FetchSnapshotRequest(Message):
    epoch: int
    snapshot_id: SnapshotId
    position: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class FetchSnapshotResponse(Message):
    """``chunk`` of the snapshot from ``position``; ``size`` its whole length.
    Errors: SNAPSHOT_NOT_FOUND, POSITION_OUT_OF_RANGE, or an epoch error."""

    epoch: int
    leader_id: int
    snapshot_id: SnapshotId
    error: int = 0
    size: int = 0
    position: int = 0
    chunk: bytes = b""


REQUESTS = (VoteRequest, BeginQuorumEpochRequest, EndQuorumEpochRequest, FetchRequest, FetchSnapshotRequest)


# -- what the core hands to its driver -------------------------------------------


@dataclass(slots=True)
class Ready:
    """Everything the driver must do, in this order:

    1. if ``snapshot`` is set: store it durably (it replaces the whole log,
       which starts again, empty, at its end offset) and restore the state
       machine from it;
    2. if ``truncate_to`` is set: cut the log to end before that offset;
    3. append ``entries`` (contiguous, starting at the log's end);
    4. if ``hard_state`` is set: write it atomically;
    5. fsync all of it, then call ``core.persisted(ready)``;
    6. only then send ``messages``, and hand ``committed`` to the state
       machine (entries below the high watermark, in order, at most once).

    Sending before step 5 would let a vote or an acknowledgement out for
    state that a crash could still take back.
    """

    hard_state: HardState | None = None
    snapshot: Snapshot | None = None
    truncate_to: int | None = None
    entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    committed: list[Entry] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.hard_state is not None or self.snapshot is not None or self.truncate_to is not None
            or self.entries or self.messages or self.committed
        )  # fmt: skip
