"""ListOffsets from the client side: earliest, latest or by timestamp, per
partition, each asked of the partition's leader, retried across leader
changes until the operation's deadline. Used by the consumer (seek, reset)
and by the admin client."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import trio

from riverlog.client.cluster import Cluster
from riverlog.client.connection import jittered_backoff
from riverlog.client.errors import KafkaConnectionError, KafkaTimeoutError, UnsupportedVersionError, is_retriable
from riverlog.client.protocol.api_keys import ApiKey
from riverlog.client.protocol.errors import ErrorCode, KafkaError, error_for_code
from riverlog.client.types import OffsetAndTimestamp, TopicPartition

LIST_OFFSETS = ApiKey.LIST_OFFSETS
EARLIEST = -2
LATEST = -1
_SPECS = {"earliest": EARLIEST, "beginning": EARLIEST, "latest": LATEST, "end": LATEST}


def offset_spec(spec: str | int) -> int:
    """'earliest'/'latest' or a timestamp in ms, as ListOffsets' timestamp."""
    if isinstance(spec, str):
        if spec not in _SPECS:
            raise ValueError(f"offset spec must be earliest, latest or a timestamp, got {spec!r}")
        return _SPECS[spec]
    if spec < 0 and spec not in (EARLIEST, LATEST):
        raise ValueError(f"timestamp must be >= 0, got {spec}")
    return spec


async def list_offsets(
    cluster: Cluster,
    specs: Mapping[TopicPartition, str | int],
    *,
    isolation_level: int = 0,
    timeout: float | None = None,
) -> dict[TopicPartition, OffsetAndTimestamp]:
    """The offset for each partition's spec. Raises the partition's Kafka
    error if it is not retriable, KafkaTimeoutError past the deadline."""
    config = cluster.config
    timeout = config.default_api_timeout_ms / 1000 if timeout is None else timeout
    deadline = trio.current_time() + timeout
    wanted = {tp: offset_spec(s) for tp, s in specs.items()}
    found: dict[TopicPartition, OffsetAndTimestamp] = {}
    attempts = 0
    last_error: BaseException | None = None
    while True:
        pending = {tp: ts for tp, ts in wanted.items() if tp not in found}
        if not pending:
            return found
        if trio.current_time() >= deadline:
            raise KafkaTimeoutError(f"ListOffsets did not finish within {timeout:.1f} s (last error: {last_error})")
        errors: list[BaseException] = []
        by_leader: dict[int, dict] = {}
        try:
            with trio.fail_after(max(deadline - trio.current_time(), 0.001)):
                by_leader = await _group_by_leader(cluster, pending)
                async with trio.open_nursery() as nursery:
                    for leader, tps in by_leader.items():
                        if leader >= 0:
                            nursery.start_soon(_ask, cluster, leader, tps, isolation_level, found, errors)
        except trio.TooSlowError:
            # Cut off, maybe while connecting: name an unreachable cluster
            # whichever deadline won (see Cluster.unreachable).
            last_error = cluster.unreachable(timeout) or last_error
            continue
        except (KafkaConnectionError, KafkaTimeoutError) as exc:
            errors.append(exc)
        except KafkaError as exc:  # from the metadata: LEADER_NOT_AVAILABLE while a topic is created...
            if exc.code is ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                raise  # ...but cluster.topic refreshed before saying the topic is unknown
            errors.append(exc)
        for exc in errors:
            if not is_retriable(exc):
                raise exc
        retry = bool(errors) or -1 in by_leader
        last_error = errors[0] if errors else last_error
        if retry:
            attempts += 1
            cluster.invalidate()
            await trio.sleep(min(jittered_backoff(config.retry_backoff_ms, config.retry_backoff_max_ms, attempts),
                                 max(deadline - trio.current_time(), 0)))  # fmt: skip


async def _group_by_leader(cluster: Cluster, pending: Mapping[TopicPartition, int]) -> dict[int, dict]:
    by_leader: dict[int, dict[TopicPartition, int]] = defaultdict(dict)
    for tp, ts in pending.items():
        info = await cluster.topic(tp.topic)
        part = info.partitions.get(tp.partition)
        if part is None:
            raise error_for_code(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)(f"{tp.topic}-{tp.partition}")  # type: ignore[misc]
        by_leader[part.leader][tp] = ts
    return by_leader


async def _ask(cluster: Cluster, leader: int, tps: dict[TopicPartition, int], isolation_level: int,
               found: dict[TopicPartition, OffsetAndTimestamp], errors: list[BaseException]) -> None:  # fmt: skip
    try:
        conn = await cluster.connection(leader)
        version = conn.version_for(LIST_OFFSETS, min_version=1, max_version=7)
        response = await conn.request(LIST_OFFSETS, _request(tps, isolation_level), version=version)
    except (KafkaConnectionError, KafkaTimeoutError, UnsupportedVersionError) as exc:
        errors.append(exc)  # raised, or retried, outside the nursery: never an ExceptionGroup
        return
    assert response is not None
    for t in response["topics"]:
        for p in t["partitions"]:
            tp = TopicPartition(t["name"], p["partition_index"])
            cls = error_for_code(p["error_code"])
            if cls is None:
                found[tp] = OffsetAndTimestamp(p["offset"], p["timestamp"], p.get("leader_epoch", -1))
            else:
                errors.append(cls(f"ListOffsets {tp.topic}-{tp.partition}"))


def _request(tps: dict[TopicPartition, int], isolation_level: int) -> dict:
    """The request body for one leader's partitions."""
    topics: dict[str, list] = defaultdict(list)
    for tp, ts in tps.items():
        topics[tp.topic].append({"partition_index": tp.partition, "timestamp": ts})
    return {
        "replica_id": -1,
        "isolation_level": isolation_level,
        "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()],
    }
