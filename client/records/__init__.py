"""Record batch v2: read, build, compress. Pure: no I/O, no Trio.

- :class:`RecordBatch` is a zero-copy view of one batch's bytes;
  :func:`iter_batches` walks concatenated batches (a Fetch response's
  records, a log segment's bytes).
- :func:`build_batch` makes the bytes of one batch from :class:`NewRecord`.
- :func:`compress` / :func:`decompress` are the batch codecs, the latter
  bounded against decompression bombs.
- :mod:`client.records.layout` has the header offsets and attribute bits.
"""

from riverlog.client.records.batch import Record, RecordBatch, iter_batches
from riverlog.client.records.builder import NewRecord, build_batch
from riverlog.client.records.compression import DEFAULT_MAX_OUTPUT_BYTES, compress, decompress
from riverlog.client.records.errors import CorruptRecordError
from riverlog.client.records.layout import (
    ATTR_CODEC_MASK,
    ATTR_CONTROL,
    ATTR_DELETE_HORIZON,
    ATTR_TIMESTAMP_TYPE,
    ATTR_TRANSACTIONAL,
    BATCH_HEADER_BYTES,
    LOG_OVERHEAD,
    MAGIC,
    Compression,
    TimestampType,
)

__all__ = [
    "ATTR_CODEC_MASK",
    "ATTR_CONTROL",
    "ATTR_DELETE_HORIZON",
    "ATTR_TIMESTAMP_TYPE",
    "ATTR_TRANSACTIONAL",
    "BATCH_HEADER_BYTES",
    "DEFAULT_MAX_OUTPUT_BYTES",
    "LOG_OVERHEAD",
    "MAGIC",
    "Compression",
    "CorruptRecordError",
    "NewRecord",
    "Record",
    "RecordBatch",
    "TimestampType",
    "build_batch",
    "compress",
    "decompress",
    "iter_batches",
]
