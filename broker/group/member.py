"""One member of a classic group (Kafka's MemberMetadata)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .config import NEW_MEMBER_JOIN_TIMEOUT_MS


class Waiter(NamedTuple):
    """A delayed JoinGroup or SyncGroup: whom to answer, in which version."""

    handle: Any
    version: int


@dataclass(eq=False)
class Member:
    member_id: str
    group_instance_id: str | None     # set: a static member (KIP-345)
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]  # (name, metadata), in the member's preference order
    assignment: bytes = b""
    # The generation `assignment` was handed out for; -1 when reset. Invariant:
    # a STABLE group's members all carry its generation_id here.
    assignment_generation_id: int = -1
    last_heartbeat_ms: int = 0
    join_waiter: Waiter | None = None   # set: awaiting the JoinGroup response
    sync_waiter: Waiter | None = None   # set: awaiting the SyncGroup response
    is_new: bool = False                # joined, has not completed a rebalance yet
    protocol_names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.protocol_names = frozenset(name for name, _ in self.protocols)

    def set_protocols(self, protocols: list[tuple[str, bytes]]) -> None:
        self.protocols = protocols
        self.protocol_names = frozenset(name for name, _ in protocols)

    @property
    def is_awaiting_join(self) -> bool:
        return self.join_waiter is not None

    @property
    def is_awaiting_sync(self) -> bool:
        return self.sync_waiter is not None

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    def metadata(self, protocol_name: str) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol_name:
                return metadata
        raise KeyError(f"member {self.member_id} does not support protocol {protocol_name}")

    def matches(self, protocols: list[tuple[str, bytes]]) -> bool:
        return [(n, bytes(m)) for n, m in protocols] == [(n, bytes(m)) for n, m in self.protocols]

    def vote(self, candidates: set[str]) -> str:
        """The member's most preferred protocol among `candidates`."""
        for name, _ in self.protocols:
            if name in candidates:
                return name
        raise ValueError(f"member {self.member_id} supports none of {sorted(candidates)}")

    def session_deadline_ms(self) -> int | None:
        """When the member expires without news; None while it is kept alive.

        Kafka's shouldKeepAlive: a member waiting in JoinGroup lives until the
        rebalance completes (new members at most NEW_MEMBER_JOIN_TIMEOUT_MS);
        a member waiting in SyncGroup lives until the assignment arrives.
        """
        if self.join_waiter is not None:
            return self.last_heartbeat_ms + NEW_MEMBER_JOIN_TIMEOUT_MS if self.is_new else None
        if self.sync_waiter is not None:
            return None
        return self.last_heartbeat_ms + self.session_timeout_ms
