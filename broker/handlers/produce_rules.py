"""Produce's per-batch header rules, as Kafka applies them (pure, headers only).

The storage engine checks bounds, magic and CRC when it appends; these are
the rules on top that a producer's batch must follow (Kafka's
LogValidator): base offset 0, at least one record, lastOffsetDelta + 1 ==
recordsCount, not a control batch, a known codec, zstd only from Produce v7,
a base sequence when a producer id is set.
"""

from __future__ import annotations

from riverlog.client.protocol import ErrorCode
from riverlog.client.records.layout import ATTR_CODEC_MASK, ATTR_CONTROL, BATCH_HEADER_BYTES, MAGIC, Compression
from riverlog.client.records.layout import header_struct

_HEADER = header_struct("base_offset", "batch_length", "magic", "crc", "attributes", "last_offset_delta",
                        "producer_id", "producer_epoch", "base_sequence", "records_count")  # fmt: skip
_ZSTD = int(Compression.ZSTD)  # bound once: an enum member costs a lookup per use


def check_produce_batch(batch: memoryview, produce_version: int) -> tuple[int, str | None]:
    """(error code, message) for one batch of a Produce request; NONE if acceptable.

    ``batch`` holds exactly one batch whose length was already checked.
    """
    if len(batch) < BATCH_HEADER_BYTES:
        return ErrorCode.CORRUPT_MESSAGE, "batch shorter than its header"
    base_offset, _len, magic, _crc, attributes, last_offset_delta, producer_id, _epoch, base_sequence, count = (
        _HEADER.unpack_from(batch)
    )
    if magic != MAGIC:
        return ErrorCode.INVALID_RECORD, f"Produce v3+ carries record batches of magic 2, not {magic}"
    codec = attributes & ATTR_CODEC_MASK
    if codec > _ZSTD:
        return ErrorCode.INVALID_RECORD, f"unknown compression codec {codec}"
    if codec == _ZSTD and produce_version < 7:
        return ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, "zstd needs Produce v7 or later"
    if attributes & ATTR_CONTROL:
        return ErrorCode.INVALID_RECORD, "clients may not produce control batches"
    if base_offset != 0:
        return ErrorCode.INVALID_RECORD, f"a producer's batch must have base offset 0, not {base_offset}"
    if count <= 0 or last_offset_delta + 1 != count:
        return ErrorCode.INVALID_RECORD, f"recordsCount {count} does not match lastOffsetDelta {last_offset_delta}"
    if producer_id >= 0 and base_sequence < 0:
        return ErrorCode.INVALID_RECORD, "an idempotent batch needs a base sequence"
    return ErrorCode.NONE, None
