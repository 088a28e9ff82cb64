"""The batch header is named once (client/records/layout.py), and every struct
built from it reads the fields its names say.

The oracle is kafka-python's own header struct (DefaultRecordBatch), a real
Kafka client's reading of the same bytes.
"""

from __future__ import annotations

import importlib
import struct
import warnings

import pytest

from riverlog.client.records import layout
from riverlog.client.records.layout import HEADER_FIELDS, HEADER_STRUCTS, header_struct

with warnings.catch_warnings():  # kafka-python's schema loading uses deprecated importlib APIs
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.record.default_records import DefaultRecordBatch

# Each module's header structs: importing it builds them (into HEADER_STRUCTS).
READERS = {
    "riverlog.broker.handlers.produce_rules": ["_HEADER"],
    "riverlog.broker.handlers.produce": ["_LENGTH", "_LAST_OFFSET_DELTA", "_PRODUCER"],
    "riverlog.broker.producer_state": ["_PRODUCER_FIELDS"],
    "riverlog.broker.storage.batches": ["_HEADER", "_PREFIX", "_CRC", "_ATTRIBUTES", "_MAX_TIMESTAMP"],
    "riverlog.broker.storage.log_segment": ["_HEADER"],
    "riverlog.broker.storage.segment_recovery": ["_LENGTH", "_CRC"],
    "riverlog.client.records.batch": ["_MAGIC", "_LENGTH"],
    "riverlog.client.records.layout": ["HEAD_STRUCT", "TAIL_STRUCT"],
    "riverlog.native.twin": ["_PREFIX", "_EPOCH_MAGIC", "_FACTS"],
}


# Every field different, signed ones negative and the CRC above 2**31, so a
# wrong offset, width or signedness reads a different number.
FIELD_VALUES = (-0x0102030405060708, -0x11121314, -0x21222324, -3, 0xF1F2F3F4, -0x3132, -0x41424344,
                -0x5152535455565758, -0x6162636465666768, -0x7172737475767778, -0x0A0B, -0x1A1B1C1D,
                -0x2A2B2C2D)  # fmt: skip


def distinct_batch() -> bytes:
    """A batch header written by kafka-python's header struct, then some record bytes."""
    return DefaultRecordBatch.HEADER_STRUCT.pack(*FIELD_VALUES) + bytes(range(40))


def kafka_python_fields(batch: bytes) -> dict[str, int]:
    values = DefaultRecordBatch.HEADER_STRUCT.unpack_from(batch)
    assert len(values) == len(HEADER_FIELDS)
    return dict(zip(HEADER_FIELDS, values))


def test_the_named_offsets_are_the_table_and_tile_the_header():
    end = 0
    for name, (offset, code) in HEADER_FIELDS.items():
        assert getattr(layout, name.upper() + "_OFFSET") == offset, name
        assert offset == end, f"{name} does not follow the field before it"
        end = offset + struct.calcsize(">" + code)
    assert end == layout.BATCH_HEADER_BYTES == layout.RECORDS_OFFSET


def test_each_field_reads_what_a_kafka_client_reads():
    batch = distinct_batch()
    expected = kafka_python_fields(batch)
    assert len(set(expected.values())) == len(expected), "the oracle batch must tell the fields apart"
    for name, (offset, _code) in HEADER_FIELDS.items():
        assert header_struct(name).unpack_from(batch, offset) == (expected[name],), name


@pytest.mark.parametrize("module", sorted(READERS))
def test_every_readers_struct_reads_its_named_fields(module):
    mod = importlib.import_module(module)
    built = {id(s): names for s, names in HEADER_STRUCTS}
    batch = distinct_batch()
    expected = kafka_python_fields(batch)
    for attr in READERS[module]:
        s = getattr(mod, attr)
        assert id(s) in built, f"{module}.{attr} is not built by header_struct"
        names = built[id(s)]
        first = HEADER_FIELDS[names[0]][0]
        assert s.unpack_from(batch, first) == tuple(expected[n] for n in names), f"{module}.{attr}"


def test_every_struct_made_reads_its_named_fields():
    for module in READERS:
        importlib.import_module(module)
    batch = distinct_batch()
    expected = kafka_python_fields(batch)
    for s, names in HEADER_STRUCTS:
        assert s.unpack_from(batch, HEADER_FIELDS[names[0]][0]) == tuple(expected[n] for n in names), names


def test_a_gapless_struct_writes_the_named_offsets():
    batch = bytearray(distinct_batch())
    prefix = header_struct("base_offset", "batch_length", "partition_leader_epoch")
    prefix.pack_into(batch, 0, 7, len(batch) - layout.LOG_OVERHEAD, 3)
    got = kafka_python_fields(bytes(batch))
    assert (got["base_offset"], got["partition_leader_epoch"]) == (7, 3)
    assert got["producer_id"] == FIELD_VALUES[9]  # untouched


@pytest.mark.parametrize("names", [(), ("magic", "base_offset"), ("crc", "crc"), ("no_such_field",)])
def test_names_must_be_known_once_each_in_header_order(names):
    with pytest.raises((ValueError, KeyError)):
        header_struct(*names)
