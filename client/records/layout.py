"""Record batch v2 (magic 2): header layout, attribute bits and enums.

One batch, all integers big-endian::

    offset size field
         0    8 baseOffset            int64  leader assigns; producers send 0
         8    4 batchLength           int32  bytes after this field (size - 12)
        12    4 partitionLeaderEpoch  int32  leader stamps; producers send -1
        16    1 magic                 int8   2
        17    4 crc                   uint32 CRC-32C of bytes [21, end)
        21    2 attributes            int16  see the ATTR_* bits
        23    4 lastOffsetDelta       int32  last record offset - baseOffset
        27    8 baseTimestamp         int64  first record's timestamp
        35    8 maxTimestamp          int64  largest record timestamp
        43    8 producerId            int64  -1 unless idempotent
        51    2 producerEpoch         int16  -1 unless idempotent
        53    4 baseSequence          int32  -1 unless idempotent
        57    4 recordsCount          int32  stays uncompressed
        61    - records                      one compressed stream if a codec is set

baseOffset, batchLength, partitionLeaderEpoch and magic lie before the CRC'd
range, so a leader assigns offsets and stamps its epoch with a pack_into,
without recomputing the CRC.

Readers do not spell this layout again: they name the fields they read and
``header_struct`` builds their struct from HEADER_FIELDS.
"""

from __future__ import annotations

import enum
import struct

MAGIC = 2

BASE_OFFSET_OFFSET = 0
BATCH_LENGTH_OFFSET = 8
PARTITION_LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
LAST_OFFSET_DELTA_OFFSET = 23
BASE_TIMESTAMP_OFFSET = 27
MAX_TIMESTAMP_OFFSET = 35
PRODUCER_ID_OFFSET = 43
PRODUCER_EPOCH_OFFSET = 51
BASE_SEQUENCE_OFFSET = 53
RECORDS_COUNT_OFFSET = 57
RECORDS_OFFSET = 61

BATCH_HEADER_BYTES = 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: not counted in batchLength
CRC_START = ATTRIBUTES_OFFSET  # the CRC covers [CRC_START, end of batch)
MIN_BATCH_LENGTH = BATCH_HEADER_BYTES - LOG_OVERHEAD  # batchLength of a batch with no records
MAX_BATCH_LENGTH = 2**31 - 1  # batchLength is an int32
# The smallest encoded record: seven one-byte varints (length, attributes,
# timestampDelta, offsetDelta, keyLength, valueLength, headerCount).
MIN_RECORD_BYTES = 7

# Attribute bits (attributes int16 at offset 21).
ATTR_CODEC_MASK = 0x07
ATTR_TIMESTAMP_TYPE = 0x08  # set: LogAppendTime
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
ATTR_DELETE_HORIZON = 0x40  # baseTimestamp holds the compaction delete horizon

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1
NO_TIMESTAMP = -1
INT32_MAX = 2**31 - 1

# Each header field's offset and struct code: what every struct reading or
# writing header fields is built from (header_struct), so none spells the
# layout again.
HEADER_FIELDS: dict[str, tuple[int, str]] = {
    "base_offset": (BASE_OFFSET_OFFSET, "q"),
    "batch_length": (BATCH_LENGTH_OFFSET, "i"),
    "partition_leader_epoch": (PARTITION_LEADER_EPOCH_OFFSET, "i"),
    "magic": (MAGIC_OFFSET, "b"),
    "crc": (CRC_OFFSET, "I"),
    "attributes": (ATTRIBUTES_OFFSET, "h"),
    "last_offset_delta": (LAST_OFFSET_DELTA_OFFSET, "i"),
    "base_timestamp": (BASE_TIMESTAMP_OFFSET, "q"),
    "max_timestamp": (MAX_TIMESTAMP_OFFSET, "q"),
    "producer_id": (PRODUCER_ID_OFFSET, "q"),
    "producer_epoch": (PRODUCER_EPOCH_OFFSET, "h"),
    "base_sequence": (BASE_SEQUENCE_OFFSET, "i"),
    "records_count": (RECORDS_COUNT_OFFSET, "i"),
}


def header_struct(*names: str) -> struct.Struct:
    """A struct for the named header fields, given in header order.

    It starts at the first field: ``s.unpack_from(batch, batch_start +
    PRODUCER_ID_OFFSET)`` for ``header_struct("producer_id",
    "producer_epoch")`` returns the two, in the order named. Gaps between
    fields are pad bytes, skipped when reading; ``pack_into`` would write
    zeros over them, so only a gapless struct may write. Build it once, at
    import: it is the fast path of every reader (a plain struct.Struct: a
    subclass would cost each call an attribute lookup).
    """
    offsets = [HEADER_FIELDS[name][0] for name in names]
    if not names or offsets != sorted(set(offsets)):
        raise ValueError(f"header fields must be named once each, in header order: {names}")
    fmt, end = ">", offsets[0]
    for name, offset in zip(names, offsets):
        code = HEADER_FIELDS[name][1]
        fmt += f"{offset - end}x{code}" if offset > end else code
        end = offset + struct.calcsize(">" + code)
    made = struct.Struct(fmt)
    HEADER_STRUCTS.append((made, names))
    return made


# Every struct header_struct made, with its field names: the test checks each
# reads what the named offsets hold.
HEADER_STRUCTS: list[tuple[struct.Struct, tuple[str, ...]]] = []

# [0, 21): the fields outside the CRC, then the CRC itself.
HEAD_STRUCT = header_struct("base_offset", "batch_length", "partition_leader_epoch", "magic", "crc")
# [21, 61): the CRC'd header fields.
TAIL_STRUCT = header_struct("attributes", "last_offset_delta", "base_timestamp", "max_timestamp", "producer_id",
                            "producer_epoch", "base_sequence", "records_count")  # fmt: skip
assert HEAD_STRUCT.size == CRC_START and HEAD_STRUCT.size + TAIL_STRUCT.size == BATCH_HEADER_BYTES


class Compression(enum.IntEnum):
    """Codec ids of attribute bits 0-2."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2  # xerial-framed on write; raw snappy also accepted on read
    LZ4 = 3  # LZ4 frame format, independent blocks
    ZSTD = 4


class TimestampType(enum.IntEnum):
    """Attribute bit 3."""

    CREATE_TIME = 0  # timestamps set by the producer
    LOG_APPEND_TIME = 1  # broker clock: every record reads as maxTimestamp
