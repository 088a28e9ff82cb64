"""A group member's offset commits (OffsetCommit, in its generation) and
committed-offset reads (OffsetFetch), sent to the group coordinator."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping

import trio

from riverlog.client.connection import BrokerConnection
from riverlog.client.errors import ClientError
from riverlog.client.group.member import GroupMember, _Retry
from riverlog.client.group.offset_requests import OFFSET_COMMIT, OFFSET_FETCH, commit_errors, commit_request
from riverlog.client.group.offset_requests import fetch_request, fetch_result
from riverlog.client.protocol.errors import ErrorCode, KafkaError, error_for_code
from riverlog.client.types import TopicPartition

log = logging.getLogger("riverlog.client")


class CommitFailedError(ClientError):
    """The group rebalanced and gave the partitions away (ILLEGAL_GENERATION
    or UNKNOWN_MEMBER_ID): the commit cannot be completed. Java's name."""


class GroupCommits(GroupMember):
    """The member's commits: each waits out a join of its own and never
    lands after a newer commit of the same partitions."""

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
