"""One consumer group member's state and the rules of its requests to the
group coordinator: FindCoordinator, JoinGroup (with the v4+ member-id
handshake), the leader's assignment, SyncGroup, LeaveGroup, and what each
error code does to the member (Java's rules). `GroupMembership`
(membership.py) drives it; its commits are commits.py's.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import trio

from riverlog.client.cluster import Cluster
from riverlog.client.config import ConsumerConfig
from riverlog.client.connection import BrokerConnection, jittered_backoff
from riverlog.client.errors import ClientError, KafkaConnectionError, KafkaTimeoutError
from riverlog.client.group.assignors import ASSIGNORS, COOPERATIVE, CooperativeStickyAssignor
from riverlog.client.group.consumer_protocol import Subscription, decode_assignment, decode_subscription, encode_assignment
from riverlog.client.group.consumer_protocol import encode_subscription
from riverlog.client.protocol.api_keys import ApiKey
from riverlog.client.protocol.errors import ErrorCode, KafkaError, error_for_code
from riverlog.client.types import TopicPartition

log = logging.getLogger("riverlog.client")

FIND_COORDINATOR, JOIN_GROUP, HEARTBEAT = ApiKey.FIND_COORDINATOR, ApiKey.JOIN_GROUP, ApiKey.HEARTBEAT
LEAVE_GROUP, SYNC_GROUP = ApiKey.LEAVE_GROUP, ApiKey.SYNC_GROUP
PROTOCOL_TYPE = "consumer"
_COORDINATOR_GONE = frozenset({ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE})

Callback = Callable[[set[TopicPartition]], "Awaitable[None] | None"]


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


class GroupMember:
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

    def _partition_counts(self, topics: Iterable[str]) -> dict[str, int]:
        out = {}
        for t in topics:
            info = self.cluster.metadata.topics.get(t)
            if info is not None and info.error_code == 0 and info.partitions:
                out[t] = len(info.partitions)
        return out

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
