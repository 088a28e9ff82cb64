"""Validation and offset assignment of incoming record batches (pure, no I/O).

This is the only place the broker looks at batch bytes on the append path:
the native scanner checks bounds and magic, ``crc32c`` checks each batch's
CRC over bytes [21, end), and a leader's append then walks each batch's
records (``check_records``: one native call per batch, decompressing a
compressed one first), as Kafka's broker does, so that no batch a consumer
cannot read is ever appended. Offsets are assigned by overwriting the
baseOffset (bytes 0-8) and partitionLeaderEpoch (12-16) fields, which lie
outside the CRC; records are never copied.
"""

from __future__ import annotations


from crc32c import crc32c

from riverlog import native
from riverlog.broker.storage.errors import CorruptRecordError, InvalidRecordError, RecordTooLargeError
from riverlog.client.records import compression
from riverlog.client.records.errors import CorruptRecordError as StreamError
from riverlog.client.records.errors import DecompressedTooLargeError
from riverlog.client.records.layout import ATTR_TIMESTAMP_TYPE as TIMESTAMP_TYPE_BIT
from riverlog.client.records.layout import ATTR_CODEC_MASK, ATTRIBUTES_OFFSET, BATCH_HEADER_BYTES, CRC_OFFSET, MAX_TIMESTAMP_OFFSET
from riverlog.client.records.layout import LOG_OVERHEAD, header_struct
from riverlog.native import BatchInfo

_MAX_TIMESTAMP = header_struct("max_timestamp")
_CRC = header_struct("crc")
_ATTRIBUTES = header_struct("attributes")
_PREFIX = header_struct("base_offset", "batch_length", "partition_leader_epoch")  # the leader rewrites these
_HEADER = header_struct("base_offset", "batch_length", "partition_leader_epoch", "magic", "crc", "last_offset_delta",
                        "max_timestamp", "records_count")  # fmt: skip
_new = tuple.__new__  # builds a BatchInfo without its Python-level __new__ (hot path)
# Bounds the scanner's result list; a larger buffer is scanned in rounds.
_SCAN_ROUND = 4096
_MAX_SCAN_BYTES = 2**31 - 1  # max.message.bytes is checked here, to tell it apart


def validate_batches(buf: bytes | bytearray | memoryview, max_batch_bytes: int) -> list[BatchInfo]:
    """Header facts of every batch in ``buf``, which must hold whole, valid batches only.

    Raises CorruptRecordError for a torn, mis-sized or non-v2 batch or a CRC
    mismatch, RecordTooLargeError for a batch above ``max_batch_bytes``,
    InvalidRecordError for a negative lastOffsetDelta.
    """
    view = memoryview(buf)
    size = len(view)
    if size >= BATCH_HEADER_BYTES:
        header = _HEADER.unpack_from(view)
        if header[1] + LOG_OVERHEAD == size:
            return _validate_one(view, size, max_batch_bytes, header)
    return _validate_scanned(view, size, max_batch_bytes)


def _validate_one(view: memoryview, size: int, max_batch_bytes: int, header: tuple) -> list[BatchInfo]:
    """``validate_batches`` for a buffer that is exactly one batch (what a
    produce request carries per partition): the same checks, in the same
    order and with the same errors as the scan, from one header unpack. A
    call into the native scanner costs more than this on a small batch."""
    base_offset, _length, epoch, magic, crc, last_offset_delta, max_timestamp, records_count = header
    if size > _MAX_SCAN_BYTES:
        raise CorruptRecordError(f"record data {_SCAN_FAULTS[native.SCAN_BAD_LENGTH]} (at byte 0)")
    if magic != 2:
        raise CorruptRecordError(f"record data {_SCAN_FAULTS[native.SCAN_BAD_MAGIC]} (at byte 0)")
    _check_batch(view, size, last_offset_delta, crc, max_batch_bytes, 0)
    return [_new(BatchInfo, (0, size, base_offset, last_offset_delta, records_count, max_timestamp, epoch))]


def _check_batch(batch: memoryview, length: int, last_offset_delta: int, crc: int, max_batch_bytes: int,
                 at: int) -> None:  # fmt: skip
    """The checks of one whole batch that the scanner leaves to us, in
    order; ``at`` is its position, for the messages."""
    if length > max_batch_bytes:
        raise RecordTooLargeError(f"batch of {length} bytes exceeds max.message.bytes {max_batch_bytes}")
    if last_offset_delta < 0:
        raise InvalidRecordError(f"negative lastOffsetDelta in the batch at byte {at}")
    if crc32c(batch[ATTRIBUTES_OFFSET:length]) != crc:
        raise CorruptRecordError(f"CRC mismatch in the batch at byte {at}")


def _validate_scanned(view: memoryview, size: int, max_batch_bytes: int) -> list[BatchInfo]:
    """``validate_batches`` for any number of batches, by the native scanner."""
    if size == 0:
        raise CorruptRecordError("no record batch")
    infos: list[BatchInfo] = []
    start = 0
    while True:
        chunk = view[start:] if start else view
        found, end, status = native.scan_batches(chunk, _SCAN_ROUND, _MAX_SCAN_BYTES)
        for info in found:
            pos = info.position
            crc = _CRC.unpack_from(chunk, pos + CRC_OFFSET)[0]
            _check_batch(chunk[pos:], info.length, info.last_offset_delta, crc, max_batch_bytes, start + pos)
        if start:
            found = [info._replace(position=start + info.position) for info in found]
        infos += found
        if status != native.SCAN_OK:
            raise CorruptRecordError(f"record data {_SCAN_FAULTS[status]} (at byte {start + end})")
        start += end
        if start >= size or not found:
            return infos


