"""The consumer against a real broker process, and against a scripted fake
broker for what ours never serves (control batches, aborted transactions,
corrupt batches, leader errors) and for what is only visible on the wire
(how far fetching runs ahead of the application)."""

from __future__ import annotations

import pytest
import trio

from riverlog.client.connection import BrokerConnection, connect
from riverlog.client.consumer import (
    Consumer,
    CorruptRecordError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
    UnknownTopicOrPartitionError,
)
from riverlog.client import fetcher
from riverlog.client.fetcher import CompletedFetch, PartitionState
from riverlog.client.protocol import ErrorCode
from riverlog.client.records import Compression, TimestampType, build_batch
from riverlog.client.types import TopicPartition
from tests.client.test_connection import FakeBroker

PRODUCE, FETCH, LIST_OFFSETS, METADATA, API_VERSIONS = 0, 1, 2, 3, 18
CREATE_TOPICS, DELETE_TOPICS, DELETE_RECORDS = 19, 20, 21


# -- helpers: raw requests, so these tests do not depend on the producer -------


async def admin(nursery, bootstrap: str) -> BrokerConnection:
    host, port = bootstrap.rsplit(":", 1)
    return await connect(nursery, host, int(port))


async def create_topic(conn: BrokerConnection, name: str, partitions: int = 1) -> None:
    body = {"topics": [{"name": name, "num_partitions": partitions, "replication_factor": 1}], "timeout_ms": 5000}
    answer = await conn.request(CREATE_TOPICS, body)
    assert answer["topics"][0]["error_code"] == 0, answer


async def produce(conn: BrokerConnection, topic: str, partition: int, records, **batch_options) -> int:
    """One batch; returns its base offset. The broker is every partition's leader."""
    batch = build_batch(records, **batch_options)
    body = {"acks": -1, "timeout_ms": 5000, "transactional_id": None,
            "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": batch}]}]}  # fmt: skip
    answer = await conn.request(PRODUCE, body, version=conn.version_for(PRODUCE, min_version=3))
    part = answer["responses"][0]["partition_responses"][0]
    assert part["error_code"] == 0, part
    return part["base_offset"]


def values(records) -> list[bytes]:
    return [r.value for r in records]


async def wait_until(predicate, timeout: float = 15.0, what: str = "condition") -> None:
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"timed out waiting for {what}")


async def poll_all(consumer: Consumer, n: int, timeout: float = 10.0, **kwargs) -> list:
    out: list = []
    with trio.fail_after(timeout):
        while len(out) < n:
            out += await consumer.poll(timeout=1.0, **kwargs)
    return out


# -- reading back --------------------------------------------------------------


async def test_assign_and_poll_reads_back_keys_values_headers_and_timestamps(bootstrap, nursery):
    conn = await admin(nursery, bootstrap)
    await create_topic(conn, "readback")
    records = [(f"k{i}".encode(), f"v{i}".encode(), 1_700_000_000_000 + i, [("h", b"x"), ("n", None)])
               for i in range(5)]  # fmt: skip
    records.append((None, None, 1_700_000_000_099, []))
    await produce(conn, "readback", 0, records)
    tp = TopicPartition("readback", 0)
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([tp])
        assert c.assignment() == {tp}
        got = await poll_all(c, 6)
        assert await c.position(tp) == 6
    assert [(r.topic, r.partition, r.offset) for r in got] == [("readback", 0, i) for i in range(6)]
    assert [(r.key, r.value, r.timestamp, r.headers) for r in got] == [
        (k, v, ts, tuple(h)) for k, v, ts, h in records
    ]
    assert all(r.timestamp_type == 0 for r in got)


@pytest.mark.parametrize("codec", list(Compression))
async def test_every_codec_decodes(bootstrap, nursery, codec):
    conn = await admin(nursery, bootstrap)
    topic = f"codec-{codec.name.lower()}"
    await create_topic(conn, topic)
    payload = [(b"k", bytes([i % 256]) * 300, 1_000 + i, [("i", str(i).encode())]) for i in range(50)]
    await produce(conn, topic, 0, payload, compression=codec)
    await produce(conn, topic, 0, payload[:3], compression=codec)
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([TopicPartition(topic, 0)])
        got = await poll_all(c, 53)
    assert [r.offset for r in got] == list(range(53))
    assert values(got) == [p[1] for p in payload] + [p[1] for p in payload[:3]]
    assert got[7].headers == (("i", b"7"),)


