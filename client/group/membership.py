"""The consumer's side of a classic consumer group: coordinator, join, sync,
heartbeats, offset commits.

Who runs what:

- the membership task (`run`, in the consumer's nursery): FindCoordinator,
  JoinGroup (with the v4+ member-id handshake), the leader's assignment,
  SyncGroup, and the OffsetFetch for newly assigned partitions;
- the heartbeat task beside it: a Heartbeat every heartbeat_interval_ms while
  the member is in a generation, and the poll timer: when the application
  has not polled for max_poll_interval_ms it leaves the group, as Java's
  heartbeat thread does, and the next poll rejoins;
- poll's task: everything the application sees. The membership hands each
  revocation, assignment and loss to poll as an `_Action` and waits until
  poll has run it (auto-commit of revoked partitions, the listener callback,
  the fetcher's new assignment). So callbacks run inside poll, as in Java,
  never while the application is between a poll and its commit: committing
  after processing loses and duplicates nothing across a rebalance.

Rebalance protocols: "eager" revokes everything before JoinGroup;
"cooperative" (when every configured assignor supports it, as Java decides)
keeps its partitions through the join, revokes only those the new
assignment moves, and then rejoins so they can be handed over (KIP-429).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

import trio

from riverlog.client.cluster import Cluster
from riverlog.client.config import ConsumerConfig
from riverlog.client.connection import BrokerConnection, jittered_backoff
from riverlog.client.errors import ClientError, KafkaConnectionError, KafkaTimeoutError
from riverlog.client.group.assignors import ASSIGNORS, COOPERATIVE, CooperativeStickyAssignor
from riverlog.client.group.consumer_protocol import Subscription, decode_assignment, decode_subscription, encode_assignment
from riverlog.client.group.consumer_protocol import encode_subscription
from riverlog.client.group.offset_requests import OFFSET_COMMIT, OFFSET_FETCH, commit_errors, commit_request
from riverlog.client.group.offset_requests import fetch_request, fetch_result
from riverlog.client.protocol.api_keys import ApiKey
from riverlog.client.protocol.errors import ErrorCode, KafkaError, error_for_code
from riverlog.client.types import TopicPartition

log = logging.getLogger("riverlog.client")

FIND_COORDINATOR, JOIN_GROUP, HEARTBEAT = ApiKey.FIND_COORDINATOR, ApiKey.JOIN_GROUP, ApiKey.HEARTBEAT
LEAVE_GROUP, SYNC_GROUP = ApiKey.LEAVE_GROUP, ApiKey.SYNC_GROUP
PROTOCOL_TYPE = "consumer"
_COORDINATOR_GONE = frozenset({ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE})

Callback = Callable[[set[TopicPartition]], "Awaitable[None] | None"]


class IllegalStateError(ClientError):
    """The call does not fit the consumer's state (assign while subscribed...)."""


class CommitFailedError(ClientError):
    """The group rebalanced and gave the partitions away (ILLEGAL_GENERATION
    or UNKNOWN_MEMBER_ID): the commit cannot be completed. Java's name."""


class _Retry(Exception):
    """Start the membership step over (after a backoff if `backoff`)."""

    def __init__(self, backoff: bool = True) -> None:
        super().__init__()
        self.backoff = backoff


@dataclass
class Listener:
    on_assigned: Callback | None = None
    on_revoked: Callback | None = None
    on_lost: Callback | None = None  # None: on_revoked serves, as in Java


@dataclass
class _Action:
    """A change the application must see, run by poll: `kind` is revoke,
    assign or lost; `partitions` go to the callback; `assignment` is the
    whole assignment afterwards; `positions` are committed offsets to seek."""

    kind: str
    partitions: set[TopicPartition]
    assignment: set[TopicPartition]
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    done: trio.Event = field(default_factory=trio.Event)


async def _call(callback: Callback | None, partitions: set[TopicPartition]) -> None:
    if callback is not None:
        result = callback(set(partitions))
        if inspect.isawaitable(result):
            await result


