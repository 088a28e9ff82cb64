"""QuorumController: the metadata seam, here a single voter (this broker).

The broker calls the operations below and reads ``image``; the Raft issue
replaces what is under them (a quorum commits the records instead of one
local fsync), not the callers. Each operation is: decide (pure, in
decisions.py), then commit: apply the records to the image (so a record
that would not apply never reaches the log), append them as one fsynced
batch at the current leader epoch, swap the image, tell the listeners.

Not thread-safe and not Trio-aware: the caller serialises operations (the
broker's controller task does, as Kafka's controller event queue does).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence

from broker.metadata.decisions import (
    BrokerResult,
    ConfigResult,
    TopicDefaults,
    TopicResult,
    decide_alter_configs,
    decide_create_partitions,
    decide_create_topics,
    decide_delete_topics,
    decide_register_broker,
)
from broker.metadata.image import MetadataImage
from broker.metadata.metadata_log import MetadataLog
from broker.metadata.records import MetadataRecord

Listener = Callable[[MetadataImage, MetadataImage], None]


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _new_topic_id() -> str:
    return uuid.uuid4().hex


class QuorumController:
    def __init__(
        self,
        metadata_log: MetadataLog,
        node_id: int,
        cluster_id: str,
        *,
        defaults: TopicDefaults = TopicDefaults(),
        clock_ms: Callable[[], int] = _wall_ms,
        new_topic_id: Callable[[], str] = _new_topic_id,
    ) -> None:
        self.log = metadata_log
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.defaults = defaults
        self._clock_ms = clock_ms
        self._new_topic_id = new_topic_id
        self._listeners: list[Listener] = []
        self._image = MetadataImage.empty(cluster_id, node_id)
        self.epoch = -1  # the Raft leader epoch our appends carry; set by start()

    @property
    def image(self) -> MetadataImage:
        return self._image

    def start(self, host: str, port: int, rack: str | None = None) -> MetadataImage:
        """Replay the log into the image, become leader of a new epoch, register this broker."""
        assert self.epoch == -1, "started twice"
        self._image = MetadataImage.empty(self.cluster_id, self.node_id).apply_all(self.log.replay())
        assert self._image.offset == self.log.end_offset - 1 or self.log.end_offset == 0
        # A one-voter election: the new epoch is above every epoch in the log.
        self.epoch = self.log.latest_epoch + 1
        result = self.register_broker(self.node_id, host, port, rack)
        if result.error_code:
            raise ValueError(f"cannot register this broker: {result.error_message}")
        return self._image

    def on_change(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(old_image, new_image)`` after each applied append; returns an unsubscribe."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    # -- operations ------------------------------------------------------------------

    def register_broker(self, node_id: int, host: str, port: int, rack: str | None = None) -> BrokerResult:
        (result,), records = decide_register_broker(self._image, node_id, host, port, rack)
        self._commit(records)
        return result

    def create_topics(
        self, topics: Sequence[tuple[str, int, int, Mapping[str, str | None]]], validate_only: bool = False
    ) -> list[TopicResult]:
        """(name, num_partitions, replication_factor, configs) each; -1 means the broker default."""
        results, records = decide_create_topics(self._image, topics, self.defaults, self._new_topic_id)
        if not validate_only:
            self._commit(records)
        return results

    def delete_topics(self, names: Sequence[str]) -> list[TopicResult]:
        results, records = decide_delete_topics(self._image, names)
        self._commit(records)
        return results

    def create_partitions(self, requests: Sequence[tuple[str, int]], validate_only: bool = False) -> list[TopicResult]:
        """(name, new total partition count) each."""
        results, records = decide_create_partitions(self._image, requests, self.defaults.max_partitions)
        if not validate_only:
            self._commit(records)
        return results

    def alter_configs(self, topic: str, changes: Mapping[str, str | None], validate_only: bool = False) -> ConfigResult:
        """IncrementalAlterConfigs: set each named override, or delete it for None."""
        (result,), records = decide_alter_configs(self._image, topic, changes, self.defaults.log_config)
        if not validate_only:
            self._commit(records)
        return result

    def replace_configs(self, topic: str, configs: Mapping[str, str], validate_only: bool = False) -> ConfigResult:
        """AlterConfigs: ``configs`` becomes the topic's whole set of overrides."""
        (result,), records = decide_alter_configs(
            self._image, topic, configs, self.defaults.log_config, replace=True
        )
        if not validate_only:
            self._commit(records)
        return result

    def close(self) -> None:
        self.log.close()

    # -- commit ----------------------------------------------------------------------

    def _commit(self, records: list[MetadataRecord]) -> None:
        if not records:
            return
        assert self.epoch >= 0, "start() first"
        old = self._image
        first = self.log.end_offset
        new = old.apply_all(zip(range(first, first + len(records)), records))  # before it is durable
        appended_at = self.log.append(records, self.epoch, self._clock_ms())
        assert appended_at == first, (appended_at, first)
        self._image = new
        for listener in list(self._listeners):
            listener(old, new)