async def test_max_poll_records_bounds_each_poll(bootstrap, nursery):
    conn = await admin(nursery, bootstrap)
    await create_topic(conn, "bounded")
    await produce(conn, "bounded", 0, [(None, b"%d" % i, 1, []) for i in range(25)])
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", max_poll_records=10) as c:
        c.assign([TopicPartition("bounded", 0)])
        sizes = []
        got: list = []
        with trio.fail_after(10):
            while len(got) < 25:
                batch = await c.poll(timeout=1)
                sizes.append(len(batch))
                got += batch
            extra = await c.poll(timeout=0.2, max_records=3)
        assert max(sizes) == 10 and [r.offset for r in got] == list(range(25)) and extra == []
        c.seek(TopicPartition("bounded", 0), 0)
        assert len(await poll_all(c, 1, max_records=3)) == 3


async def test_poll_rotates_over_partitions(bootstrap, nursery):
    conn = await admin(nursery, bootstrap)
    await create_topic(conn, "fair", partitions=3)
    for p in range(3):
        await produce(conn, "fair", p, [(None, b"%d" % p, 1, []) for _ in range(30)])
    tps = [TopicPartition("fair", p) for p in range(3)]
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign(tps)
        first = await poll_all(c, 1, max_records=5)
        # One Fetch covers all three: wait until all of it is buffered.
        await wait_until(lambda: len(c._fetcher._by_tp) == 3, what="records of every partition buffered")
        polls = [first] + [await c.poll(max_records=5) for _ in range(2)]
    assert [len(p) for p in polls] == [5, 5, 5]
    assert sorted(p[0].partition for p in polls) == [0, 1, 2]


async def test_async_iteration_yields_records_until_closed(bootstrap, nursery):
    conn = await admin(nursery, bootstrap)
    await create_topic(conn, "iterate")
    await produce(conn, "iterate", 0, [(None, b"%d" % i, 1, []) for i in range(7)])
    got = []
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([TopicPartition("iterate", 0)])
        with trio.fail_after(10):
            async for record in c:
                got.append(record.offset)
                if len(got) == 7:
                    break
    assert got == list(range(7))
    with pytest.raises(StopAsyncIteration):
        await c.__anext__()  # a closed consumer ends the iteration


# -- positions -------------------------------------------------------------------


async def test_seek_seek_to_beginning_end_and_position(bootstrap, nursery):
    conn = await admin(nursery, bootstrap)
    await create_topic(conn, "seeking")
    # One batch of 10: a seek into its middle skips the records before it.
    await produce(conn, "seeking", 0, [(None, b"%d" % i, 1, []) for i in range(10)])
    tp = TopicPartition("seeking", 0)
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([tp])
        c.seek(tp, 5)
        assert await c.position(tp) == 5
        assert [r.offset for r in await poll_all(c, 5)] == [5, 6, 7, 8, 9]
        await c.seek_to_beginning()
        assert await c.position(tp) == 0
        assert [r.offset for r in await poll_all(c, 10)] == list(range(10))
        await c.seek_to_end(tp)
        assert await c.position(tp) == 10
        assert await c.poll(timeout=0.3) == []
        await produce(conn, "seeking", 0, [(None, b"new", 1, [])])
        assert values(await poll_all(c, 1)) == [b"new"]
        with pytest.raises(ValueError, match="not assigned"):
            c.seek(TopicPartition("seeking", 9), 0)


async def test_seek_drops_data_already_fetched(bootstrap, nursery):
    conn = await admin(nursery, bootstrap)
    await create_topic(conn, "refetch")
    await produce(conn, "refetch", 0, [(None, b"%d" % i, 1, []) for i in range(20)])
    tp = TopicPartition("refetch", 0)
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([tp])
        assert [r.offset for r in await poll_all(c, 1, max_records=1)] == [0]
        c.seek(tp, 15)  # offsets 1-19 are buffered: they must not come out
        assert [r.offset for r in await poll_all(c, 5)] == [15, 16, 17, 18, 19]