class GroupMembership:
    """One consumer's membership of `config.group_id`. `set_assignment` and
    `positions` are the consumer's: the first replaces the fetcher's
    assignment (dropping revoked partitions' buffered records), the second
    gives the next offset to deliver per assigned partition."""

    def __init__(self, cluster: Cluster, config: ConsumerConfig,
                 set_assignment: Callable[[set[TopicPartition]], None],
                 positions: Callable[[], dict[TopicPartition, int]],
                 seek: Callable[[TopicPartition, int], None], wake_poll: Callable[[], None],
                 nursery: trio.Nursery) -> None:  # fmt: skip
        assert config.group_id is not None
        self.cluster = cluster
        self.config = config
        self.group_id: str = config.group_id
        self._set_assignment = set_assignment
        self._positions = positions
        self._seek = seek
        self._wake_poll = wake_poll
        self.assignors = [ASSIGNORS[name] for name in config.partition_assignment_strategy]
        self.cooperative = all(a.supported_protocol == COOPERATIVE for a in self.assignors)
        self.member_id = ""
        self.generation = -1  # -1: in no generation (never joined, reset, or left)
        self.protocol_name: str | None = None
        self.owned: set[TopicPartition] = set()  # what poll has applied: the fetcher's assignment
        self.topics: list[str] | None = None
        self.pattern: re.Pattern | None = None
        self.listener = Listener()
        self.error: BaseException | None = None  # fatal: every poll raises it
        self._coordinator: tuple[str, tuple[str, int]] | None = None
        self._need_rejoin = False
        self._stable = False  # in a generation, not joining: heartbeats go out
        self._left = False  # left on the poll timer; the next poll rejoins
        self._lost = False  # our generation ended under us: owned partitions are lost
        self._epoch = 0  # bumped at every join/reset, so stale heartbeat answers are ignored
        self._actions: deque[_Action] = deque()
        self._wakeup = trio.Event()
        self._step: trio.CancelScope | None = None
        self._synced = trio.Event()  # set when a SyncGroup completes; renewed at each join
        self._scope: trio.CancelScope | None = None
        self._nursery = nursery  # the consumer's: async commits run there
        self._last_poll = 0.0
        self._next_auto_commit = 0.0
        self._group_counts: dict[str, int] = {}  # leader: partition counts it assigned from
        self._subscription_topics: list[str] = []  # what the last JoinGroup asked for
        self._commit_seq = 0  # numbers commits, so a retried one never overtakes a newer one
        self._latest_commit: dict[TopicPartition, int] = {}  # partition -> the newest commit of it
        self._commits_running: dict[int, trio.Event] = {}  # commit number -> set when it has finished

    @property
    def subscribed(self) -> bool:
        return self.topics is not None or self.pattern is not None

    def _wake(self) -> None:
        self._wakeup.set()

    # -- the application's side ---------------------------------------------

    def subscribe(self, topics: list[str] | None, pattern: re.Pattern | None, listener: Listener) -> None:
        self.topics = sorted(set(topics)) if topics is not None else None
        self.pattern = pattern
        self.listener = listener
        self._need_rejoin = True
        self._last_poll = trio.current_time()
        self._wake()

    async def unsubscribe(self) -> None:
        """Revoke (callbacks in the caller's task), leave, forget the group."""
        if not self.subscribed:
            return
        self.topics = self.pattern = None
        self._cancel_step()
        await self._give_up_owned(commit=True)
        if self.member_id and self.config.group_instance_id is None:
            await self._leave("the consumer unsubscribed")
        self._reset(member=True)
        self._need_rejoin = False

    async def before_poll(self) -> None:
        """Each poll: restart the poll timer, run handed-over actions, raise
        a fatal group error, start a due auto-commit."""
        now = trio.current_time()
        self._last_poll = now
        if self._left:
            self._left = False
            self._need_rejoin = True
            self._wake()
        while self._actions:
            await self._run_action(self._actions.popleft())
        if self.error is not None:
            raise self.error
        if self.config.enable_auto_commit and now >= self._next_auto_commit:
            self._next_auto_commit = now + self.config.auto_commit_interval_ms / 1000
            offsets = self._positions()
            if offsets and (self.generation >= 0 or not self.subscribed):
                self.commit_async(offsets)

    async def _run_action(self, action: _Action) -> None:
        try:
            if action.kind == "revoke":
                if self.config.enable_auto_commit:
                    positions = self._positions()
                    await self._commit_quietly({tp: positions[tp] for tp in action.partitions if tp in positions})
                try:
                    await _call(self.listener.on_revoked, action.partitions)
                finally:  # revoked even if the listener raised (Java's rule): no fetch, no commit of them
                    self._set_assignment(action.assignment)
            elif action.kind == "lost":
                try:
                    await _call(self.listener.on_lost or self.listener.on_revoked, action.partitions)
                finally:
                    self._set_assignment(action.assignment)
            else:
                self._set_assignment(action.assignment)
                for tp, offset in action.positions.items():
                    self._seek(tp, offset)
                await _call(self.listener.on_assigned, action.partitions)
        finally:
            self.owned = set(action.assignment)
            action.done.set()

    async def _in_poll(self, kind: str, partitions: set[TopicPartition], assignment: set[TopicPartition],
                       positions: dict[TopicPartition, int] | None = None) -> None:  # fmt: skip
        action = _Action(kind, set(partitions), set(assignment), positions or {})
        self._actions.append(action)
        self._wake_poll()
        await action.done.wait()

    def _drop_actions(self) -> None:
        while self._actions:
            self._actions.popleft().done.set()

    async def _give_up_owned(self, commit: bool) -> None:
        """Revoke (or, outside a generation, lose) everything, in this task."""
        self._drop_actions()
        owned = set(self.owned)
        try:
            if owned:
                if self.generation >= 0:
                    if commit and self.config.enable_auto_commit:
                        await self._commit_quietly(self._positions())
                    await _call(self.listener.on_revoked, owned)
                else:
                    await _call(self.listener.on_lost or self.listener.on_revoked, owned)
        finally:
            self._set_assignment(set())
            self.owned = set()

    async def close(self) -> None:
        """Commit (auto-commit), revoke, and leave unless a static member."""
        if self._scope is not None:
            self._scope.cancel()
        if self.subscribed:
            await self._give_up_owned(commit=True)
            if self.member_id and self.config.group_instance_id is None:
                await self._leave("the consumer is being closed")
        elif self.config.enable_auto_commit:
            await self._commit_quietly(self._positions())

    # -- commits ---------------------------------------------------------------

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """OffsetCommit in our generation (outside one when not subscribed).
        Raises CommitFailedError when the group moved on without us, and
        RebalanceInProgressError while we are out of a generation. A commit
        of partitions we still hold that meets the window between our
        JoinGroup and SyncGroup (REBALANCE_IN_PROGRESS, or ILLEGAL_GENERATION
        once the new generation exists) waits for the sync and is made again
        in the new generation: they stay ours until poll
        revokes them, so nobody else can have read them meanwhile."""
        offsets = {TopicPartition(*tp): o for tp, o in offsets.items()}
        if not offsets:
            return
        if self.subscribed and self.generation < 0:
            cls = error_for_code(ErrorCode.REBALANCE_IN_PROGRESS)
            assert cls is not None
            raise cls("not in a group generation: poll to rejoin")

        # A commit retried after a newer one of the same partitions was made
        # (an auto-commit waiting out a rebalance, say) must not land after it
        # and move the group's offsets back: each attempt sends only the
        # partitions no later commit has claimed, and the commit returns once
        # those later commits have finished too, so what committed() reads
        # afterwards is never older than this commit's offsets.
        self._commit_seq += 1
        seq = self._commit_seq
        for tp in offsets:
            self._latest_commit[tp] = seq
        done = self._commits_running[seq] = trio.Event()
        try:
            await self._with_coordinator(lambda conn: self._commit_attempt(conn, seq, offsets))
        finally:
            done.set()
            del self._commits_running[seq]
        newer = {self._latest_commit[tp] for tp in offsets} - {seq}
        for later in sorted(newer):
            event = self._commits_running.get(later)
            if event is not None:
                await event.wait()

    async def _commit_attempt(self, conn: BrokerConnection, seq: int, offsets: dict[TopicPartition, int]) -> None:
        """One OffsetCommit of what commit number `seq` still owns."""
        live = {tp: o for tp, o in offsets.items() if self._latest_commit.get(tp) == seq}
        if not live:
            return  # superseded by a later commit of every one of them
        generation, member = (self.generation, self.member_id) if self.subscribed else (-1, "")
        body = commit_request(self.group_id, generation, member, self.config.group_instance_id, live)
        response = await conn.request(OFFSET_COMMIT, body, version=conn.version_for(OFFSET_COMMIT, max_version=8))
        assert response is not None
        for tp, code in commit_errors(response).items():
            if code == 0:
                continue
            if code in (ErrorCode.REBALANCE_IN_PROGRESS, ErrorCode.ILLEGAL_GENERATION) and self.subscribed:
                # A join of ours under way (cooperative: we keep partitions
                # through it): commit again once it has synced.
                joining = not self._stable or generation != self.generation
                if joining and offsets.keys() <= self.owned:
                    with trio.move_on_after(self.config.max_poll_interval_ms / 1000):
                        await self._synced.wait()
                    if self.generation >= 0 and offsets.keys() <= self.owned:
                        raise _Retry(backoff=False)
                elif code == ErrorCode.REBALANCE_IN_PROGRESS and offsets.keys() <= self.owned:
                    raise _Retry()  # synced, but the group is not yet Stable: a moment more
            if code in (ErrorCode.ILLEGAL_GENERATION, ErrorCode.UNKNOWN_MEMBER_ID):
                if (generation, member) == (self.generation, self.member_id) and self.subscribed:
                    self._member_error(code)
                raise CommitFailedError(
                    f"commit of {tp.topic}-{tp.partition} failed: {ErrorCode(code).name}: the group "
                    "rebalanced and assigned the partitions to another member")
            if code == ErrorCode.REBALANCE_IN_PROGRESS:
                self._need_rejoin = True
                self._wake()
            self._check_coordinator_code(code)
            raise error_for_code(code)(f"OffsetCommit {tp.topic}-{tp.partition}")  # type: ignore[misc]

    def commit_async(self, offsets: Mapping[TopicPartition, int], callback: Callable | None = None) -> None:
        """Commit in the background; `callback(offsets, error_or_None)`."""
        self._nursery.start_soon(self._commit_task, dict(offsets), callback)

    async def _commit_task(self, offsets: dict[TopicPartition, int], callback: Callable | None) -> None:
        error: BaseException | None = None
        try:
            await self.commit(offsets)
        except (ClientError, KafkaError) as exc:
            error = exc
            if callback is None:
                log.warning("async commit of group %s failed: %s", self.group_id, exc)
        if callback is not None:
            result = callback(offsets, error)
            if inspect.isawaitable(result):
                await result

    async def _commit_quietly(self, offsets: Mapping[TopicPartition, int]) -> None:
        try:
            await self.commit(offsets)
        except (ClientError, KafkaError) as exc:
            log.warning("commit of group %s failed: %s", self.group_id, exc)

    async def committed(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The group's committed offsets (None: nothing committed)."""
        tps = [TopicPartition(*tp) for tp in tps]
        if not tps:
            return {}

        async def attempt(conn: BrokerConnection) -> dict[TopicPartition, int | None]:
            version = conn.version_for(OFFSET_FETCH, min_version=1, max_version=8)
            response = await conn.request(OFFSET_FETCH, fetch_request(version, self.group_id, tps), version=version)
            assert response is not None
            code, found = fetch_result(version, response)
            codes = [code] + [c for _, c in found.values()]
            for c in codes:
                if c:
                    self._check_coordinator_code(c)
                    if c == ErrorCode.UNSTABLE_OFFSET_COMMIT:
                        raise _Retry()
                    raise error_for_code(c)(f"OffsetFetch for group {self.group_id}")  # type: ignore[misc]
            return {tp: (found[tp][0] if tp in found and found[tp][0] >= 0 else None) for tp in tps}

        return await self._with_coordinator(attempt)

    async def _with_coordinator(self, attempt):
        """`attempt(conn)` against the coordinator, rediscovering it and
        retrying retriable trouble until default_api_timeout_ms."""
        cfg = self.config
        deadline = trio.current_time() + cfg.default_api_timeout_ms / 1000
        tries = 0
        while True:
            try:
                return await attempt(await self._connection())
            except _Retry as exc:
                if not exc.backoff and trio.current_time() < deadline:
                    continue
            except (KafkaConnectionError, KafkaTimeoutError):
                self._coordinator = None
            except KafkaError as exc:
                if not exc.retriable:
                    raise
            tries += 1
            if trio.current_time() >= deadline:
                raise KafkaTimeoutError(f"group {self.group_id}: no coordinator answer within "
                                        f"{cfg.default_api_timeout_ms} ms")  # fmt: skip
            await trio.sleep(jittered_backoff(cfg.retry_backoff_ms, cfg.retry_backoff_max_ms, tries))

    # -- coordinator -------------------------------------------------------

    async def _connection(self) -> BrokerConnection:
        """The coordinator's connection (its own, apart from fetches: a
        JoinGroup may wait a whole rebalance)."""
        if self._coordinator is None:
            conn = await self.cluster.any_connection()
            version = conn.version_for(FIND_COORDINATOR, max_version=4)
            body = {"key": self.group_id, "key_type": 0, "coordinator_keys": [self.group_id]}
            response = await conn.request(FIND_COORDINATOR, body, version=version)
            assert response is not None
            answer = response["coordinators"][0] if version >= 4 else response
            code = answer["error_code"]
            if code:
                cls = error_for_code(code)
                assert cls is not None
                if cls.retriable:
                    raise _Retry()
                raise cls(f"FindCoordinator for group {self.group_id}")
            self._coordinator = ("coordinator", (answer["host"], answer["port"]))
        try:
            return await self.cluster.connection(self._coordinator)
        except KafkaConnectionError:
            self._coordinator = None
            raise

    def _check_coordinator_code(self, code: int) -> None:
        if code in _COORDINATOR_GONE:
            self._coordinator = None
            raise _Retry(backoff=False)
        if code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
            raise _Retry()

    def _reset(self, member: bool) -> None:
        """Leave our generation (and forget the member id if `member`)."""
        if self.generation >= 0 and self.owned:
            self._lost = True
        self.generation = -1
        if member:
            self.member_id = ""
        self._stable = False
        self._epoch += 1
        self._synced.set()  # a commit waiting for the sync: there will be none in this generation

    def _member_error(self, code: int) -> None:
        """Java's rules: UNKNOWN_MEMBER_ID forgets the member id,
        ILLEGAL_GENERATION only the generation; both lose the partitions."""
        self._reset(member=code == ErrorCode.UNKNOWN_MEMBER_ID)
        self._need_rejoin = True
        self._wake()

    def _check(self, code: int, api: str) -> None:
        """Act on a group API's error code; raise _Retry or the fatal error."""
        if code == 0:
            return
        self._check_coordinator_code(code)
        if code in (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION):
            self._member_error(code)
            raise _Retry(backoff=False)
        if code == ErrorCode.REBALANCE_IN_PROGRESS:
            self._need_rejoin = True
            raise _Retry(backoff=False)
        cls = error_for_code(code)
        assert cls is not None
        if cls.retriable:
            raise _Retry()
        raise cls(f"{api} for group {self.group_id}")

    # -- the membership task -------------------------------------------------

    async def run(self) -> None:
        self._last_poll = trio.current_time()
        with trio.CancelScope() as self._scope:
            async with trio.open_nursery() as inner:
                inner.start_soon(self._heartbeat_loop)
                await self._main_loop()

    def _cancel_step(self) -> None:
        if self._step is not None:
            self._step.cancel()
        self._drop_actions()

    async def _main_loop(self) -> None:
        cfg = self.config
        failures = 0
        while True:
            self._wakeup = trio.Event()
            if self.error is not None or not self.subscribed or self._left:
                await self._wakeup.wait()
                continue
            backoff = False
            with trio.CancelScope() as self._step:
                try:
                    if self._lost:
                        self._lost = False
                        await self._in_poll("lost", self.owned, set())
                    elif self._need_rejoin or self.generation < 0:
                        await self._rebalance()
                    else:
                        await self._idle()
                    failures = 0
                except _Retry as exc:
                    backoff = exc.backoff
                except (KafkaConnectionError, KafkaTimeoutError) as exc:
                    log.info("group %s: coordinator unreachable (%s); rediscovering", self.group_id, exc)
                    self._coordinator = None
                    backoff = True
                except KafkaError as exc:
                    if exc.retriable:
                        backoff = True
                    else:
                        self.error = exc
                        self._wake_poll()
            self._step = None
            if backoff:
                failures += 1
                await trio.sleep(jittered_backoff(cfg.retry_backoff_ms, cfg.retry_backoff_max_ms, failures))

    async def _idle(self) -> None:
        """Wait for a reason to rejoin; every metadata_max_age_ms look for
        new topics matching the pattern or (the leader) partition counts
        that changed, as Java's metadata listener does."""
        await self._connection()  # rediscover a coordinator the heartbeats lost
        with trio.move_on_after(self.config.metadata_max_age_ms / 1000):
            await self._wakeup.wait()
            return
        if await self._subscribed_topics() != sorted(self._subscription_topics):
            self._need_rejoin = True
        elif self._group_counts:
            await self.cluster.refresh(sorted(self._group_counts))
            if self._partition_counts(self._group_counts) != self._group_counts:
                self._need_rejoin = True

    async def _subscribed_topics(self) -> list[str]:
        if self.topics is not None:
            return self.topics
        assert self.pattern is not None
        metadata = await self.cluster.refresh(None)
        return sorted(t for t, info in metadata.topics.items()
                      if not info.is_internal and not t.startswith("__") and self.pattern.fullmatch(t))  # fmt: skip

    def _partition_counts(self, topics: Iterable[str]) -> dict[str, int]:
        out = {}
        for t in topics:
            info = self.cluster.metadata.topics.get(t)
            if info is not None and info.error_code == 0 and info.partitions:
                out[t] = len(info.partitions)
        return out

    async def _rebalance(self) -> None:
        if not self.cooperative and self.owned:
            await self._in_poll("revoke", self.owned, set())  # eager: all of them, before the join
            self._lost = False  # a reset meanwhile: nothing is left to lose
        if self._lost:  # our generation ended: what we held is lost, not revoked
            self._lost = False
            await self._in_poll("lost", self.owned, set())
        self._subscription_topics = await self._subscribed_topics()
        self._need_rejoin = False
        self._stable = False
        self._epoch += 1
        previous, self._synced = self._synced, trio.Event()
        previous.set()  # a commit waiting on a sync that failed: try again, then wait for this one
        conn = await self._connection()
        join = await self._join(conn, self._subscription_topics)
        assignments = await self._lead(join) if join["leader"] == self.member_id else []
        assigned = await self._sync(conn, assignments)
        self._stable = True
        self._synced.set()
        new = set(assigned)
        revoked = self.owned - new
        if revoked:  # cooperative: give up what moves, then rejoin so it can be handed over
            await self._in_poll("revoke", revoked, self.owned - revoked)
            self._need_rejoin = True
        added = new - self.owned
        positions = {}
        if added:
            committed = await self.committed(added)
            positions = {tp: o for tp, o in committed.items() if o is not None}
        await self._in_poll("assign", added, new, positions)
        log.info("group %s generation %d: member %s assigned %s", self.group_id, self.generation,
                 self.member_id, sorted(new))  # fmt: skip

    def _protocols(self, topics: list[str]) -> list[dict]:
        owned = sorted(self.owned)
        out = []
        for assignor in self.assignors:
            user_data = None
            if isinstance(assignor, CooperativeStickyAssignor):
                user_data = assignor.subscription_user_data(self.generation)
            sub = Subscription(topics, user_data, owned, self.generation)
            out.append({"name": assignor.name, "metadata": encode_subscription(sub)})
        return out

    async def _join(self, conn: BrokerConnection, topics: list[str]) -> dict:
        cfg = self.config
        version = conn.version_for(JOIN_GROUP, max_version=9)
        while True:
            body = {
                "group_id": self.group_id, "session_timeout_ms": cfg.session_timeout_ms,
                "rebalance_timeout_ms": cfg.max_poll_interval_ms, "member_id": self.member_id,
                "group_instance_id": cfg.group_instance_id, "protocol_type": PROTOCOL_TYPE,
                "protocols": self._protocols(topics), "reason": None,
            }  # fmt: skip
            response = await conn.request(JOIN_GROUP, body, version=version,
                                          timeout=(cfg.max_poll_interval_ms + 5000) / 1000)  # fmt: skip
            assert response is not None
            code = response["error_code"]
            if code == ErrorCode.MEMBER_ID_REQUIRED:  # KIP-394: join again with the id given
                self.member_id = response["member_id"]
                continue
            self._check(code, "JoinGroup")
            self.member_id = response["member_id"]
            self.generation = response["generation_id"]
            self.protocol_name = response["protocol_name"]
            return response

    async def _lead(self, join: dict) -> list[dict]:
        """The leader's job: run the group's assignor over every member's
        subscription, with partition counts from fresh metadata."""
        subscriptions = {m["member_id"]: decode_subscription(m["metadata"]) for m in join["members"]}
        instance_ids = {m["member_id"]: m.get("group_instance_id") for m in join["members"]}
        topics = sorted({t for sub in subscriptions.values() for t in sub.topics})
        if topics:
            await self.cluster.refresh(topics)
        counts = self._partition_counts(topics)
        self._group_counts = counts
        assignor = ASSIGNORS[join["protocol_name"]]
        result = assignor.assign(counts, subscriptions, instance_ids)
        return [{"member_id": m, "assignment": encode_assignment(a)} for m, a in result.items()]

    async def _sync(self, conn: BrokerConnection, assignments: list[dict]) -> list[TopicPartition]:
        cfg = self.config
        body = {
            "group_id": self.group_id, "generation_id": self.generation, "member_id": self.member_id,
            "group_instance_id": cfg.group_instance_id, "protocol_type": PROTOCOL_TYPE,
            "protocol_name": self.protocol_name, "assignments": assignments,
        }  # fmt: skip
        response = await conn.request(SYNC_GROUP, body, version=conn.version_for(SYNC_GROUP, max_version=5),
                                      timeout=(cfg.max_poll_interval_ms + 5000) / 1000)  # fmt: skip
        assert response is not None
        self._check(response["error_code"], "SyncGroup")
        data = response["assignment"]
        return decode_assignment(data).partitions if data else []

    async def _leave(self, reason: str) -> None:
        """LeaveGroup, best effort: the session timeout covers a failure."""
        try:
            with trio.move_on_after(self.config.request_timeout_ms / 1000):
                conn = await self._connection()
                version = conn.version_for(LEAVE_GROUP, max_version=5)
                body = {"group_id": self.group_id, "member_id": self.member_id,
                        "members": [{"member_id": self.member_id, "reason": reason,
                                     "group_instance_id": self.config.group_instance_id}]}  # fmt: skip
                await conn.request(LEAVE_GROUP, body, version=version)
        except (ClientError, KafkaError, _Retry) as exc:
            log.info("group %s: LeaveGroup failed (%s)", self.group_id, exc)

    async def _heartbeat_loop(self) -> None:
        cfg = self.config
        while True:
            await trio.sleep(cfg.heartbeat_interval_ms / 1000)
            if (self.subscribed and self.member_id and not self._left
                    and trio.current_time() - self._last_poll > cfg.max_poll_interval_ms / 1000):  # fmt: skip
                await self._leave_on_poll_timeout()
                continue
            if not self._stable or self.generation < 0 or self._coordinator is None:
                continue
            epoch = self._epoch
            body = {"group_id": self.group_id, "generation_id": self.generation, "member_id": self.member_id,
                    "group_instance_id": cfg.group_instance_id}  # fmt: skip
            try:
                conn = await self.cluster.connection(self._coordinator)
                timeout = min(cfg.request_timeout_ms, cfg.session_timeout_ms) / 1000
                version = conn.version_for(HEARTBEAT, max_version=4)
                response = await conn.request(HEARTBEAT, body, version=version, timeout=timeout)
            except (KafkaConnectionError, KafkaTimeoutError):
                if epoch == self._epoch:
                    self._coordinator = None
                    self._wake()
                continue
            assert response is not None
            if epoch != self._epoch or response["error_code"] == 0:
                continue  # an answer about a generation we have left
            try:
                self._check(response["error_code"], "Heartbeat")
            except _Retry:
                pass
            except KafkaError as exc:  # FENCED_INSTANCE_ID and the like
                self.error = exc
                self._wake_poll()
            self._wake()

    async def _leave_on_poll_timeout(self) -> None:
        log.warning("group %s: no poll within max_poll_interval_ms (%d ms); leaving the group",
                    self.group_id, self.config.max_poll_interval_ms)  # fmt: skip
        self._cancel_step()
        if self.config.group_instance_id is None:
            await self._leave("consumer poll timeout has expired")
        self._reset(member=True)
        self._left = True
        self._wake()