_SCAN_FAULTS = {
    native.SCAN_TRUNCATED: "ends inside a batch",
    native.SCAN_BAD_MAGIC: "holds a batch whose magic is not 2",
    native.SCAN_BAD_LENGTH: "holds a batch with an impossible length",
}


# A compressed batch is decompressed whole to be walked, so what it may
# inflate to is bounded, or a few KiB of zstd could ask for gigabytes: at most
# 64 x max.message.bytes (64 MiB at the default) and never over 256 MiB.
# Producers close a batch long before that (librdkafka at batch.size, 1 MB
# uncompressed; the Java client near max.request.size), and since Produce is
# handled inline, one batch at a time, this is also the most the walk holds.
# Past the bound the batch is refused with MESSAGE_TOO_LARGE.
UNCOMPRESSED_PER_MESSAGE_BYTES = 64
MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024


def max_uncompressed_bytes(max_message_bytes: int) -> int:
    """What one batch's records may decompress to, for a topic's max.message.bytes."""
    return min(UNCOMPRESSED_PER_MESSAGE_BYTES * max_message_bytes, MAX_UNCOMPRESSED_BYTES)


_RECORD_FAULTS = {
    native.RECORDS_MALFORMED: "does not parse (a varint, length or field does not fit its record)",
    native.RECORDS_BAD_OFFSET_DELTA: "has an offset delta out of order (they run 0..lastOffsetDelta)",
    native.RECORDS_BAD_HEADER_KEY: "has a null header key or one that is not UTF-8",
    native.RECORDS_TOO_FEW: "holds fewer records than the batch's recordsCount",
    native.RECORDS_TOO_MANY: "has bytes left after the batch's recordsCount records",
}
_CODEC_NAMES = {1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def check_records(buf: bytes | bytearray | memoryview, info: BatchInfo, max_uncompressed: int) -> None:
    """Walks the records of the batch ``info`` describes in ``buf`` (already
    validated), as Kafka's broker does before it appends: raises
    InvalidRecordError when they do not parse (Kafka's InvalidRecordException
    from its record reader), CorruptRecordError when a compressed stream does
    not decompress, RecordTooLargeError past ``max_uncompressed`` bytes."""
    pos = info.position
    codec = _ATTRIBUTES.unpack_from(buf, pos + ATTRIBUTES_OFFSET)[0] & ATTR_CODEC_MASK
    area = memoryview(buf)[pos + BATCH_HEADER_BYTES : pos + info.length]
    if codec:
        try:
            # One gzip member, as every producer writes: librdkafka's consumer
            # reads only the first, so a batch of several would be read short.
            area = compression.decompress(codec, area, max_uncompressed, gzip_members=1)
        except DecompressedTooLargeError:
            raise RecordTooLargeError(
                f"the {_CODEC_NAMES.get(codec, codec)} records of the batch at byte {pos} decompress past "
                f"{max_uncompressed} bytes ({UNCOMPRESSED_PER_MESSAGE_BYTES} x max.message.bytes, at most "
                f"{MAX_UNCOMPRESSED_BYTES})"
            ) from None
        except StreamError as e:
            raise CorruptRecordError(f"the records of the batch at byte {pos} do not decompress: {e}") from None
    count = info.records_count
    if count < 0:
        raise InvalidRecordError(f"negative recordsCount {count} in the batch at byte {pos}")
    status, index = native.check_records(area, count)
    if status != native.RECORDS_OK:
        where = "uncompressed" if not codec else f"{_CODEC_NAMES.get(codec, codec)}-decompressed"
        raise InvalidRecordError(
            f"the {where} records area of the batch at byte {pos} {_RECORD_FAULTS[status]}, at record {index}"
        )


def assign_offsets(
    buf: bytes | bytearray | memoryview,
    infos: list[BatchInfo],
    first_offset: int,
    leader_epoch: int,
    append_time_ms: int | None,
) -> tuple[list[bytes | memoryview], list[BatchInfo]]:
    """Offsets from ``first_offset`` on and ``leader_epoch`` for each batch, without copying.

    Returns the bytes to write as a list of pieces (for ``os.pwritev``): per
    batch a fresh 16-byte prefix (baseOffset, batchLength, partitionLeaderEpoch)
    and a view of the rest of the batch as received. With ``append_time_ms``
    (topics with LogAppendTime) the timestamp type bit and maxTimestamp, which
    are inside the CRC, change too: only then is a batch copied and its CRC
    recomputed. Also returns the infos as written.
    """
    view = memoryview(buf)
    pieces: list[bytes | memoryview] = []
    out = []
    offset = first_offset
    for info in infos:
        pos, end = info.position, info.position + info.length
        prefix = _PREFIX.pack(offset, info.length - LOG_OVERHEAD, leader_epoch)
        max_ts = info.max_timestamp
        if append_time_ms is None:
            pieces += (prefix, view[pos + _PREFIX.size : end])
        else:
            batch = bytearray(view[pos:end])
            batch[: _PREFIX.size] = prefix
            attrs = _ATTRIBUTES.unpack_from(batch, ATTRIBUTES_OFFSET)[0] | TIMESTAMP_TYPE_BIT
            _ATTRIBUTES.pack_into(batch, ATTRIBUTES_OFFSET, attrs)
            _MAX_TIMESTAMP.pack_into(batch, MAX_TIMESTAMP_OFFSET, append_time_ms)
            _CRC.pack_into(batch, CRC_OFFSET, crc32c(memoryview(batch)[ATTRIBUTES_OFFSET:]))
            pieces.append(batch)
            max_ts = append_time_ms
        out.append(_new(BatchInfo, (pos, info.length, offset, info.last_offset_delta, info.records_count, max_ts, leader_epoch)))
        offset += info.last_offset_delta + 1
    return pieces, out
