"""What Producer, Consumer and Admin share: a config, a nursery, a Cluster.

Each is an async context manager. Entering opens the nursery that holds the
connections' reader tasks (and any background task of the client);
leaving closes the client and cancels what is left.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import trio

from riverlog.client.cluster import Cluster
from riverlog.client.config import ClientConfig, build_config
from riverlog.client.errors import ClosedError

C = TypeVar("C", bound=ClientConfig)


class ClientBase(Generic[C]):
    config_class: type[C]

    def __init__(self, **options: Any) -> None:
        self.config: C = build_config(self.config_class, options)
        self._nursery_cm: Any = None
        self._nursery: trio.Nursery | None = None
        self._cluster: Cluster | None = None
        self._closed = False

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            raise ClosedError(f"{type(self).__name__} is not open: use 'async with'")
        return self._cluster

    @property
    def nursery(self) -> trio.Nursery:
        assert self._nursery is not None
        return self._nursery

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"{type(self).__name__} is closed")
        if self._cluster is None:
            raise ClosedError(f"{type(self).__name__} is not open: use 'async with'")

    async def __aenter__(self):
        if self._nursery_cm is not None or self._closed:
            raise ClosedError(f"{type(self).__name__} cannot be opened twice")
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        self._cluster = Cluster(self.config, self._nursery)
        try:
            await self._start()
        except BaseException as exc:
            await self._shutdown(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(self, exc_type, exc, tb) -> bool | None:
        if exc_type is None:
            await self._close_gracefully()
        return await self._shutdown(exc_type, exc, tb)

    async def _start(self) -> None:
        """Subclasses: start background tasks once the cluster exists."""

    async def _close_gracefully(self) -> None:
        """Subclasses: finish work (a producer flushes) before closing."""

    async def _shutdown(self, exc_type, exc, tb) -> bool | None:
        if self._closed:
            return None
        self._closed = True
        assert self._nursery is not None and self._cluster is not None
        with trio.CancelScope(shield=True):
            await self._cluster.aclose()
        self._nursery.cancel_scope.cancel()
        # The body's own exception is not handed to the nursery: it would come
        # out wrapped in an ExceptionGroup. It propagates as it is.
        await self._nursery_cm.__aexit__(None, None, None)
        return None