async def test_auto_offset_reset_earliest_latest_none(bootstrap, nursery):
    conn = await admin(nursery, bootstrap)
    await create_topic(conn, "resets")
    await produce(conn, "resets", 0, [(None, b"old", 1, [])] * 3)
    tp = TopicPartition("resets", 0)
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([tp])
        assert await c.position(tp) == 0
    async with Consumer(bootstrap_servers=bootstrap) as c:  # latest is the default
        c.assign([tp])
        assert await c.poll(timeout=0.5) == []
        assert await c.position(tp) == 3
        await produce(conn, "resets", 0, [(None, b"new", 1, [])])
        assert values(await poll_all(c, 1)) == [b"new"]
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="none") as c:
        c.assign([tp])
        with pytest.raises(NoOffsetForPartitionError, match="resets-0"):
            await c.poll(timeout=1)
        with pytest.raises(NoOffsetForPartitionError):
            await c.position(tp)
        c.seek(tp, 2)  # a position clears it
        assert [r.offset for r in await poll_all(c, 2)] == [2, 3]


async def delete_records(conn: BrokerConnection, topic: str, partition: int, offset: int) -> None:
    body = {"topics": [{"name": topic, "partitions": [{"partition_index": partition, "offset": offset}]}],
            "timeout_ms": 5000}  # fmt: skip
    answer = await conn.request(DELETE_RECORDS, body)
    assert answer["topics"][0]["partitions"][0]["error_code"] == 0, answer


async def test_offset_out_of_range_resets_or_raises(bootstrap, nursery):
    conn = await admin(nursery, bootstrap)
    await create_topic(conn, "truncated")
    for i in range(4):
        await produce(conn, "truncated", 0, [(None, b"%d" % i, 1, [])] * 5)
    await delete_records(conn, "truncated", 0, 10)
    tp = TopicPartition("truncated", 0)
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([tp])
        c.seek(tp, 2)  # now below the log start offset
        got = await poll_all(c, 10)
        assert got[0].offset == 10 and await c.position(tp) == 20
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="latest") as c:
        c.assign([tp])
        c.seek(tp, 3)
        with trio.fail_after(10):
            while await c.position(tp) != 20:
                assert await c.poll(timeout=0.1) == []
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="none") as c:
        c.assign([tp])
        c.seek(tp, 3)
        with pytest.raises(OffsetOutOfRangeError, match="offset 3 .* truncated-0"):
            await poll_all(c, 1)
        with pytest.raises(OffsetOutOfRangeError):  # sticky until a seek
            await c.poll()
        c.seek(tp, 18)
        assert [r.offset for r in await poll_all(c, 2)] == [18, 19]


async def test_pause_stops_delivery_and_resume_continues(bootstrap, nursery):
    conn = await admin(nursery, bootstrap)
    await create_topic(conn, "pausing", partitions=2)
    a, b = TopicPartition("pausing", 0), TopicPartition("pausing", 1)
    await produce(conn, "pausing", 0, [(None, b"a", 1, [])] * 3)
    await produce(conn, "pausing", 1, [(None, b"b", 1, [])] * 3)
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([a, b])
        c.pause(a)
        assert c.paused() == {a}
        got = await poll_all(c, 3)
        assert await c.poll(timeout=0.3) == []
        c.resume(a)
        got += await poll_all(c, 3)
    assert values(got) == [b"b"] * 3 + [b"a"] * 3


async def test_deleted_topic_surfaces_from_poll(bootstrap, nursery):
    conn = await admin(nursery, bootstrap)
    await create_topic(conn, "doomed")
    await produce(conn, "doomed", 0, [(None, b"x", 1, [])])
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([TopicPartition("doomed", 0)])
        assert len(await poll_all(c, 1)) == 1
        answer = await conn.request(DELETE_TOPICS, {"topic_names": ["doomed"], "timeout_ms": 5000})
        assert answer["responses"][0]["error_code"] == 0
        with trio.fail_after(10), pytest.raises(UnknownTopicOrPartitionError, match="'doomed' does not exist"):
            while True:
                await c.poll(timeout=1)
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([TopicPartition("never-created", 0)])
        with trio.fail_after(10), pytest.raises(UnknownTopicOrPartitionError, match="never-created"):
            await c.poll(timeout=5)


# -- a scripted broker ---------------------------------------------------------


