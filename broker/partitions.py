"""Partitions: the partitions this broker holds, as the request path sees them
and as the metadata makes them (Kafka's ReplicaManager, for one replica).

- For requests: a partition and its log if this broker leads it, or the
  error a client gets (``led_partition``); the high watermark; a partition's
  idempotence state; a wake-up for fetches waiting for new data.
- Following the metadata: the logs of the partitions this broker holds a
  replica of are created (with their topic id written), those it no longer
  holds deleted, topic configs pushed to the logs (``apply_metadata``, on
  every image change). A partition whose log could not be created is
  offline (``offline_logs``) until ``retry_offline_logs`` makes it.
  (Leading is read from the image at each request.)

No task of its own: ``Broker`` calls ``retry_offline_logs`` and
``retry_offline_dirs`` from its timers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from riverlog.broker.metadata.image import MetadataImage, PartitionImage, changed_partitions
from riverlog.broker.producer_state import ProducerStateManager, log_producer_batches
from riverlog.broker.storage.errors import StorageError, TooManyOpenFilesError
from riverlog.broker.storage.log import Log, parse_partition_dir
from riverlog.broker.storage.log_config import LogConfig
from riverlog.broker.storage.partition_metadata import read_topic_id, write_topic_id
from riverlog.client.protocol import ErrorCode

if TYPE_CHECKING:
    from riverlog.broker.config import BrokerConfig
    from riverlog.broker.services import MetadataView
    from riverlog.broker.storage.log_manager import LogManager

log = logging.getLogger(__name__)

OFFLINE_LOG_RETRY_S = 1.0  # a partition whose log could not be created is tried again this often


class Partitions:
    def __init__(self, config: BrokerConfig, log_manager: LogManager, metadata: MetadataView) -> None:
        self.config = config
        self.log_manager = log_manager
        self.metadata = metadata
        self._appended = trio.lowlevel.ParkingLot()  # fetches waiting for new data
        self._producer_states: dict[tuple[str, int], tuple[Log, ProducerStateManager]] = {}
        # Partitions given to this broker whose log could not be created (out
        # of descriptors, say): offline, tried again every OFFLINE_LOG_RETRY_S.
        self.offline_logs: set[tuple[str, int]] = set()

    # -- for requests ------------------------------------------------------------

    def partition(self, topic: str, index: int) -> tuple[PartitionImage, Log] | None:
        """The partition's metadata and log, if this broker has it."""
        t = self.metadata.image.topics.get(topic)
        part = t.partitions.get(index) if t is not None else None
        if part is None:
            return None
        plog = self.log_manager.get_log(topic, index)
        return None if plog is None else (part, plog)

    def led_partition(self, topic: str, index: int) -> tuple[tuple[PartitionImage, Log] | None, ErrorCode]:
        """The partition and its log if this broker leads it; else None and
        the error a client gets: UNKNOWN_TOPIC_OR_PARTITION, or
        NOT_LEADER_OR_FOLLOWER (another broker leads it, or nobody does
        now), after which clients refresh their metadata and go there; or
        KAFKA_STORAGE_ERROR when it is in an offline log directory. (With one
        replica there is nobody to move the leadership to, so the controller
        is not told, as Kafka would: the leader answers the error itself.)"""
        found = self.partition(topic, index)
        if found is not None and found[0].leader == self.config.node_id:
            if self.log_manager.is_offline(topic, index):
                return None, ErrorCode.KAFKA_STORAGE_ERROR
            return found, ErrorCode.NONE
        t = self.metadata.image.topics.get(topic)
        if t is None or index not in t.partitions:
            return None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        if t.partitions[index].leader == self.config.node_id and (
            (topic, index) in self.offline_logs or self.log_manager.is_offline(topic, index)
        ):
            return None, ErrorCode.KAFKA_STORAGE_ERROR  # led here, but its log is not open (yet) or its disk failed
        return None, ErrorCode.NOT_LEADER_OR_FOLLOWER

    def high_watermark(self, plog: Log) -> int:
        """The offset below which records are committed: with one replica
        (this broker, until replication lands), everything appended."""
        return plog.log_end_offset

    def topic_config(self, topic: str) -> LogConfig:
        t = self.metadata.image.topics.get(topic)
        overrides = dict(t.configs) if t is not None else {}
        return LogConfig.from_properties(overrides, base=self.config.log_defaults)

    def producer_state(self, topic: str, index: int, plog: Log) -> ProducerStateManager:
        """The idempotence state of a partition, rebuilt from its log on first use.

        Rebuilt again when the log is another one (the topic was deleted and
        created again) or ends below what the state has seen (truncated).
        """
        cached = self._producer_states.get((topic, index))
        if cached is not None and cached[0] is plog and plog.log_end_offset >= cached[1].end_offset:
            return cached[1]
        state = ProducerStateManager()
        state.rebuild_from(log_producer_batches(plog))
        self._producer_states[(topic, index)] = (plog, state)
        return state

    def notify_appended(self) -> None:
        if self._appended:  # (every produce comes here; usually no fetch waits)
            self._appended.unpark_all()

    async def wait_appended(self) -> None:
        await self._appended.park()

    # -- following the metadata ------------------------------------------------

    def start(self, image: MetadataImage) -> None:
        """At start-up, before the first request: the logs on disk checked
        against ``image`` (``drop_stale_logs``), then made to match it."""
        for name in image.topics:  # configs first, so logs open with them
            self.log_manager.update_config(name, self.topic_config(name))
        self.drop_stale_logs(image)
        self.apply_metadata(MetadataImage.empty(image.cluster_id, self.config.node_id), image)

    def drop_stale_logs(self, image: MetadataImage) -> None:
        """At start-up, before acting on the image: delete the partition logs
        on disk that the metadata does not give this broker, or that belong
        to an earlier topic of the same name (deleted, maybe re-created,
        while this broker was down): their records must not come back."""
        me = self.config.node_id
        for plog in list(self.log_manager.all_logs()):
            topic, index = parse_partition_dir(plog.dir.name)
            t = image.topics.get(topic)
            part = t.partitions.get(index) if t is not None else None
            try:
                with self.log_manager.failures.guard(plog.dir.parent, f"reading the topic id of {plog.name}"):
                    recorded = read_topic_id(plog.dir)
            except StorageError:
                continue  # its directory is offline: checked when it comes back
            except TooManyOpenFilesError as e:
                # Kept until the next start checks it: raising here would leave the
                # logs missing from a directory back from a want of space unmade.
                log.warning("could not check %s against the metadata: %s", plog.dir, e)
                continue
            if part is None or me not in part.replicas or (recorded is not None and recorded != t.topic_id):
                log.warning("deleting %s: the metadata does not give this broker that partition of that topic",
                            plog.dir)  # fmt: skip
                self.log_manager.delete_log(topic, index)
                self._producer_states.pop((topic, index), None)
            elif recorded is None:
                self.ensure_log(topic, index, t.topic_id)  # a directory from before partition.metadata

    def ensure_log(self, topic: str, index: int, topic_id) -> bool:
        """Create (or open) the log of a partition this broker holds, with its
        topic id written. In an offline directory the partition answers
        KAFKA_STORAGE_ERROR until the directory is back (the failure is logged
        there, once). Any other failure (out of descriptors, say) takes this
        partition offline, not the broker: logged, and tried again by
        ``retry_offline_logs``."""
        try:
            plog = self.log_manager.get_or_create_log(topic, index, self.topic_config(topic))
            with self.log_manager.failures.guard(plog.dir.parent, f"writing the topic id of {plog.name}"):
                if read_topic_id(plog.dir) != topic_id:
                    write_topic_id(plog.dir, topic_id)
        except StorageError:
            return False  # its directory is offline: retry_offline_dirs makes it when it is back
        except Exception as e:  # noqa: BLE001 - one partition's fault must not stop the others
            if (topic, index) not in self.offline_logs:
                log.error("%s-%d is offline: creating its log failed (%s); trying again every %.0f s",
                          topic, index, e, OFFLINE_LOG_RETRY_S)  # fmt: skip
            self.offline_logs.add((topic, index))
            return False
        if self.offline_logs:
            self.offline_logs.discard((topic, index))
        return True

    def retry_offline_dirs(self) -> bool:
        """Log directories back from a want of space: their logs are reloaded,
        so check them against the metadata again and make what is missing.
        True when a directory came back."""
        back = self.log_manager.retry_offline_dirs()
        if not back:
            return False
        # Rebuilt from the reloaded logs on first use; the other directories'
        # partitions keep theirs (a rebuild reads the whole log).
        for tp in [tp for tp in self._producer_states if self.log_manager.log_dir_of(*tp) in back]:
            del self._producer_states[tp]
        image = self.metadata.image
        self.drop_stale_logs(image)
        me = self.config.node_id
        for name, topic in image.topics.items():
            for index, part in topic.partitions.items():
                if me in part.replicas and self.log_manager.get_log(name, index) is None:
                    self.ensure_log(name, index, topic.topic_id)
        return True

    def apply_metadata(self, old: MetadataImage, new: MetadataImage) -> None:
        """Act on a metadata change: create the logs of the partitions this
        broker holds a replica of, delete those it no longer holds, apply
        configs."""
        me = self.config.node_id
        for change in changed_partitions(old, new):
            had = change.old is not None and me in change.old.replicas
            has = change.new is not None and me in change.new.replicas
            if had and not has:
                self.log_manager.delete_log(change.topic, change.partition)
                self._producer_states.pop((change.topic, change.partition), None)
            elif has and not had:
                self.ensure_log(change.topic, change.partition, change.topic_id)
        for name, topic in new.topics.items():
            before = old.topics.get(name)
            if before is not None and before.configs != topic.configs:
                self.log_manager.update_config(name, self.topic_config(name))

    def retry_offline_logs(self) -> None:
        """Try again to make the logs of ``offline_logs`` (every OFFLINE_LOG_RETRY_S)."""
        me = self.config.node_id
        image = self.metadata.image
        for topic, index in sorted(self.offline_logs):
            t = image.topics.get(topic)
            part = t.partitions.get(index) if t is not None else None
            if part is None or me not in part.replicas:
                self.offline_logs.discard((topic, index))  # no longer ours
            elif self.ensure_log(topic, index, t.topic_id):
                log.info("%s-%d is online: its log is open", topic, index)
