"""One module per API: each declares its key and version range and a handler.

A handler module defines ``API_KEY``, ``MIN_VERSION``, ``MAX_VERSION`` and
``handle(ctx: RequestContext, request: dict) -> dict | None`` (``None``: no
response is sent, as for Produce with acks=0). ``ctx.services`` is what a
handler may use (broker/services.py: the metadata image, the partitions, the
group service, the controller link, ...), never the ``Broker`` itself; each
handler takes out the services it uses and passes on only those, so its
code says what it depends on. A plain ``def handle`` answers
at once and runs inline in the connection's reader, with no task and no
scheduling round of its own (Produce: the single-record round trip is mostly
scheduling); an ``async def handle`` may wait and runs in a task of its own.
The ApiVersions answer is built from these declarations, so the broker never
advertises what no handler serves.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from riverlog.client.protocol.headers import RequestHeader
from riverlog.client.protocol.messages import APIS

if TYPE_CHECKING:
    from riverlog.broker.services import BrokerServices


class RequestContext(NamedTuple):  # a tuple: made for every request
    services: BrokerServices  # built once by the broker, shared by every request
    header: RequestHeader
    peer: str

    @property
    def api_version(self) -> int:
        return self.header.api_version


Handle = Callable[[RequestContext, dict], "Awaitable[dict | None] | dict | None"]


@dataclass(frozen=True)
class HandlerSpec:
    api_key: int
    min_version: int
    max_version: int
    handle: Handle
    # A handler that waits on other clients (JoinGroup, SyncGroup: until the
    # group's members come, up to their rebalance timeout) must not hold a
    # slot of queued.max.requests meanwhile, or parked joins starve the broker.
    parks: bool = False
    # A plain-function handler: answered inline, never waits (see the module doc).
    inline: bool = False

    async def call(self, ctx: RequestContext, request: dict) -> dict | None:
        """The handler's answer, whichever kind it is."""
        return self.handle(ctx, request) if self.inline else await self.handle(ctx, request)

    def supports(self, version: int) -> bool:
        return self.min_version <= version <= self.max_version


def build_registry(modules: Iterable[ModuleType]) -> dict[int, HandlerSpec]:
    """The handlers by API key, each checked against the protocol tables."""
    registry: dict[int, HandlerSpec] = {}
    for module in modules:
        inline = not inspect.iscoroutinefunction(module.handle)
        if inline and getattr(module, "PARKS", False):
            raise ValueError(f"{module.__name__}: a handler that parks must be async")
        spec = HandlerSpec(module.API_KEY, module.MIN_VERSION, module.MAX_VERSION, module.handle,
                           getattr(module, "PARKS", False), inline)  # fmt: skip
        api = APIS.get(spec.api_key)
        if api is None or not (api.request.is_valid(spec.min_version) and api.request.is_valid(spec.max_version)):
            raise ValueError(f"{module.__name__} declares versions the protocol tables do not have")
        if spec.api_key in registry:
            raise ValueError(f"two handlers for api key {spec.api_key}")
        registry[spec.api_key] = spec
    return registry


def default_modules() -> list[Any]:
    from riverlog.broker.handlers import (
        alter_configs,
        api_versions,
        create_partitions,
        create_topics,
        delete_groups,
        delete_records,
        delete_topics,
        describe_cluster,
        describe_configs,
        describe_groups,
        describe_quorum,
        fetch,
        find_coordinator,
        heartbeat,
        incremental_alter_configs,
        init_producer_id,
        join_group,
        leave_group,
        list_groups,
        list_offsets,
        metadata,
        offset_commit,
        offset_delete,
        offset_fetch,
        produce,
        sync_group,
    )

    return [
        api_versions, metadata, produce, fetch, list_offsets, create_topics, delete_topics,
        create_partitions, describe_configs, alter_configs, incremental_alter_configs, delete_records,
        describe_cluster, describe_quorum, init_producer_id,
        find_coordinator, join_group, sync_group, heartbeat, leave_group, offset_commit, offset_fetch,
        describe_groups, list_groups, delete_groups, offset_delete,
    ]  # fmt: skip