class FakeLeader:
    """A one-node cluster with topic "t" (one partition): Metadata and
    ListOffsets answered here, Fetch by `on_fetch(offset) -> (error, records)`."""

    def __init__(self, on_fetch, log_end: int = 0):
        self.on_fetch = on_fetch
        self.log_end = log_end
        self.port = 0
        self.fetches: list[int] = []
        self.metadata_requests = 0
        self.fake = FakeBroker(self.script, api_versions={
            API_VERSIONS: (0, 3), METADATA: (0, 6), FETCH: (4, 10), LIST_OFFSETS: (1, 4)})  # fmt: skip

    async def start(self, nursery) -> str:
        self.port = await self.fake.serve(nursery)
        return f"127.0.0.1:{self.port}"

    async def script(self, header, body):
        if header.api_key == METADATA:
            self.metadata_requests += 1
            part = {"error_code": 0, "partition_index": 0, "leader_id": 1, "leader_epoch": 0,
                    "replica_nodes": [1], "isr_nodes": [1], "offline_replicas": []}  # fmt: skip
            return {"throttle_time_ms": 0, "cluster_id": "c", "controller_id": 1,
                    "brokers": [{"node_id": 1, "host": "127.0.0.1", "port": self.port, "rack": None}],
                    "topics": [{"error_code": 0, "name": "t", "is_internal": False, "partitions": [part]}]}  # fmt: skip
        if header.api_key == LIST_OFFSETS:
            parts = [{"partition_index": 0, "error_code": 0, "timestamp": -1,
                      "offset": self.log_end if p["timestamp"] == -1 else 0, "leader_epoch": 0}
                     for p in body["topics"][0]["partitions"]]  # fmt: skip
            return {"throttle_time_ms": 0, "topics": [{"name": "t", "partitions": parts}]}
        assert header.api_key == FETCH
        assert (body["session_id"], body["session_epoch"]) == (0, -1)
        offset = body["topics"][0]["partitions"][0]["fetch_offset"]
        self.fetches.append(offset)
        error, records, *aborted = await self.on_fetch(offset)
        part = {"partition_index": 0, "error_code": error, "high_watermark": 1000, "last_stable_offset": 1000,
                "log_start_offset": 0, "aborted_transactions": aborted[0] if aborted else [], "records": records}
        return {"throttle_time_ms": 0, "error_code": 0, "session_id": 0,
                "responses": [{"topic": "t", "partitions": [part]}]}  # fmt: skip


def batch_at(base: int, n: int, **options) -> bytes:
    return build_batch([(None, b"%d" % (base + i), 1, []) for i in range(n)], base_offset=base, **options)


T0 = TopicPartition("t", 0)


async def test_prefetch_runs_at_most_two_responses_ahead(nursery):
    async def on_fetch(offset):
        return 0, batch_at(offset, 10)

    leader = FakeLeader(on_fetch)
    bootstrap = await leader.start(nursery)
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([T0])
        assert [r.offset for r in await poll_all(c, 1, max_records=1)] == [0]
        # The next fetch starts where the buffered data ends, before the
        # application has taken it; two responses undelivered stop it there.
        await wait_until(lambda: len(leader.fetches) >= 2, what="the prefetch")
        await trio.sleep(0.3)  # time for a third fetch, which must not come
        assert leader.fetches == [0, 10]
        assert len(await c.poll(max_records=9)) == 9  # the first response is delivered...
        await wait_until(lambda: len(leader.fetches) >= 3, what="one more fetch")
        assert leader.fetches == [0, 10, 20]  # ...so one more may be fetched
        await trio.sleep(0.3)
        assert leader.fetches == [0, 10, 20]  # but not the one after
        assert [r.offset for r in await c.poll(max_records=100)] == list(range(10, 30))


async def test_control_batches_and_a_trailing_partial_batch_are_skipped(nursery):
    control_key = b"\x00\x00\x00\x01"  # version 0, type 1: COMMIT

    async def on_fetch(offset):
        if offset > 0:
            return 0, b""
        data = (batch_at(0, 2, producer_id=7, producer_epoch=0, is_transactional=True)
                + build_batch([(control_key, b"\x00\x00\x00\x00\x00\x00", 1, [])], base_offset=2,
                              producer_id=7, producer_epoch=0, is_transactional=True, is_control=True)
                + batch_at(3, 2))  # fmt: skip
        return 0, data + batch_at(5, 3)[:40]

    leader = FakeLeader(on_fetch)
    async with Consumer(bootstrap_servers=await leader.start(nursery), auto_offset_reset="earliest") as c:
        c.assign([T0])
        assert [r.offset for r in await poll_all(c, 4)] == [0, 1, 3, 4]
        assert await c.position(T0) == 5  # the control batch's offset is passed too


