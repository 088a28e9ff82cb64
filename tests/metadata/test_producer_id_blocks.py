"""Producer id blocks on the controller (KIP-730), pure: AllocateProducerIds'
decision, the ProducerIdsRecord, the image's next block start, snapshots."""

from __future__ import annotations

import pytest

from riverlog.broker.metadata.broker_lifecycle import decide_register
from riverlog.broker.metadata.decisions import PRODUCER_ID_BLOCK_SIZE, decide_allocate_producer_ids
from riverlog.broker.metadata.image import MetadataImage
from riverlog.broker.metadata.image_machine import MetadataStateMachine, image_records
from riverlog.broker.metadata.records import ProducerIdsRecord, decode_record, encode_record
from riverlog.client.protocol.errors import ErrorCode as E


def _commit(image: MetadataImage, records) -> MetadataImage:
    return image.apply_entry(records, image.offset + 1) if records else image


def _with_brokers(*node_ids: int) -> MetadataImage:
    image = MetadataImage.empty("c", 1)
    for node in node_ids:
        _, records = decide_register(image, node, f"{node + 1:032x}", "h", 9000 + node, None, live=frozenset())
        image = _commit(image, records)
    return image


def _allocate(image: MetadataImage, broker: int, **kw) -> tuple[MetadataImage, object]:
    result, records = decide_allocate_producer_ids(image, broker, image.brokers[broker].epoch, **kw)
    return _commit(image, records), result


def test_blocks_follow_one_another_whichever_broker_asks():
    image = _with_brokers(1, 2, 3)
    blocks = []
    for broker in (1, 2, 3, 2, 1):
        image, result = _allocate(image, broker)
        assert result.error_code == E.NONE and result.producer_id_len == PRODUCER_ID_BLOCK_SIZE
        blocks.append(result.producer_id_start)
    assert blocks == [i * PRODUCER_ID_BLOCK_SIZE for i in range(5)]
    assert image.next_producer_id == 5 * PRODUCER_ID_BLOCK_SIZE


def test_the_record_names_the_broker_its_epoch_and_where_the_next_block_begins():
    image = _with_brokers(2)
    epoch = image.brokers[2].epoch
    result, records = decide_allocate_producer_ids(image, 2, epoch)
    assert records == [ProducerIdsRecord(2, epoch, PRODUCER_ID_BLOCK_SIZE)]
    assert decode_record(encode_record(records[0])) == records[0]


@pytest.mark.parametrize("epoch_delta", [-1, 1])
def test_another_incarnations_epoch_or_an_unknown_broker_is_stale_and_allocates_nothing(epoch_delta):
    image = _with_brokers(1)
    result, records = decide_allocate_producer_ids(image, 1, image.brokers[1].epoch + epoch_delta)
    assert (result.error_code, result.producer_id_start, records) == (E.STALE_BROKER_EPOCH, -1, [])
    result, records = decide_allocate_producer_ids(image, 7, 0)
    assert (result.error_code, records) == (E.STALE_BROKER_EPOCH, [])


def test_no_block_starts_below_the_floor_and_the_image_moves_past_it():
    image = _with_brokers(1)
    image, result = _allocate(image, 1, floor=5000)  # a single broker's producer-id-block file said 5000
    assert result.producer_id_start == 5000 and image.next_producer_id == 6000
    image, result = _allocate(image, 1, floor=5000)
    assert result.producer_id_start == 6000
    image, result = _allocate(image, 1, floor=10)  # a floor below the log's next block changes nothing
    assert result.producer_id_start == 7000


def test_the_last_ids_of_the_int64_range_are_refused_not_wrapped():
    image = _commit(_with_brokers(1), [ProducerIdsRecord(-1, -1, 2**63 - 10)])
    result, records = decide_allocate_producer_ids(image, 1, image.brokers[1].epoch)
    assert (result.error_code, records) == (E.UNKNOWN_SERVER_ERROR, [])


def test_the_last_whole_block_of_the_int64_range_is_given_out():
    image = _commit(_with_brokers(1), [ProducerIdsRecord(-1, -1, 2**63 - 1 - PRODUCER_ID_BLOCK_SIZE)])
    image, result = _allocate(image, 1)
    assert (result.error_code, image.next_producer_id) == (E.NONE, 2**63 - 1)
    result, records = decide_allocate_producer_ids(image, 1, image.brokers[1].epoch)
    assert (result.error_code, records) == (E.UNKNOWN_SERVER_ERROR, [])


def test_the_next_block_start_only_grows_in_the_image():
    image = _commit(_with_brokers(1), [ProducerIdsRecord(1, 0, 2000)])
    for stale in (2000, 1000):
        with pytest.raises(ValueError, match="handed out twice"):
            image.apply_entry([ProducerIdsRecord(1, 0, stale)], image.offset + 1)


@pytest.mark.parametrize("body", [
    b'{"type":"producer_ids","v":0,"broker_id":1,"broker_epoch":0,"next_producer_id":0}',
    b'{"type":"producer_ids","v":0,"broker_id":-2,"broker_epoch":0,"next_producer_id":10}',
    b'{"type":"producer_ids","v":0,"broker_id":-1,"broker_epoch":0,"next_producer_id":10}',  # half a snapshot's
    b'{"type":"producer_ids","v":0,"broker_id":1,"broker_epoch":-1,"next_producer_id":10}',
    b'{"type":"producer_ids","v":0,"broker_id":1,"broker_epoch":0,"next_producer_id":9223372036854775808}',
    b'{"type":"producer_ids","v":0,"broker_id":1,"broker_epoch":0}',
    b'{"type":"producer_ids","v":1,"broker_id":1,"broker_epoch":0,"next_producer_id":10}',
])  # fmt: skip
def test_a_malformed_record_does_not_decode(body):
    with pytest.raises(ValueError):
        decode_record(body)


def test_a_snapshot_keeps_where_the_next_block_begins():
    image = _with_brokers(1, 2)
    for broker in (1, 2, 1):
        image, _ = _allocate(image, broker)
    assert ProducerIdsRecord(-1, -1, 3 * PRODUCER_ID_BLOCK_SIZE) in image_records(image)
    machine = MetadataStateMachine("c", 1)
    machine.image = image
    restored = MetadataStateMachine("c", 1)
    restored.restore(machine.snapshot())
    assert restored.image.next_producer_id == image.next_producer_id
    _, result = _allocate(restored.image, 2)  # a controller restored from the snapshot continues after it
    assert result.producer_id_start == 3 * PRODUCER_ID_BLOCK_SIZE
    assert all(not isinstance(r, ProducerIdsRecord) for r in image_records(_with_brokers(1)))
