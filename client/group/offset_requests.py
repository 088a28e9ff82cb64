"""OffsetCommit and OffsetFetch bodies for one group, across versions.

Pure: builds request dicts and reads responses into per-partition results.
OffsetFetch v8+ batches groups (`groups` replaces `group_id`/`topics`);
both shapes are handled so the consumer works against any Kafka.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from riverlog.client.protocol.api_keys import ApiKey
from riverlog.client.types import TopicPartition

OFFSET_COMMIT = ApiKey.OFFSET_COMMIT
OFFSET_FETCH = ApiKey.OFFSET_FETCH


def _by_topic(tps: Iterable[TopicPartition]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for tp in tps:
        out[tp.topic].append(tp.partition)
    return out


def commit_request(group_id: str, generation: int, member_id: str, group_instance_id: str | None,
                   offsets: Mapping[TopicPartition, int]) -> dict:  # fmt: skip
    """Generation -1 and member "" commit outside any generation (manual
    assignment with a group id), as Java's simple consumer does."""
    topics: dict[str, list[dict]] = defaultdict(list)
    for tp, offset in offsets.items():
        topics[tp.topic].append({"partition_index": tp.partition, "committed_offset": offset,
                                 "committed_leader_epoch": -1, "committed_metadata": ""})  # fmt: skip
    return {
        "group_id": group_id, "generation_id_or_member_epoch": generation, "member_id": member_id,
        "group_instance_id": group_instance_id, "retention_time_ms": -1,
        "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()],
    }  # fmt: skip


def commit_errors(response: dict) -> dict[TopicPartition, int]:
    """Per-partition error codes (0 included)."""
    return {TopicPartition(t["name"], p["partition_index"]): p["error_code"]
            for t in response["topics"] for p in t["partitions"]}  # fmt: skip


def fetch_request(version: int, group_id: str, tps: Iterable[TopicPartition]) -> dict:
    topics = [{"name": t, "partition_indexes": ps} for t, ps in _by_topic(tps).items()]
    if version >= 8:
        return {"groups": [{"group_id": group_id, "topics": topics}], "require_stable": True}
    return {"group_id": group_id, "topics": topics, "require_stable": True}


def fetch_result(version: int, response: dict) -> tuple[int, dict[TopicPartition, tuple[int, int]]]:
    """(group error code, {tp: (committed offset or -1, partition error code)})."""
    if version >= 8:
        group = response["groups"][0]
        error, topics = group.get("error_code", 0), group["topics"]
    else:
        error, topics = response.get("error_code", 0), response["topics"]
    return error, {TopicPartition(t["name"], p["partition_index"]): (p["committed_offset"], p["error_code"])
                   for t in topics for p in t["partitions"]}  # fmt: skip