async def test_read_committed_drops_aborted_transactions(nursery):
    def marker(base, pid, kind):
        return build_batch([(bytes([0, 0, 0, kind]), b"\x00" * 6, 1, [])], base_offset=base,
                           producer_id=pid, producer_epoch=0, is_transactional=True, is_control=True)  # fmt: skip

    def txn(base, pid):
        return batch_at(base, 2, producer_id=pid, producer_epoch=0, is_transactional=True)

    async def on_fetch(offset):
        if offset > 0:
            return 0, b""
        # pid 7 aborts offsets 0-1, pid 8 commits 2-3 (interleaved), then pid 7 again commits 6-7.
        data = txn(0, 7) + txn(2, 8) + marker(4, 7, 0) + marker(5, 8, 1) + txn(6, 7) + marker(8, 7, 1)
        return 0, data, [{"producer_id": 7, "first_offset": 0}]

    leader = FakeLeader(on_fetch)
    bootstrap = await leader.start(nursery)
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                        isolation_level="read_committed") as c:  # fmt: skip
        c.assign([T0])
        assert [r.offset for r in await poll_all(c, 4)] == [2, 3, 6, 7]
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([T0])
        assert [r.offset for r in await poll_all(c, 6)] == [0, 1, 2, 3, 6, 7]


async def test_a_corrupt_batch_raises_from_poll_naming_partition_and_offset(nursery):
    async def on_fetch(offset):
        bad = bytearray(batch_at(3, 2))
        bad[17] ^= 0x01  # a flipped bit in the stored CRC: it no longer matches
        return 0, batch_at(0, 3) + bytes(bad)

    leader = FakeLeader(on_fetch)
    async with Consumer(bootstrap_servers=await leader.start(nursery), auto_offset_reset="earliest") as c:
        c.assign([T0])
        got = []
        with pytest.raises(CorruptRecordError, match="t-0 at offset 3.*CRC"):
            while True:
                got += await c.poll(timeout=1)
        assert [r.offset for r in got] == [0, 1, 2]  # the good records came first
        assert await c.position(T0) == 3  # stuck before the corrupt batch until a seek
        with pytest.raises(CorruptRecordError):
            await c.poll()
    async with Consumer(bootstrap_servers=f"127.0.0.1:{leader.port}", auto_offset_reset="earliest",
                        check_crcs=False) as c:  # fmt: skip
        c.assign([T0])
        assert len(await poll_all(c, 5)) == 5  # only the CRC was broken


async def test_leader_errors_are_retried_after_a_metadata_refresh(nursery):
    errors = [6, 5, 74]  # NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, FENCED_LEADER_EPOCH

    async def on_fetch(offset):
        if errors:
            return errors.pop(0), None
        return 0, batch_at(offset, 2)

    leader = FakeLeader(on_fetch)
    async with Consumer(bootstrap_servers=await leader.start(nursery), auto_offset_reset="earliest",
                        retry_backoff_ms=10) as c:  # fmt: skip
        c.assign([T0])
        assert [r.offset for r in await poll_all(c, 2)] == [0, 1]
    assert leader.fetches[:4] == [0, 0, 0, 0] and leader.metadata_requests >= 4


async def test_no_position_with_latest_starts_at_the_log_end(nursery):
    async def on_fetch(offset):
        return 0, batch_at(offset, 1)

    leader = FakeLeader(on_fetch, log_end=42)
    async with Consumer(bootstrap_servers=await leader.start(nursery)) as c:
        c.assign([T0])
        assert [r.offset for r in await poll_all(c, 1, max_records=1)] == [42]


# -- the decoder -----------------------------------------------------------------


