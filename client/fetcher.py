"""The consumer's fetch machinery: partition positions, prefetching, decoding.

`Fetcher` keeps, per assigned partition, a `PartitionState` (the position,
pause, a sticky error) and runs one dispatcher task in the client's nursery.
The dispatcher groups the fetchable partitions by leader and keeps one full
Fetch (no session: session_id 0, epoch -1) in flight per node while the
application works through what `drain` returned: the next Fetch asks from
where the buffered data ends, not from the application's position, so
fetching and decoding overlap. The buffer is bounded: a node's next Fetch
waits while two of its responses are undelivered, so at most two responses'
worth (2 x fetch_max_bytes) per node is held.

Buffered data is only delivered while its partition's position still equals
the offset the data continues from: a seek, assign or reset between fetch
and delivery silently invalidates it (Kafka's rule).

Error policy (Kafka's where it has one):

- leader and connection trouble (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE,
  FENCED/UNKNOWN_LEADER_EPOCH, any retriable code, KafkaConnectionError,
  timeouts): invalidate the metadata, back off, refetch. Never surfaced,
  except when no broker was ever reached: then, after default_api_timeout_ms,
  the partitions get the "no broker reachable" error.
- UNKNOWN_TOPIC_OR_PARTITION: invalidate and refetch; the next plan refreshes
  the topic's metadata, and only if that refresh says the topic (or the
  partition) does not exist does the error become the partition's.
- OFFSET_OUT_OF_RANGE: reset per auto_offset_reset; with "none" the error
  becomes the partition's.
- anything else (and a corrupt batch): the error becomes the partition's.

A partition's error is sticky: the partition is not fetched, and every
`raise_error` (each poll) raises it until a seek or assign clears it. Data
already buffered for other partitions stays buffered.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_left
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice, repeat

import trio

from riverlog.client.cluster import Cluster, TopicInfo
from riverlog.client.config import ConsumerConfig
from riverlog.client.connection import jittered_backoff
from riverlog.client.errors import ClientError, ClosedError, KafkaConnectionError, KafkaTimeoutError, UnsupportedVersionError
from riverlog.client.offsets import list_offsets
from riverlog.client.protocol.api_keys import ApiKey
from riverlog.client.protocol.errors import ErrorCode, KafkaError, OffsetOutOfRangeError, error_for_code
from riverlog.client.records import Compression, CorruptRecordError, RecordBatch, decompress, iter_batches
from riverlog.client.records.layout import ATTR_TIMESTAMP_TYPE, BATCH_HEADER_BYTES, MIN_RECORD_BYTES
from riverlog.client.types import ConsumerRecord, TopicPartition

try:  # the compiled decoder, read without a tuple per record (see _decode_native)
    from riverlog import native
    from riverlog.native._native_api import ffi as _ffi
    from riverlog.native._native_api import lib as _lib
except ImportError:  # pragma: no cover - no extension: RecordBatch.records() does it
    _ffi = _lib = None
_NATIVE = _lib is not None and native.NATIVE
# The records themselves made in C (native/py_records.c), when built.
_consumer_records = getattr(native, "consumer_records", None) if _NATIVE else None

FETCH = ApiKey.FETCH
_CONTROL_KEY = struct.Struct(">hh")  # control record key: version, type
_ABORT_MARKER = 0
# Errors that mean "ask the metadata again, the leader is elsewhere" and are
# retried even if a newer peer marks them otherwise.
_LEADER_ERRORS = frozenset({
    ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.LEADER_NOT_AVAILABLE, ErrorCode.FENCED_LEADER_EPOCH,
    ErrorCode.UNKNOWN_LEADER_EPOCH, ErrorCode.REPLICA_NOT_AVAILABLE, ErrorCode.KAFKA_STORAGE_ERROR,
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
})  # fmt: skip


class NoOffsetForPartitionError(ClientError):
    """A partition has no position and auto_offset_reset is "none"."""


class PartitionState:
    """One assigned partition. ``position`` is the offset of the next record
    to deliver; None means it must be reset (auto_offset_reset)."""

    __slots__ = ("position", "paused", "error", "retry_at", "attempts", "resetting")

    def __init__(self) -> None:
        self.position: int | None = None
        self.paused = False
        self.error: BaseException | None = None  # sticky: raised by poll until seek/assign
        self.retry_at = 0.0  # trio clock: no fetch or reset before this
        self.attempts = 0  # consecutive failures, for the backoff
        self.resetting = False  # a ListOffsets for it is under way


class _ResponseToken:
    """One Fetch response's share of a node's buffer bound: ``live`` counts
    the partitions whose data from it is not yet delivered."""

    __slots__ = ("node", "live")

    def __init__(self, node: int) -> None:
        self.node = node
        self.live = 0


class CompletedFetch:
    """One partition's records from one Fetch response, decoded a batch at a
    time as `take` asks for them. ``next_offset`` is what the partition's
    position becomes once everything taken so far is delivered."""

    __slots__ = ("tp", "state", "next_offset", "end_offset", "_batches", "_index", "_pending", "_pending_left",
                 "_batch_next", "_check_crcs", "_aborted", "_aborted_pids", "_error", "_tokens")  # fmt: skip

    def __init__(self, tp: TopicPartition, state: PartitionState, token: _ResponseToken, fetch_offset: int,
                 records, check_crcs: bool, aborted: list[dict] | None) -> None:  # fmt: skip
        self.tp = tp
        self.state = state
        self.next_offset = fetch_offset
        # Header views only (a partial batch at the end is dropped here).
        self._batches = list(iter_batches(records))
        # Where the next Fetch for this partition starts.
        self.end_offset = self._batches[-1].next_offset if self._batches else fetch_offset
        # (batch index where this response's batches end, its token), oldest
        # first: a response counts as delivered once decoding passes its end.
        self._tokens: deque[tuple[int, _ResponseToken]] = deque([(len(self._batches), token)])
        self._index = 0
        # The current batch's records not yet taken: pending(k) makes the next k.
        self._pending: Callable[[int], list[ConsumerRecord]] = _no_records
        self._pending_left = 0
        self._batch_next = fetch_offset
        self._check_crcs = check_crcs
        # read_committed: aborted transactions by first offset, and the
        # producers whose aborted transaction we are inside.
        self._aborted = None if aborted is None else deque(sorted(
            ((a["first_offset"], a["producer_id"]) for a in aborted)))  # fmt: skip
        self._aborted_pids: set[int] = set()
        self._error: CorruptRecordError | None = None  # met after records were taken

    def extend(self, other: CompletedFetch) -> None:
        """Append the next response's data for the same partition (its fetch
        offset is our end_offset), so the partition stays one entry."""
        base = len(self._batches)
        self._batches += other._batches
        self._tokens.extend((base + end, token) for end, token in other._tokens)
        self.end_offset = other.end_offset
        if self._aborted is not None and other._aborted:
            self._aborted = deque(sorted([*self._aborted, *other._aborted]))

    def release_passed(self, everything: bool = False) -> list[_ResponseToken]:
        """The tokens of responses decoded past (all of them if `everything`)."""
        out = []
        tokens = self._tokens
        # Batches before _index are decoded; the last of them is delivered
        # only once its pending records are all taken.
        passed = self._index - (1 if self._pending_left else 0)
        while tokens and (everything or tokens[0][0] <= passed):
            out.append(tokens.popleft()[1])
        return out

    @property
    def done(self) -> bool:
        return self._index >= len(self._batches) and not self._pending_left and not self._error

    def take(self, n: int) -> list[ConsumerRecord]:
        """Up to `n` records from the position on. Raises CorruptRecordError
        (naming partition and offset) for a batch that fails its checks; the
        position then stays before that batch."""
        if self._error is not None:
            raise self._error
        out: list[ConsumerRecord] = []
        while True:
            left = self._pending_left
            if left:
                room = n - len(out)
                if room <= 0:
                    return out
                k = min(left, room)
                try:
                    out += self._pending(k)
                except ValueError as exc:  # a record the C builder refused (offset out of range, say)
                    tp = self.tp
                    error = CorruptRecordError(f"corrupt record batch in {tp.topic}-{tp.partition} "
                                               f"before offset {self._batch_next}: {exc}")  # fmt: skip
                    if not out:
                        raise error from None
                    self._error = error  # the records before it are delivered first
                    return out
                self._pending_left = left = left - k
                self.next_offset = out[-1].offset + 1 if left else self._batch_next
                continue
            if self._index >= len(self._batches):
                return out
            batch = self._batches[self._index]
            try:
                decoded = self._decode(batch)
            except CorruptRecordError as exc:
                if not out:
                    raise
                self._error = exc  # the records before it are delivered first
                return out
            self._index += 1
            self._pending, self._pending_left = decoded
            self._batch_next = batch.next_offset
            if not self._pending_left:
                self.next_offset = self._batch_next

    def _decode(self, batch: RecordBatch) -> tuple[Callable[[int], list[ConsumerRecord]], int]:
        """The batch's records from the position on, as a function that makes
        the next k of them when they are taken, and how many there are."""
        position = self.next_offset
        if batch.next_offset <= position:  # wholly before the position
            return _NONE
        tp = self.tp
        try:
            if self._check_crcs:
                batch.validate()
            if self._aborted is not None and batch.producer_id >= 0 and self._skip_aborted(batch):
                return _NONE
            if batch.is_control:
                return _NONE
            if _NATIVE:
                return _decode_native(batch, tp, position)
            records = batch.records(verify_crc=False)
        except CorruptRecordError as exc:
            raise CorruptRecordError(
                f"corrupt record batch in {tp.topic}-{tp.partition} at offset {batch.base_offset}: {exc}"
            ) from None
        topic, partition = tp
        ts_type = 1 if batch.attributes & ATTR_TIMESTAMP_TYPE else 0
        epoch = batch.partition_leader_epoch
        made = [
            ConsumerRecord(topic, partition, r[0], r[1], ts_type, r[2], r[3], tuple(r[4]), epoch)
            for r in records
            if r[0] >= position
        ]
        return _taker(iter(made)), len(made)

    def _skip_aborted(self, batch: RecordBatch) -> bool:
        """read_committed (Kafka's Fetcher): True for a batch to drop."""
        aborted, pid = self._aborted, batch.producer_id
        assert aborted is not None
        while aborted and aborted[0][0] <= batch.last_offset:
            self._aborted_pids.add(aborted.popleft()[1])
        if batch.is_control:
            records = batch.records(verify_crc=False)
            key = records[0].key if records else None
            if key is not None and len(key) >= 4 and _CONTROL_KEY.unpack_from(key)[1] == _ABORT_MARKER:
                self._aborted_pids.discard(pid)
            return True
        return batch.is_transactional and pid in self._aborted_pids


# The consumer's hot path. RecordBatch.records() builds a tuple per record
# from cffi structs and then a Record from each; here the C decoder's array
# of views is read a column at a time (strided memoryview casts, at C speed),
# and the ConsumerRecords are assembled by map/zip without a Python-level
# step per record where a column is uniform (no keys, no headers, contiguous
# offsets: the usual). Same checks as records() but the per-record
# offsetDelta order, which the CRC (check_crcs) covers.
#
# The records themselves are made lazily, as `take` asks for them (a poll's
# worth at a time), not a whole batch at once: a ConsumerRecord is the one
# object per record the cyclic GC tracks, and it collects its youngest
# generation whenever live tracked objects grow by 700. A megabyte batch of
# 1 KiB records made at once crossed that every batch (a sixth of the
# consumer's time went to the collector); a poll's worth made while the
# application drops the previous poll's keeps the count level.
_RECORD_VIEW = struct.Struct("@qNNNiiii")  # rl_record_view
_HEADER_VIEW = struct.Struct("@NNii")  # rl_header_view
_Q_PER_VIEW = _RECORD_VIEW.size // 8  # the view as int64s: tsd, key_pos, value_pos, first_header, ...
_I_PER_VIEW = _RECORD_VIEW.size // 4  # ... and as int32s: the last four are od, key_len, value_len, headers
_new_uninit = _ffi.new_allocator(should_clear_after_alloc=False) if _NATIVE else None
_tuple_new = tuple.__new__
_NO_HEADERS: tuple = ()


def _no_records(k: int) -> list[ConsumerRecord]:
    return []


def _taker(records: Iterator[ConsumerRecord]) -> Callable[[int], list[ConsumerRecord]]:
    return lambda k: list(islice(records, k))


_NONE: tuple[Callable[[int], list[ConsumerRecord]], int] = (_no_records, 0)


def _fields(raw: bytes, positions: list[int], lengths: list[int]) -> Iterable[bytes | None]:
    """Keys or values as bytes (None for length -1), from their columns."""
    nulls = lengths.count(-1)
    if nulls == len(lengths):
        return repeat(None, nulls)
    if not nulls:
        return [raw[p : p + n] for p, n in zip(positions, lengths)]
    return [raw[p : p + n] if n >= 0 else None for p, n in zip(positions, lengths)]


def _decode_native(batch: RecordBatch, tp: TopicPartition, position: int) -> tuple[Callable[[int], list[ConsumerRecord]], int]:
    assert _ffi is not None and _lib is not None and _new_uninit is not None
    assert _RECORD_VIEW.size == _ffi.sizeof("rl_record_view") and _HEADER_VIEW.size == _ffi.sizeof("rl_header_view")
    batch._check_structure()
    codec, area = batch.compression, batch.buffer[BATCH_HEADER_BYTES:]
    raw = bytes(area) if codec is Compression.NONE else bytes(decompress(codec, area))
    count = batch.records_count
    if count < 0 or count > len(raw) // MIN_RECORD_BYTES:
        raise CorruptRecordError(f"recordsCount {count} impossible for a {len(raw)}-byte records area")
    if count == 0:
        return _NONE
    header_cap = 4 * count + 1
    while True:
        views = _new_uninit("rl_record_view[]", count)
        headers = _new_uninit("rl_header_view[]", header_cap)
        rc = _lib.rl_decode_records(raw, len(raw), count, views, headers, header_cap)
        if rc != _lib.RL_DECODE_MORE_HEADERS:
            break
        header_cap = len(raw) // 2 + 1  # a header takes at least 2 bytes
    if rc != _lib.RL_DECODE_OK:
        raise CorruptRecordError(f"records do not decode: malformed records area ({count} records)")
    mem = memoryview(_ffi.buffer(views))
    as_q, as_i = mem.cast("q"), mem.cast("i")
    q, i = _Q_PER_VIEW, _I_PER_VIEW
    deltas = as_i[i - 4 :: i].tolist()
    base, last_delta = batch.base_offset, batch.last_offset_delta
    if deltas[0] < 0 or deltas[-1] > last_delta:
        raise CorruptRecordError(f"offsetDeltas outside [0, lastOffsetDelta {last_delta}]")
    first = bisect_left(deltas, position - base)  # records below the fetch position are skipped
    n = count - first
    if n <= 0:
        return _NONE
    topic, partition = tp
    log_append = bool(batch.attributes & ATTR_TIMESTAMP_TYPE)  # every record has maxTimestamp
    if _consumer_records is not None:
        args = (ConsumerRecord, topic, partition, raw, _ffi.buffer(views),
                _ffi.buffer(headers, header_cap * _HEADER_VIEW.size))  # fmt: skip
        tail = (base, batch.max_timestamp if log_append else batch.base_timestamp, log_append,
                batch.partition_leader_epoch)  # fmt: skip
        if as_i[first * i + i - 1 :: i].tolist().count(0) != n:
            # Records with headers are made at once, so a header key that is
            # not UTF-8 is found here, where the batch is refused whole.
            try:
                return _taker(iter(_consumer_records(*args, first, n, *tail))), n
            except UnicodeDecodeError as exc:
                raise CorruptRecordError(f"header key is not UTF-8: {exc}") from None
        return _NativeTaker(args, first, tail), n
    if first:
        deltas = deltas[first:]
    cut = slice(first * q, None, q)
    key_pos, value_pos = as_q[cut.start + 1 :: q].tolist(), as_q[cut.start + 2 :: q].tolist()
    key_len, value_len = as_i[first * i + i - 3 :: i].tolist(), as_i[first * i + i - 2 :: i].tolist()
    header_counts = as_i[first * i + i - 1 :: i].tolist()
    if log_append:
        ts_type, timestamps = 1, repeat(batch.max_timestamp, n)
    else:
        ts_type, base_ts = 0, batch.base_timestamp
        deltas_ts = as_q[cut.start :: q].tolist()
        if deltas_ts.count(deltas_ts[0]) == n:  # one millisecond for the whole batch: common
            timestamps = repeat(base_ts + deltas_ts[0], n)
        else:
            timestamps = [base_ts + d for d in deltas_ts]
    offsets = (range(base + deltas[0], base + deltas[0] + n) if deltas[-1] - deltas[0] == n - 1
               else map(base.__add__, deltas))  # fmt: skip
    if header_counts.count(0) == n:
        record_headers: Iterable = repeat(_NO_HEADERS, n)
    else:
        hrows = list(_HEADER_VIEW.iter_unpack(_ffi.buffer(headers, header_cap * _HEADER_VIEW.size)))
        first_headers = as_q[cut.start + 3 :: q].tolist()
        record_headers = [_headers(raw, hrows, fh, hc) if hc else _NO_HEADERS
                          for fh, hc in zip(first_headers, header_counts)]  # fmt: skip
    rows = zip(repeat(topic), repeat(partition), offsets, timestamps, repeat(ts_type),
               _fields(raw, key_pos, key_len), _fields(raw, value_pos, value_len), record_headers,
               repeat(batch.partition_leader_epoch))  # fmt: skip
    return _taker(map(_tuple_new, repeat(ConsumerRecord), rows)), n


class _NativeTaker:
    """Records of a batch made in C from its views, k at a time as they are
    taken (see above for why not all at once)."""

    __slots__ = ("args", "position", "tail")

    def __init__(self, args: tuple, first: int, tail: tuple) -> None:
        self.args, self.position, self.tail = args, first, tail

    def __call__(self, k: int) -> list[ConsumerRecord]:
        assert _consumer_records is not None
        made = _consumer_records(*self.args, self.position, k, *self.tail)
        self.position += k
        return made


def _headers(raw: bytes, hrows: list, first: int, count: int) -> tuple[tuple[str, bytes | None], ...]:
    try:
        return tuple([(raw[kp : kp + kl].decode(), raw[vp : vp + vl] if vl >= 0 else None)
                      for kp, vp, kl, vl in hrows[first : first + count]])  # fmt: skip
    except UnicodeDecodeError as exc:
        raise CorruptRecordError(f"header key is not UTF-8: {exc}") from None


class FetchBuffer:
    """The consumer's assigned partitions, their positions and the fetched
    data buffered for them: what the application's side calls. `Fetcher`
    fills the buffer."""

    def __init__(self, cluster: Cluster, config: ConsumerConfig) -> None:
        self.cluster = cluster
        self.config = config
        self.assignment: dict[TopicPartition, PartitionState] = {}
        self._completed: deque[CompletedFetch] = deque()  # one per partition, in rotation
        self._by_tp: dict[TopicPartition, CompletedFetch] = {}
        self._undelivered: dict[int, int] = defaultdict(int)  # node -> responses not yet delivered
        self._wakeup = trio.Event()
        self._data_ready = trio.Event()
        self._isolation = 1 if config.isolation_level == "read_committed" else 0
        self.closed = False

    # -- the application's side (called from Consumer) ---------------------

    def assign(self, tps: Iterable[TopicPartition]) -> None:
        """Replace the assignment; partitions kept keep their state."""
        new = {}
        for tp in tps:
            tp = TopicPartition(*tp)
            new[tp] = self.assignment.get(tp) or PartitionState()
        self.assignment = new
        self._discard(lambda cf: self.assignment.get(cf.tp) is not cf.state)
        self._wake()

    def seek(self, tp: TopicPartition, offset: int) -> None:
        state = self._state(tp)
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        state.position = offset
        state.error = None
        state.retry_at = 0.0
        self._discard(lambda cf: cf.tp == tp)
        self._wake()

    def set_paused(self, tps: Iterable[TopicPartition], paused: bool) -> None:
        for tp in tps:
            self._state(tp).paused = paused
        if paused:
            # Buffered data of a paused partition would hold its node's
            # buffer, starving the node's other partitions: drop it.
            self._discard(lambda cf: cf.state.paused)
        self._wake()

    async def reset_positions(self, tps: Iterable[TopicPartition], spec: str) -> None:
        """Seek each partition to its ListOffsets answer for `spec`."""
        tps = [TopicPartition(*tp) for tp in tps]
        for tp in tps:
            self._state(tp)
        found = await list_offsets(self.cluster, {tp: spec for tp in tps}, isolation_level=self._isolation)
        for tp in tps:
            if tp in self.assignment:
                self.seek(tp, found[tp].offset)

    async def position(self, tp: TopicPartition) -> int:
        state = self._state(tp)
        if state.position is None:
            if state.error is not None:
                raise state.error
            strategy = self.config.auto_offset_reset
            if strategy == "none":
                raise NoOffsetForPartitionError(f"{tp.topic}-{tp.partition} has no position and auto_offset_reset is none")
            await self.reset_positions([tp], strategy)
        assert state.position is not None
        return state.position

    def raise_error(self) -> None:
        if self.closed:
            raise ClosedError("consumer is closed")
        for state in self.assignment.values():
            if state.error is not None:
                raise state.error

    def drain(self, max_records: int) -> list[ConsumerRecord]:
        """Up to `max_records` buffered records, rotating over partitions: a
        partition with records left goes to the back of the line."""
        out: list[ConsumerRecord] = []
        completed = self._completed
        for _ in range(len(completed)):
            if len(out) >= max_records:
                break
            cf = completed.popleft()
            state = cf.state
            if (self.assignment.get(cf.tp) is not state or state.position != cf.next_offset
                    or state.error is not None or state.paused):  # fmt: skip
                self._release(cf)
                continue
            try:
                out += cf.take(max_records - len(out))
            except CorruptRecordError as exc:
                state.position = cf.next_offset  # what was taken is delivered
                state.error = exc
                self._release(cf)
                self._notify()
                continue
            state.position = cf.next_offset
            if cf.done:
                self._release(cf)
            else:
                self._release_tokens(cf.release_passed())
                completed.append(cf)
        return out

    async def wait_for_data(self) -> None:
        await self._data_ready.wait()

    def wake_poll(self) -> None:
        """Wake a poll waiting for data (the group has work for it)."""
        self._notify()

    def close(self) -> None:
        self.closed = True
        self._notify()

    def _state(self, tp: TopicPartition) -> PartitionState:
        state = self.assignment.get(TopicPartition(*tp))
        if state is None:
            raise ValueError(f"{tp[0]}-{tp[1]} is not assigned to this consumer")
        return state

    def _discard(self, pred) -> None:
        keep = deque()
        for cf in self._completed:
            if pred(cf):
                self._release(cf)
            else:
                keep.append(cf)
        self._completed = keep

    def _release(self, cf: CompletedFetch) -> None:
        """`cf` leaves the buffer (delivered, stale or failed)."""
        if self._by_tp.get(cf.tp) is cf:
            del self._by_tp[cf.tp]
        self._release_tokens(cf.release_passed(everything=True))

    def _release_tokens(self, tokens: list[_ResponseToken]) -> None:
        for token in tokens:
            token.live -= 1
            if token.live == 0:
                self._undelivered[token.node] -= 1
                assert self._undelivered[token.node] >= 0
                self._wake()  # the node may fetch again

    def _fetch_offset(self, tp: TopicPartition, state: PartitionState) -> int | None:
        """Where the next Fetch for `tp` starts: after the buffered data."""
        cf = self._by_tp.get(tp)
        return cf.end_offset if cf is not None else state.position

    def _wake(self) -> None:
        self._wakeup.set()

    def _notify(self) -> None:
        self._data_ready.set()
        self._data_ready = trio.Event()


class Fetcher(FetchBuffer):
    """Positions and prefetching for the consumer's assigned partitions: the
    background side, which resets positions and keeps Fetches in flight."""

    def __init__(self, cluster: Cluster, config: ConsumerConfig) -> None:
        super().__init__(cluster, config)
        self._in_flight: dict[int, set[TopicPartition]] = {}  # node -> partitions asked
        self._node_retry_at: dict[int, float] = {}
        self._node_attempts: dict[int, int] = defaultdict(int)

    async def run(self, nursery: trio.Nursery) -> None:
        """The dispatcher: start resets and fetches whenever something changed
        (a fetch completed, the buffer drained, a seek) or a backoff ended."""
        while True:
            self._wakeup = trio.Event()
            next_at = await self._dispatch(nursery)
            with trio.move_on_at(next_at):
                await self._wakeup.wait()

    async def _dispatch(self, nursery: trio.Nursery) -> float:
        now = trio.current_time()
        next_at = math.inf
        busy: set[TopicPartition] = set()
        for tps in self._in_flight.values():
            busy |= tps
        topics: dict[str, TopicInfo | None] = {}
        to_reset: list[tuple[TopicPartition, PartitionState]] = []
        by_node: dict[int, list] = defaultdict(list)
        for tp, state in list(self.assignment.items()):
            if state.error is not None or state.paused or state.resetting or tp in busy:
                continue
            if state.retry_at > now:
                next_at = min(next_at, state.retry_at)
                continue
            if state.position is None:
                to_reset.append((tp, state))
                continue
            if tp.topic not in topics:
                topics[tp.topic] = await self._topic(tp.topic)
            info = topics[tp.topic]
            if info is None or self.assignment.get(tp) is not state or state.position is None:
                continue  # no metadata now (error set or backoff), or changed under us
            part = info.partitions.get(tp.partition)
            if part is None:
                state.error = error_for_code(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)(  # type: ignore[misc]
                    f"partition {tp.partition} of topic {tp.topic!r} does not exist")
                self._notify()
                continue
            if part.leader < 0:
                self._retry_later(state)
                next_at = min(next_at, state.retry_at)
                continue
            node = part.leader
            if node in self._in_flight or self._undelivered[node] >= 2:
                continue
            if self._node_retry_at.get(node, 0) > now:
                next_at = min(next_at, self._node_retry_at[node])
                continue
            by_node[node].append((tp, state, self._fetch_offset(tp, state), part.leader_epoch))
        if to_reset:
            self._start_resets(nursery, to_reset)
        for node, parts in by_node.items():
            self._in_flight[node] = {tp for tp, *_ in parts}
            nursery.start_soon(self._fetch, node, parts)
        return next_at

    async def _topic(self, topic: str) -> TopicInfo | None:
        """The topic's metadata (refreshed if stale); None after recording
        an error or a backoff on its partitions."""
        try:
            return await self.cluster.topic(topic)
        except KafkaError as exc:
            if exc.code is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                # cluster.topic refreshed before raising: the topic is gone.
                exc = type(exc)(f"topic {topic!r} does not exist (deleted?)")
            elif exc.retriable:
                self._retry_topic_later(topic)
                return None
            self._fail_topic(topic, exc)
        except (KafkaConnectionError, KafkaTimeoutError) as exc:
            if not self.cluster.metadata.brokers:
                # No broker was ever reached and the cluster gave up after
                # default_api_timeout_ms: say so from poll rather than stay
                # silent. A cluster seen before is retried quietly.
                self._fail_topic(topic, exc)
            else:
                self._retry_topic_later(topic)
        return None

    def _fail_topic(self, topic: str, exc: BaseException) -> None:
        for tp, state in self.assignment.items():
            if tp.topic == topic and state.error is None:
                state.error = exc
        self._notify()

    def _retry_topic_later(self, topic: str) -> None:
        for tp, state in self.assignment.items():
            if tp.topic == topic:
                self._retry_later(state)

    def _back_off(self, state: PartitionState) -> None:
        """Fetch this partition again only after retry_backoff_ms."""
        state.retry_at = trio.current_time() + self.config.retry_backoff_ms / 1000

    def _retry_later(self, state: PartitionState) -> None:
        self.cluster.invalidate()
        state.attempts += 1
        cfg = self.config
        state.retry_at = trio.current_time() + jittered_backoff(
            cfg.retry_backoff_ms, cfg.retry_backoff_max_ms, state.attempts)  # fmt: skip

    def _start_resets(self, nursery: trio.Nursery, items: list[tuple[TopicPartition, PartitionState]]) -> None:
        strategy = self.config.auto_offset_reset
        by_topic: dict[str, list] = defaultdict(list)
        for tp, state in items:
            if strategy == "none":
                state.error = NoOffsetForPartitionError(
                    f"{tp.topic}-{tp.partition} has no position and auto_offset_reset is none")
                continue
            state.resetting = True
            by_topic[tp.topic].append((tp, state))
        if strategy == "none":
            self._notify()
        for topic, group in by_topic.items():
            nursery.start_soon(self._reset, topic, group, strategy)

    async def _reset(self, topic: str, items: list[tuple[TopicPartition, PartitionState]], strategy: str) -> None:
        """One topic's ListOffsets for partitions without a position."""
        try:
            found = await list_offsets(self.cluster, {tp: strategy for tp, _ in items},
                                       isolation_level=self._isolation,
                                       timeout=self.config.default_api_timeout_ms / 1000)  # fmt: skip
        except KafkaError as exc:
            unknown = exc.code is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            if exc.retriable and not unknown:
                found = {}
            else:
                if unknown:  # from the metadata refresh list_offsets made: confirmed
                    exc = type(exc)(f"topic {topic!r} does not exist (deleted?)")
                for tp, state in items:
                    state.resetting = False
                    if self.assignment.get(tp) is state and state.position is None:
                        state.error = exc
                self._notify()
                self._wake()
                return
        except (KafkaConnectionError, KafkaTimeoutError) as exc:
            if not self.cluster.metadata.brokers:  # never reached a broker: say so (see _topic)
                for tp, state in items:
                    state.resetting = False
                    if self.assignment.get(tp) is state and state.position is None:
                        state.error = exc
                self._notify()
                return
            found = {}
        for tp, state in items:
            state.resetting = False
            if self.assignment.get(tp) is not state or state.position is not None:
                continue  # reassigned or sought meanwhile
            if tp in found:
                state.position = found[tp].offset
                state.attempts = 0
            else:
                self._retry_later(state)
        self._wake()

    async def _fetch(self, node: int, parts: list) -> None:
        """One Fetch to `node`; buffer what it returns and free the node."""
        cfg = self.config
        try:
            try:
                conn = await self.cluster.connection(node)
                version = conn.version_for(FETCH, min_version=4)
                response = await conn.request(FETCH, self._request(parts), version=version,
                                              timeout=(cfg.request_timeout_ms + cfg.fetch_max_wait_ms) / 1000)  # fmt: skip
            except (KafkaConnectionError, KafkaTimeoutError):
                self.cluster.invalidate()
                self._node_attempts[node] += 1
                self._node_retry_at[node] = trio.current_time() + jittered_backoff(
                    cfg.reconnect_backoff_ms, cfg.reconnect_backoff_max_ms, self._node_attempts[node])  # fmt: skip
                return
            except UnsupportedVersionError as exc:
                for tp, state, *_ in parts:
                    state.error = exc
                self._notify()
                return
            assert response is not None
            self._node_attempts[node] = 0
            self._handle_response(node, parts, response)
        finally:
            del self._in_flight[node]
            self._wake()

    def _request(self, parts: list) -> dict:
        topics: dict[str, list] = defaultdict(list)
        for tp, _, offset, leader_epoch in parts:
            topics[tp.topic].append({
                "partition": tp.partition, "current_leader_epoch": leader_epoch, "fetch_offset": offset,
                "log_start_offset": -1, "partition_max_bytes": self.config.max_partition_fetch_bytes,
            })  # fmt: skip
        cfg = self.config
        return {
            "replica_id": -1, "max_wait_ms": cfg.fetch_max_wait_ms, "min_bytes": cfg.fetch_min_bytes,
            "max_bytes": cfg.fetch_max_bytes, "isolation_level": self._isolation,
            "session_id": 0, "session_epoch": -1,  # full fetches, no session
            "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()],
            "forgotten_topics_data": [], "rack_id": "",
        }  # fmt: skip

    def _handle_response(self, node: int, parts: list, response: dict) -> None:
        asked = {tp: (state, offset) for tp, state, offset, _ in parts}
        top = response.get("error_code", 0)
        if top:
            cls = error_for_code(top)
            assert cls is not None
            for _, (state, _) in asked.items():
                if cls.retriable:
                    self._retry_later(state)
                else:
                    state.error = cls(f"Fetch from broker {node}")
            self._notify()
            return
        added = False
        read_committed = self._isolation == 1
        token = _ResponseToken(node)
        for t in response["responses"]:
            for p in t["partitions"]:
                tp = TopicPartition(t["topic"], p["partition_index"])
                state, offset = asked.get(tp, (None, None))
                if (state is None or self.assignment.get(tp) is not state
                        or self._fetch_offset(tp, state) != offset):  # fmt: skip
                    continue  # sought, reassigned or paused meanwhile: stale data
                code = p["error_code"]
                if code == 0:
                    state.attempts = 0
                    records = p["records"]
                    if not records or state.paused:
                        continue
                    aborted = (p.get("aborted_transactions") or []) if read_committed else None
                    try:
                        cf = CompletedFetch(tp, state, token, offset, records, self.config.check_crcs, aborted)
                    except CorruptRecordError as exc:  # a batch header that does not parse
                        state.error = CorruptRecordError(
                            f"corrupt record batch in {tp.topic}-{tp.partition} after offset {offset}: {exc}")
                        added = True
                        continue
                    if cf.end_offset == offset:
                        # Only part of a batch (a broker older than KIP-74 cut one
                        # larger than the limits): ask again after a backoff.
                        self._back_off(state)
                        continue
                    token.live += 1
                    tail = self._by_tp.get(tp)
                    if tail is not None:
                        tail.extend(cf)
                    else:
                        self._by_tp[tp] = cf
                        self._completed.append(cf)
                    added = True
                elif code == ErrorCode.OFFSET_OUT_OF_RANGE:
                    if offset != state.position:
                        # A prefetch past buffered data: deliver that data
                        # first; the question is asked again from the position.
                        self._back_off(state)
                    elif self.config.auto_offset_reset == "none":
                        state.error = OffsetOutOfRangeError(
                            f"offset {offset} is out of range for {tp.topic}-{tp.partition}")
                        added = True
                    else:
                        state.position = None  # the dispatcher resets it
                else:
                    cls = error_for_code(code)
                    assert cls is not None
                    if code in _LEADER_ERRORS or cls.retriable:
                        self._retry_later(state)
                    else:
                        state.error = cls(f"Fetch {tp.topic}-{tp.partition} at offset {offset}")
                        added = True
        if token.live:
            self._undelivered[node] += 1
        if added:
            self._notify()
