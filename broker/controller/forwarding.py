"""ControllerChannel: a broker's requests to the active controller.

Clients may send admin requests (CreateTopics and friends) to any broker,
and every broker registers and heartbeats with the active controller: the
Raft leader of the metadata quorum. When that is this node, ``send`` runs
the request here (``local``); otherwise it goes to the leader's controller
listener (its address is in ``controller.quorum.voters``), with Kafka's
encoding, one request at a time per link.

The leader is whoever this node's Raft core knows (voters and observers
both learn it from the quorum). While it is unknown, or the link fails, or
the node there answers that it does not lead any more (it closes the
connection), ``send`` waits a little and tries again until its timeout,
then raises ControllerUnavailable.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import trio

from .quorum_rpc import PeerLink
from .raft_driver import RaftDriver

log = logging.getLogger(__name__)

_RETRY_S = 0.05

Local = Callable[[int, int, dict], Awaitable[dict | None]]


class ControllerUnavailable(Exception):
    """No active controller answered within the timeout."""


class ControllerChannel:
    def __init__(self, driver: RaftDriver, voters: Mapping[int, tuple[str, int]], local: Local) -> None:
        self.driver = driver
        self.voters = dict(voters)
        self.local = local  # runs a request on this node when it is the active controller
        # (leader, lane) -> link: heartbeats ride their own ("lifecycle"), so
        # they never queue behind a forwarded admin request.
        self._links: dict[tuple[int, str], PeerLink] = {}
        self._locks: dict[tuple[int, str], trio.Lock] = {}

    @property
    def active_controller(self) -> int:
        """The node id of the active controller as this node knows it; -1: unknown."""
        return self.driver.core.leader_id

    def is_local(self) -> bool:
        return self.driver.core.is_leader

    async def send(self, api_key: int, version: int, body: dict, timeout_s: float, lane: str = "admin") -> dict:
        logged = False
        with trio.move_on_after(timeout_s):
            while True:
                leader = self.driver.core.leader_id
                if self.driver.core.is_leader:
                    try:
                        answer = await self.local(api_key, version, body)
                    except Exception:  # noqa: BLE001 - as a remote controller's fault closes the connection:
                        # retried, never raised into the task that asked (registration, heartbeats,
                        # producer id blocks), which would take the whole broker down
                        (log.debug if logged else log.exception)(
                            "node %d: the active controller (this node) failed api key %d; retrying",
                            self.driver.node_id, api_key)  # fmt: skip
                        logged, answer = True, None
                    if answer is not None:
                        return answer
                elif leader in self.voters:
                    answer = await self._remote((leader, lane), api_key, version, body, timeout_s)
                    if answer is not None:
                        return answer
                await trio.sleep(_RETRY_S)
        raise ControllerUnavailable(f"no active controller answered api key {api_key} within {timeout_s:.1f} s "
                                    f"(the quorum's leader is {self.driver.core.leader_id})")  # fmt: skip

    async def _remote(self, key: tuple[int, str], api_key: int, version: int, body: dict,
                      timeout_s: float) -> dict | None:  # fmt: skip
        leader = key[0]
        link = self._links.get(key)
        if link is None:
            host, port = self.voters[leader]
            link = self._links[key] = PeerLink(host, port, f"broker-{self.driver.node_id}",
                                               max_idle_ms=self.driver.connections_max_idle_ms)  # fmt: skip
            self._locks[key] = trio.Lock()
        async with self._locks[key]:  # one request at a time on a link
            try:
                return await link.request(api_key, version, body, timeout_s)
            except ConnectionError as exc:
                log.debug("node %d -> controller %d: %s", self.driver.node_id, leader, exc)
                return None

    async def aclose(self) -> None:
        for link in self._links.values():
            await link.aclose()