_SHAPES = {
    # mixed: every column varies (null and non-null keys, values, headers)
    "mixed": lambda i: (b"k%d" % i if i % 3 else None, b"v" * i if i % 4 else None, 1_000 + 7 * i,
                        [("h%d" % j, b"x" * j if j else None) for j in range(i % 3)]),  # fmt: skip
    # uniform: what producers send most (no key, no headers), decoded column-wise
    "uniform": lambda i: (None, b"value %d" % i, 1_000 + i, []),
    "keys-no-values": lambda i: (b"k%d" % i, None, 1_000, []),
}


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.ZSTD])
@pytest.mark.parametrize("ts_type", list(TimestampType))
@pytest.mark.parametrize("shape", sorted(_SHAPES))
@pytest.mark.parametrize("compacted", [False, True])
def test_fast_decoder_agrees_with_record_batch_records(monkeypatch, codec, ts_type, shape, compacted):
    records = [_SHAPES[shape](i) for i in range(40)]
    # A compacted batch keeps offsets with gaps: every third record is gone.
    deltas = [i for i in range(60) if i % 3][:40] if compacted else None
    data = build_batch(records, base_offset=100, compression=codec, timestamp_type=ts_type,
                       partition_leader_epoch=3, offset_deltas=deltas,
                       last_offset_delta=deltas[-1] if deltas else None)  # fmt: skip
    end = 100 + (deltas[-1] + 1 if deltas else 40)
    data += build_batch(records[:2], base_offset=end)

    def decode(native: bool, in_c: bool = False, step: int = 1000) -> list:
        monkeypatch.setattr(fetcher, "_NATIVE", native)
        monkeypatch.setattr(fetcher, "_consumer_records", built_in_c if in_c else None)
        cf = CompletedFetch(T0, PartitionState(), 1, 117, data, True, None)
        out: list = []
        while taken := cf.take(step):  # a few at a time: records are made as they are taken
            out += taken
            assert cf.next_offset == out[-1].offset + 1 or cf.next_offset == end + 2
        return out

    built_in_c = fetcher._consumer_records
    slow = decode(False)
    expected = [100 + d for d in (deltas or range(40)) if 100 + d >= 117] + [end, end + 1]
    assert [r.offset for r in slow] == expected
    assert slow[0].leader_epoch == 3 and slow[0].timestamp_type == int(ts_type)
    if fetcher._new_uninit is not None:  # the extension is built and not disabled
        assert decode(True) == slow  # columns read by the C decoder, records made in Python
        assert decode(True, step=7) == slow
        assert built_in_c is not None  # built with the extension: the records made in C too
        assert decode(True, in_c=True) == slow
        assert decode(True, in_c=True, step=7) == slow
        assert all(type(r) is type(slow[0]) for r in decode(True, in_c=True))


def test_a_header_key_that_is_not_utf8_is_a_corrupt_batch(monkeypatch):
    import crc32c

    from riverlog.client.records.layout import ATTRIBUTES_OFFSET, CRC_OFFSET

    data = bytearray(build_batch([(None, b"v", 1, [("\u00e9", b"x")])], base_offset=0))
    data[data.index("\u00e9".encode())] = 0xFF  # no longer UTF-8; the CRC made to match
    data[CRC_OFFSET : CRC_OFFSET + 4] = crc32c.crc32c(data[ATTRIBUTES_OFFSET:]).to_bytes(4, "big")
    built_in_c = fetcher._consumer_records
    paths = [(False, None)]  # RecordBatch.records()
    if fetcher._new_uninit is not None:  # the extension is built and not disabled: its two paths too
        paths += [(True, None), (True, built_in_c)]
    for native, in_c in paths:
        monkeypatch.setattr(fetcher, "_NATIVE", native)
        monkeypatch.setattr(fetcher, "_consumer_records", in_c)
        cf = CompletedFetch(T0, PartitionState(), 1, 0, bytes(data), True, None)
        with pytest.raises(fetcher.CorruptRecordError, match="UTF-8"):
            cf.take(10)


