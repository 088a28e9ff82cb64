"""Reading record batches v2: a zero-copy view of one batch, and a walker.

The byte layout of the header is in :mod:`client.records.layout`. After the
61-byte header comes the records area (compressed as one stream when the
codec bits are set); each record inside it is::

    length varint | attributes int8 | timestampDelta varlong | offsetDelta varint
    | keyLength varint | key | valueLength varint | value
    | headerCount varint | headerCount x (keyLength varint, UTF-8 key,
                                          valueLength varint, value)

(zigzag varints; length -1 means null). native.decode_records decodes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import crc32c

from riverlog import native
from riverlog.client.records import layout
from riverlog.client.records.compression import DEFAULT_MAX_OUTPUT_BYTES, decompress
from riverlog.client.records.errors import CorruptRecordError
from riverlog.client.records.layout import (
    BATCH_HEADER_BYTES,
    LOG_OVERHEAD,
    MAGIC,
    MIN_BATCH_LENGTH,
    Compression,
    TimestampType,
)

_MAGIC = layout.header_struct("magic")
_LENGTH = layout.header_struct("batch_length")


def _header_field(name: str, doc: str) -> property:
    """A property reading one header field from the view each time."""
    unpack_from = layout.header_struct(name).unpack_from
    offset = layout.HEADER_FIELDS[name][0]

    def get(self: RecordBatch) -> int:
        return unpack_from(self._buf, offset)[0]

    return property(get, doc=doc)


def _attribute_bit(mask: int, doc: str) -> property:
    return property(lambda self: bool(self.attributes & mask), doc=doc)


class Record(NamedTuple):
    """One record as read from a batch, with absolute offset and timestamp."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def _byte_view(data) -> memoryview:
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class RecordBatch:
    """A read-only view over the bytes of exactly one batch; nothing is copied.

    Header fields are read from the buffer on each access, so a view over a
    bytearray sees a later pack_into of baseOffset or leader epoch. The
    constructor only requires the 61 header bytes; :meth:`validate` checks
    magic, length and CRC, and :meth:`records` checks magic and length always
    and the CRC unless told not to.
    """

    __slots__ = ("_buf",)

    def __init__(self, data) -> None:
        buf = _byte_view(data)
        if len(buf) < BATCH_HEADER_BYTES:
            raise CorruptRecordError(
                f"record batch needs {BATCH_HEADER_BYTES} header bytes, got {len(buf)}"
            )
        self._buf = buf

    @property
    def buffer(self) -> memoryview:
        """The batch's bytes."""
        return self._buf

    base_offset = _header_field("base_offset", "int64; the leader assigns it")
    batch_length = _header_field("batch_length", "int32: bytes after this field")
    partition_leader_epoch = _header_field("partition_leader_epoch", "int32; the leader stamps it")
    magic = _header_field("magic", "int8: 2 for this format")
    crc = _header_field("crc", "uint32: the stored CRC-32C")
    attributes = _header_field("attributes", "int16: codec and flag bits")
    last_offset_delta = _header_field("last_offset_delta", "int32: last offset - base")
    base_timestamp = _header_field("base_timestamp", "int64: first record's timestamp, or the delete horizon")
    max_timestamp = _header_field("max_timestamp", "int64: largest record timestamp")
    producer_id = _header_field("producer_id", "int64; -1 unless idempotent")
    producer_epoch = _header_field("producer_epoch", "int16; -1 unless idempotent")
    base_sequence = _header_field("base_sequence", "int32; -1 unless idempotent")
    records_count = _header_field("records_count", "int32: records in the batch")

    is_transactional = _attribute_bit(layout.ATTR_TRANSACTIONAL, "attribute bit 4")
    is_control = _attribute_bit(layout.ATTR_CONTROL, "attribute bit 5")
    has_delete_horizon = _attribute_bit(layout.ATTR_DELETE_HORIZON, "attribute bit 6")

    @property
    def compression(self) -> Compression:
        """The codec; CorruptRecordError for the unassigned ids 5-7."""
        codec = self.attributes & layout.ATTR_CODEC_MASK
        try:
            return Compression(codec)
        except ValueError:
            raise CorruptRecordError(f"unknown compression codec id {codec}") from None

    @property
    def timestamp_type(self) -> TimestampType:
        return TimestampType(bool(self.attributes & layout.ATTR_TIMESTAMP_TYPE))

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1

    @property
    def last_sequence(self) -> int:
        """baseSequence + lastOffsetDelta, wrapping past 2^31-1 to 0 as Kafka does."""
        base = self.base_sequence
        if base == layout.NO_SEQUENCE:
            return layout.NO_SEQUENCE
        delta = self.last_offset_delta
        if base > layout.INT32_MAX - delta:
            return delta - (layout.INT32_MAX - base) - 1
        return base + delta

    @property
    def size_in_bytes(self) -> int:
        """Whole batch size as the header states it: batchLength + 12."""
        return self.batch_length + LOG_OVERHEAD

    def compute_crc(self) -> int:
        """CRC-32C of bytes [21, end of the view)."""
        return crc32c.crc32c(self._buf[layout.CRC_START:])

    def is_valid_crc(self) -> bool:
        return self.compute_crc() == self.crc

    def validate(self) -> None:
        """Raise CorruptRecordError unless magic is 2, batchLength matches the
        bytes, and the CRC matches. The integrity checks a broker makes before
        appending (header sanity such as recordsCount is a separate policy)."""
        self._check_structure()
        stored, computed = self.crc, self.compute_crc()
        if stored != computed:
            raise CorruptRecordError(
                f"record batch CRC mismatch: stored 0x{stored:08x}, computed 0x{computed:08x}"
            )

    def _check_structure(self) -> None:
        if self.magic != MAGIC:
            raise CorruptRecordError(f"unsupported record batch magic {self.magic} (expected {MAGIC})")
        length = self.batch_length
        if length < MIN_BATCH_LENGTH or length + LOG_OVERHEAD != len(self._buf):
            raise CorruptRecordError(
                f"batchLength {length} disagrees with the {len(self._buf)} bytes of the batch"
            )

    def records(
        self, *, max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES, verify_crc: bool = True
    ) -> list[Record]:
        """Decompress if needed and decode every record.

        Offsets are absolute (baseOffset + offsetDelta); timestamps are
        baseTimestamp + timestampDelta, or maxTimestamp for every record under
        LogAppendTime. Control batches decode like any other (callers skip
        them). Raises CorruptRecordError on any malformed content, including
        a record count that disagrees with recordsCount and offset deltas that
        are not increasing within [0, lastOffsetDelta] (compaction may leave
        gaps, so they need not be consecutive).
        """
        if verify_crc:
            self.validate()
        else:
            self._check_structure()
        codec, area = self.compression, self._buf[BATCH_HEADER_BYTES:]
        raw = area if codec is Compression.NONE else decompress(codec, area, max_output_bytes)
        count = self.records_count
        # Checked before decoding so a hostile count cannot size any allocation.
        if count < 0 or count > len(raw) // layout.MIN_RECORD_BYTES:
            raise CorruptRecordError(
                f"recordsCount {count} impossible for a {len(raw)}-byte records area"
            )
        try:
            decoded = native.decode_records(raw, count)
        except native.RecordDecodeError as e:
            raise CorruptRecordError(f"records do not decode: {e}") from None
        if len(decoded) != count:
            raise CorruptRecordError(f"decoded {len(decoded)} records, recordsCount says {count}")
        return self._to_records(decoded)

    def _to_records(self, decoded) -> list[Record]:
        base_offset = self.base_offset
        last_delta = self.last_offset_delta
        log_append_time = self.timestamp_type is TimestampType.LOG_APPEND_TIME
        base_ts = self.max_timestamp if log_append_time else self.base_timestamp
        out = []
        prev = -1
        for offset_delta, ts_delta, key, value, headers in decoded:
            if not prev < offset_delta <= last_delta:
                raise CorruptRecordError(
                    f"offsetDelta {offset_delta} after {prev} breaks the increasing "
                    f"sequence within lastOffsetDelta {last_delta}"
                )
            prev = offset_delta
            ts = base_ts if log_append_time else base_ts + ts_delta
            out.append(Record(base_offset + offset_delta, ts, key, value, tuple(headers)))
        return out

    def __repr__(self) -> str:
        return (
            f"RecordBatch(base_offset={self.base_offset}, size_in_bytes={self.size_in_bytes}, "
            f"magic={self.magic}, attributes=0x{self.attributes & 0xFFFF:04x}, "
            f"records_count={self.records_count}, last_offset_delta={self.last_offset_delta})"
        )


