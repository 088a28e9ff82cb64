"""Produce (0): append each partition's batch, all or nothing per partition.

Advertised from v0 because librdkafka before 2.11.1 sends gzip, snappy and
lz4 uncompressed unless Produce's minimum is 0; v0-2 (magic 0/1 batches) are
refused with UNSUPPORTED_VERSION per partition, as Kafka 4.0 does
(KAFKA-18659). On this single-replica broker the high watermark is the log
end, so acks=1 and acks=all both answer after the local append.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from riverlog.broker.handlers.produce_rules import check_produce_batch
from riverlog.broker.metadata.internal_topics import INTERNAL_TOPICS, produce_error
from riverlog.broker.producer_state import last_sequence
from riverlog.broker.storage.errors import STORAGE_FAULTS, CorruptRecordError, InvalidRecordError, RecordTooLargeError
from riverlog.client.protocol import ApiKey, ErrorCode
from riverlog.client.records.layout import BATCH_HEADER_BYTES, BATCH_LENGTH_OFFSET, LAST_OFFSET_DELTA_OFFSET
from riverlog.client.records.layout import LOG_OVERHEAD, PRODUCER_ID_OFFSET, header_struct

if TYPE_CHECKING:
    from riverlog.broker.handlers import RequestContext
    from riverlog.broker.partitions import Partitions

API_KEY = ApiKey.PRODUCE
MIN_VERSION = 0
MAX_VERSION = 7  # 7 allows zstd; no flexible versions needed by any client

_STORAGE_ERRORS = {
    CorruptRecordError: ErrorCode.CORRUPT_MESSAGE,
    RecordTooLargeError: ErrorCode.MESSAGE_TOO_LARGE,
    InvalidRecordError: ErrorCode.INVALID_RECORD,
    # its log directory offline (logged once there), or out of descriptors
    **dict.fromkeys(STORAGE_FAULTS, ErrorCode.KAFKA_STORAGE_ERROR),
}

_LENGTH = header_struct("batch_length")
_LAST_OFFSET_DELTA = header_struct("last_offset_delta")
_PRODUCER = header_struct("producer_id", "producer_epoch", "base_sequence")


def _result(index: int, error: int, base_offset: int = -1, append_time: int = -1, log_start: int = -1, message=None):
    return {
        "index": index,
        "error_code": int(error),
        "base_offset": base_offset,
        "log_append_time_ms": append_time,
        "log_start_offset": log_start,
        "error_message": message,
    }


def handle(ctx: RequestContext, request: dict) -> dict | None:
    partitions = ctx.services.partitions
    acks = request["acks"]
    responses = []
    appended = False
    for topic in request["topic_data"]:
        results = []
        for part in topic["partition_data"]:
            if acks not in (-1, 0, 1):
                results.append(_result(part["index"], ErrorCode.INVALID_REQUIRED_ACKS))
                continue
            result = _produce_partition(partitions, topic["name"], part, ctx.api_version)
            appended |= result["error_code"] == ErrorCode.NONE
            results.append(result)
        responses.append({"name": topic["name"], "partition_responses": results})
    if appended:
        partitions.notify_appended()
    if acks == 0:
        return None  # acks=0: the producer reads no response
    return {"responses": responses, "throttle_time_ms": 0}


def _produce_partition(partitions: Partitions, topic: str, part: dict, version: int) -> dict:
    index = part["index"]
    if version < 3:
        return _result(index, ErrorCode.UNSUPPORTED_VERSION, message="Produce v0-2 (magic 0/1) are not served")
    if topic in INTERNAL_TOPICS:  # only the broker writes those (internal_topics.py)
        return _result(index, ErrorCode.INVALID_TOPIC_EXCEPTION, message=produce_error(topic))
    found, error = partitions.led_partition(topic, index)
    if found is None:
        return _result(index, error)
    partition, plog = found
    records = part["records"]
    if records is None or len(records) == 0:
        return _result(index, ErrorCode.INVALID_RECORD, message="no record batch")
    batch = memoryview(records)
    declared = -1 if len(batch) < LOG_OVERHEAD else _LENGTH.unpack_from(batch, BATCH_LENGTH_OFFSET)[0] + LOG_OVERHEAD
    if declared > len(batch) or declared < BATCH_HEADER_BYTES:
        return _result(index, ErrorCode.CORRUPT_MESSAGE, message="the record batch is torn or its length is wrong")
    if declared < len(batch):
        # v3+ carries exactly one batch per partition (as Kafka: INVALID_RECORD).
        return _result(index, ErrorCode.INVALID_RECORD, message="partition data holds more than one record batch")
    error, message = check_produce_batch(batch, version)
    if error != ErrorCode.NONE:
        return _result(index, error, message=message)
    # Idempotence (KIP-98's sequence checks; the rules are in broker/producer_state.py).
    producer_id, producer_epoch, base_seq = _PRODUCER.unpack_from(batch, PRODUCER_ID_OFFSET)
    state = None
    if producer_id >= 0:
        try:
            state = partitions.producer_state(topic, index, plog)  # may read the log to rebuild it
        except STORAGE_FAULTS as e:
            return _result(index, ErrorCode.KAFKA_STORAGE_ERROR, message=str(e))
        last_seq = last_sequence(base_seq, _LAST_OFFSET_DELTA.unpack_from(batch, LAST_OFFSET_DELTA_OFFSET)[0])
        error, duplicate_of = state.check(producer_id, producer_epoch, base_seq, last_seq)
        if error != ErrorCode.NONE:
            return _result(index, error, message=f"producer {producer_id} epoch {producer_epoch} sequence {base_seq}")
        if duplicate_of is not None:  # a retry of an appended batch: its offsets, nothing appended
            return _result(index, ErrorCode.NONE, duplicate_of, -1, plog.log_start_offset)
    try:
        info = plog.append_as_leader(batch, partition.leader_epoch)
    except tuple(_STORAGE_ERRORS) as e:
        code = next(c for t, c in _STORAGE_ERRORS.items() if isinstance(e, t))
        return _result(index, code, message=str(e))
    if state is not None:
        state.record(producer_id, producer_epoch, base_seq, last_seq, info.first_offset, info.last_offset)
    return _result(index, ErrorCode.NONE, info.first_offset, info.log_append_time_ms, info.log_start_offset)