async def test_broker_down_at_start_is_a_clear_error_from_poll_after_the_timeout():
    from riverlog.client.errors import KafkaConnectionError, KafkaTimeoutError
    from tests.integration.broker_process import free_port

    port = free_port()
    async with Consumer(bootstrap_servers=f"127.0.0.1:{port}", default_api_timeout_ms=1000) as c:
        c.assign([TopicPartition("t", 0)])
        start = trio.current_time()
        # The position reset (ListOffsets) or the metadata fetch gives up,
        # whichever comes first: a timeout or a connection error, both naming it.
        with pytest.raises((KafkaConnectionError, KafkaTimeoutError), match=f"no broker reachable at 127.0.0.1:{port}"):
            await c.poll(timeout=10)
        assert trio.current_time() - start < 5


async def test_broker_down_is_named_even_when_the_event_loop_stalls_past_the_timeout(nursery):
    """A loaded machine can resume the consumer's tasks after both the
    connection's give-up point and ListOffsets' own deadline have passed (the
    first is 10 ms before the second): the error still names the broker."""
    import time

    from riverlog.client.errors import KafkaConnectionError, KafkaTimeoutError
    from tests.integration.broker_process import free_port

    port = free_port()
    async with Consumer(bootstrap_servers=f"127.0.0.1:{port}", default_api_timeout_ms=1000) as c:
        c.assign([TopicPartition("t", 0)])
        start = trio.current_time()

        async def stall() -> None:  # the whole event loop, across both deadlines
            await trio.sleep_until(start + 0.9)
            time.sleep(0.3)

        nursery.start_soon(stall)
        with pytest.raises((KafkaConnectionError, KafkaTimeoutError), match=f"no broker reachable at 127.0.0.1:{port}"):
            await c.poll(timeout=10)


async def test_breaking_out_of_async_for_skips_nothing(bootstrap, nursery):
    conn = await admin(nursery, bootstrap)
    await create_topic(conn, "iter-break")
    await produce(conn, "iter-break", 0, [(None, b"%d" % i, 1, []) for i in range(20)])
    tp = TopicPartition("iter-break", 0)
    async with Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest") as c:
        c.assign([tp])
        async for record in c:
            assert record.offset == 0
            break
        assert await c.position(tp) == 1  # the records the iterator holds are not consumed yet
        rest = await poll_all(c, 19)
    assert [r.offset for r in rest] == list(range(1, 20))


async def test_out_of_range_on_a_prefetch_delivers_the_buffered_records_first(nursery):
    async def on_fetch(offset):
        if offset == 0:
            return 0, batch_at(0, 10)
        return ErrorCode.OFFSET_OUT_OF_RANGE, b""  # the log start moved past 10 meanwhile

    leader = FakeLeader(on_fetch)
    async with Consumer(bootstrap_servers=await leader.start(nursery), auto_offset_reset="none") as c:
        c.assign([T0])
        c.seek(T0, 0)
        await trio.sleep(0.3)  # the prefetch from 10 has been answered OFFSET_OUT_OF_RANGE
        assert [r.offset for r in await poll_all(c, 10)] == list(range(10))
        with pytest.raises(OffsetOutOfRangeError, match="offset 10 is out of range"):
            await c.poll(timeout=5)


async def test_a_batch_header_that_does_not_parse_is_the_partition_error(nursery):
    async def on_fetch(offset):
        good = batch_at(0, 3)
        bad = bytearray(batch_at(3, 3))
        bad[16] = 1  # magic 1: not a batch v2
        return 0, good + bytes(bad)

    leader = FakeLeader(on_fetch)
    async with Consumer(bootstrap_servers=await leader.start(nursery), auto_offset_reset="earliest") as c:
        c.assign([T0])
        with pytest.raises(CorruptRecordError, match="t-0"):
            for _ in range(10):
                await c.poll(timeout=1)


def test_offsets_past_int64_from_the_c_builder_are_a_corrupt_batch_after_the_good_records(monkeypatch):
    """The C builder refuses an offset it cannot hold in an int64 (undefined
    in C) instead of wrapping it; the records taken before it still come."""
    if fetcher._consumer_records is None:  # a build without the extension: the Python path has no such limit
        assert fetcher._new_uninit is None
        return
    base = 2**63 - 3
    data = build_batch([(None, b"%d" % i, 1, []) for i in range(5)], base_offset=base)
    cf = CompletedFetch(T0, PartitionState(), 1, base, data, True, None)
    assert [r.offset for r in cf.take(2)] == [base, base + 1]
    with pytest.raises(fetcher.CorruptRecordError, match="int64"):
        cf.take(10)
