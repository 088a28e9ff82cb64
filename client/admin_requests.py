"""The admin client's request plumbing: deadlines, retries, connections.

`AdminRequests` is what every part of `Admin` (client/admin.py) stands on:
an operation is an ``attempt(deadline)`` run by `_retrying` until it
returns, raises a final error or the deadline passes; `_controller_call`
sends a topic request to the controller and again to a new one. The error
rules (which codes are final, the order errors are raised in) are the
module docstring of client/admin.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from riverlog.client.base import ClientBase
from riverlog.client.config import AdminConfig
from riverlog.client.connection import BrokerConnection, jittered_backoff
from riverlog.client.errors import KafkaConnectionError, KafkaTimeoutError, is_retriable
from riverlog.client.protocol.errors import ErrorCode, KafkaError, error_for_code
from riverlog.client.protocol.messages import APIS

T = TypeVar("T")


def _error(code: int, message: str | None, context: str) -> KafkaError | None:
    """The Kafka exception for a result's code, None for NONE."""
    cls = error_for_code(code)
    if cls is None:
        return None
    return cls(f"{cls.code.name}: {message or context}")


def _topic_context(name: str, code: int) -> str:
    """What to say when the broker gave no error message."""
    if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        return f"topic {name!r} does not exist"
    return f"topic {name!r}"


def _is_final(exc: BaseException) -> bool:
    return not is_retriable(exc) or getattr(exc, "code", None) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def _raise_first(errors: list[tuple[Any, BaseException]], order: list) -> None:
    """Raise the first error in the caller's order (see client/admin.py's docstring)."""
    if errors:
        rank = {key: i for i, key in enumerate(order)}
        raise min(errors, key=lambda e: rank.get(e[0], len(rank)))[1]


class _Retry(Exception):
    """Some results were retriable: send those again after a backoff."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class AdminRequests(ClientBase[AdminConfig]):
    """Retries, deadlines and connections for the admin's requests."""

    async def _retrying(self, what: str, attempt: Callable[[float], Awaitable[T]],
                        timeout_ms: int | None = None) -> T:  # fmt: skip
        """`attempt(deadline)` until it returns, raises a final error, or the
        deadline passes (KafkaTimeoutError naming the last retriable error).
        Each step inside an attempt is bounded by the deadline itself, so a
        failure near it is reported with its own cause."""
        timeout_ms = self.config.default_api_timeout_ms if timeout_ms is None else timeout_ms
        deadline = trio.current_time() + timeout_ms / 1000
        attempts = 0
        while True:
            try:
                return await attempt(deadline)
            except _Retry as retry:
                last: BaseException = retry.cause
            except (KafkaError, KafkaConnectionError, KafkaTimeoutError) as exc:
                if _is_final(exc):
                    raise
                last = exc
            attempts += 1
            self.cluster.invalidate()
            delay = jittered_backoff(self.config.retry_backoff_ms, self.config.retry_backoff_max_ms, attempts)
            if trio.current_time() + delay >= deadline:
                if isinstance(last, KafkaConnectionError):
                    raise last  # "no broker reachable at ...": clearer than a timeout
                raise KafkaTimeoutError(f"{what} did not finish within {timeout_ms / 1000:.1f} s: {last}") from last
            await trio.sleep(delay)

    async def _controller_call(
        self,
        api_key: int,
        names: list[str],
        body: Callable[[int, list[str]], dict],
        results_key: str,
        timeout_ms: int,
        min_version: int = 0,
    ) -> None:
        """One request for `names` to the controller; resend the retriable
        ones (NOT_CONTROLLER: to the new controller) until `timeout_ms`."""
        pending = list(dict.fromkeys(names))
        errors: list[tuple[str, BaseException]] = []

        async def attempt(deadline: float) -> None:
            conn = await self._controller_connection(deadline)
            version = conn.version_for(api_key, min_version=min_version)
            response = await self._request(conn, api_key, body(version, list(pending)), version, deadline)
            retry = None
            for r in response[results_key]:
                exc = _error(r["error_code"], r.get("error_message"), _topic_context(r["name"], r["error_code"]))
                if exc is not None and not _is_final(exc):
                    retry = retry or exc
                    continue
                if exc is not None:
                    errors.append((r["name"], exc))
                if r["name"] in pending:
                    pending.remove(r["name"])
            if retry is not None:
                raise _Retry(retry)

        if pending:
            await self._retrying(APIS[api_key].name, attempt, timeout_ms)
        _raise_first(errors, names)

    async def _controller_connection(self, deadline: float) -> BrokerConnection:
        await self._any_connection(deadline)
        metadata = self.cluster.metadata
        if metadata.controller_id < 0 or self.cluster.is_stale():
            metadata = await self.cluster.refresh([])
        if metadata.controller_id in metadata.brokers:
            return await self._connection(metadata.controller_id, deadline)
        return await self._any_connection(deadline)

    async def _any_connection(self, deadline: float) -> BrokerConnection:
        return await self.cluster.any_connection(timeout=max(deadline - trio.current_time(), 0.001))

    async def _connection(self, node: int, deadline: float) -> BrokerConnection:
        try:
            with trio.fail_at(deadline):
                return await self.cluster.connection(node)
        except trio.TooSlowError:
            raise KafkaTimeoutError(f"connecting to broker {node} did not finish in time") from None

    async def _request(self, conn: BrokerConnection, api_key: int, body: dict, version: int,
                       deadline: float) -> dict:  # fmt: skip
        timeout = min(conn.request_timeout, max(deadline - trio.current_time(), 0.001))
        response = await conn.request(api_key, body, version=version, timeout=timeout)
        assert response is not None
        return response