def iter_batches(data, *, max_batch_bytes: int | None = None) -> Iterator[RecordBatch]:
    """Yield a RecordBatch view for each batch laid end to end in ``data``.

    Stops silently at a trailing partial batch (a Fetch response may end with
    one). Raises CorruptRecordError for a batchLength below the v2 minimum
    (49) or, when ``max_batch_bytes`` is given, a batch larger than it, and
    for a magic other than 2 once the magic byte is present. Only the framing
    is checked here; call ``validate()`` or ``records()`` on each batch.
    """
    view = _byte_view(data)
    end = len(view)
    pos = 0
    while end - pos >= LOG_OVERHEAD:
        length = _LENGTH.unpack_from(view, pos + layout.BATCH_LENGTH_OFFSET)[0]
        if length < MIN_BATCH_LENGTH:
            raise CorruptRecordError(
                f"batch at byte {pos}: batchLength {length} below the v2 minimum {MIN_BATCH_LENGTH}"
            )
        size = length + LOG_OVERHEAD
        if max_batch_bytes is not None and size > max_batch_bytes:
            raise CorruptRecordError(
                f"batch at byte {pos}: {size} bytes exceeds the limit of {max_batch_bytes}"
            )
        if end - pos > layout.MAGIC_OFFSET:
            magic = _MAGIC.unpack_from(view, pos + layout.MAGIC_OFFSET)[0]
            if magic != MAGIC:
                raise CorruptRecordError(f"batch at byte {pos}: unsupported magic {magic}")
        if end - pos < size:
            return
        yield RecordBatch(view[pos : pos + size])
        pos += size
