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

import trio

from riverlog.client.connection import jittered_backoff
from riverlog.client.errors import ClientError, KafkaConnectionError, KafkaTimeoutError
from riverlog.client.group.commits import GroupCommits
from riverlog.client.group.member import HEARTBEAT, Callback, Listener, _Action, _Retry
from riverlog.client.protocol.errors import KafkaError
from riverlog.client.types import TopicPartition

log = logging.getLogger("riverlog.client")


class IllegalStateError(ClientError):
    """The call does not fit the consumer's state (assign while subscribed...)."""


async def _call(callback: Callback | None, partitions: set[TopicPartition]) -> None:
    if callback is not None:
        result = callback(set(partitions))
        if inspect.isawaitable(result):
            await result


class GroupMembership(GroupCommits):
    """One consumer's membership of `config.group_id`: the application's
    side (subscribe, the actions poll runs, close) and the tasks that drive
    the member (the membership loop, heartbeats, the poll timer). The
    member's state and requests are `GroupMember`'s (member.py), its
    commits `GroupCommits`' (commits.py)."""

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
