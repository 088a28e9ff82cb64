"""Requests captured from real clients (librdkafka 2.16 through confluent-kafka,
kafka-python 3.0.12) decode as those clients meant them, and our encoder
gives back the very same bytes.

The files in golden/ are request frames (without the size prefix) recorded by
a logging proxy between each client and a riverlog broker, once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from riverlog.client.protocol.api import decode_request, encode_request
from riverlog.client.records import Compression, iter_batches

GOLDEN = Path(__file__).parent / "golden"
FILES = sorted(p.name for p in GOLDEN.glob("*.bin"))


def test_every_client_request_is_there():
    assert len(FILES) == 7


@pytest.mark.parametrize("name", FILES)
def test_a_captured_request_decodes_and_re_encodes_to_the_same_bytes(name):
    raw = (GOLDEN / name).read_bytes()
    header, body = decode_request(raw)
    client = "rdkafka" if name.startswith("librdkafka") else "kafka-python-producer-1"
    assert header.client_id == client
    assert encode_request(header, body) == raw


def test_librdkafka_api_versions_v3_names_its_software():
    header, body = decode_request((GOLDEN / "librdkafka-api-versions-v3.bin").read_bytes())
    assert (header.api_key, header.api_version) == (18, 3)
    assert body["client_software_name"] == "confluent-kafka-python"


# Both producers were set to compress (lz4, gzip) but sent these one-record
# batches uncompressed, as both do when compression would not shrink a batch.
@pytest.mark.parametrize(
    "name, codec, key, value, headers, timestamp",
    [
        ("librdkafka-produce-v7.bin", Compression.NONE, b"key-1", b"value-1", (("h", b"x"),), 1_700_000_000_000),
        ("kafka-python-produce-v7.bin", Compression.NONE, b"key-2", b"value-2", (("h", b"y"),), 1_700_000_000_001),
    ],
)
def test_a_captured_produce_carries_the_record_that_was_sent(name, codec, key, value, headers, timestamp):
    header, body = decode_request((GOLDEN / name).read_bytes())
    assert (header.api_key, header.api_version, body["acks"]) == (0, 7, -1)
    (topic,) = body["topic_data"]
    (part,) = topic["partition_data"]
    assert (topic["name"], part["index"]) == ("golden", 0)
    (batch,) = list(iter_batches(part["records"]))
    assert batch.is_valid_crc() and batch.compression == codec
    (record,) = batch.records()
    assert (record.key, record.value, record.headers, record.timestamp) == (key, value, headers, timestamp)


def test_kafka_python_asks_for_an_idempotent_producer_id():
    header, body = decode_request((GOLDEN / "kafka-python-init-producer-id-v1.bin").read_bytes())
    assert (header.api_key, header.api_version) == (22, 1)
    assert body["transactional_id"] is None and body["producer_id"] == -1
