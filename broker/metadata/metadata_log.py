"""MetadataLog: the durable metadata log, partition ``__cluster_metadata-0``.

A storage :class:`~broker.storage.log.Log` (same segments, indexes, crash
recovery) under ``<dir>/__cluster_metadata-0``. Layout: each ``append`` of
a list of records is one record batch v2, uncompressed, one record per
metadata record (key null, value = ``encode_record``), stamped with the
Raft leader epoch; so an append is atomic: after a crash either all of its
records are there or none. The log never deletes by retention or size and
fsyncs every batch (flush.messages=1). It is always opened as after a crash
(every segment scanned), which is cheap at metadata sizes and means a torn
tail is always cut.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from broker.metadata.records import METADATA_TOPIC, MetadataRecord, decode_record, encode_record
from broker.storage.log import Log
from broker.storage.log_config import LogConfig
from client.records import NewRecord, build_batch, iter_batches

METADATA_DIR = f"{METADATA_TOPIC}-0"
METADATA_LOG_CONFIG = LogConfig(flush_messages=1, retention_ms=-1, retention_bytes=-1)
_READ_BYTES = 1024 * 1024


class MetadataLog:
    def __init__(self, data_dir: Path, config: LogConfig = METADATA_LOG_CONFIG) -> None:
        assert config.flush_messages == 1 and config.retention_ms == -1, "the metadata log keeps and fsyncs all"
        self.log = Log(Path(data_dir) / METADATA_DIR, config, recovery_point=0, clean_shutdown=False)

    @property
    def end_offset(self) -> int:
        """The offset the next record gets (Kafka's log end offset)."""
        return self.log.log_end_offset

    @property
    def latest_epoch(self) -> int:
        """The highest leader epoch in the log, -1 if none."""
        return self.log.epoch_cache.latest_epoch

    def append(self, records: Sequence[MetadataRecord], leader_epoch: int, now_ms: int) -> int:
        """Append ``records`` as one batch, fsynced; return the first record's offset."""
        if not records:
            raise ValueError("an append needs at least one record")
        batch = build_batch([NewRecord(None, encode_record(r), now_ms) for r in records])
        info = self.log.append_as_leader(batch, leader_epoch, now_ms)
        assert info.last_offset - info.first_offset + 1 == len(records)
        return info.first_offset

    def replay(self, start_offset: int = 0) -> Iterator[tuple[int, MetadataRecord]]:
        """Every (offset, record) from ``start_offset`` to the log end, in order.

        A record that does not decode means the log is corrupt past what
        recovery checks (the CRC passed): ValueError, with its offset.
        """
        offset = max(start_offset, self.log.log_start_offset)
        while offset < self.log.log_end_offset:
            data = self.log.read(offset, _READ_BYTES)
            if data.slice is None:
                return
            progressed = False
            for batch in iter_batches(data.slice.read()):
                if batch.next_offset <= offset:
                    continue
                progressed = True
                if not batch.is_control:
                    for rec in batch.records():
                        if rec.offset < offset:
                            continue
                        try:
                            yield rec.offset, decode_record(rec.value or b"")
                        except ValueError as e:
                            raise ValueError(f"{METADATA_DIR} offset {rec.offset}: {e}") from None
                offset = batch.next_offset
            assert progressed, f"no batch readable at offset {offset}"

    def close(self) -> None:
        self.log.close(flush=True)
