"""The simplest server that answers Kafka Produce without storing anything.

    python -m bench.standin_server --port P [--partitions 6]

The broker benchmark (bench/broker_bench.py) runs the same librdkafka load
against it and against riverlog, so riverlog's throughput is read as a ratio
of what a Python server that does no work can take. It speaks just enough
protocol for librdkafka and kcat to produce:

* ApiVersions: the ranges riverlog advertises for ApiVersions (0-3),
  Metadata (0-6) and Produce (0-7), plus Fetch (4-10) advertised but not
  served (librdkafka needs it to write record batch v2); a newer ApiVersions
  gets KIP-511's v0 UNSUPPORTED_VERSION reply.
* Metadata: one broker (itself, node 0); every topic asked for exists with
  ``--partitions`` partitions led by itself (no request lists all topics seen).
* Produce: per partition, base_offset is a counter advanced by the record
  count of each batch (int32 at byte 57 of the batch header); error 0.
  acks=0 gets no response. Nothing is stored, checked or CRC'd.

asyncio with a Protocol (callbacks, no per-request task) and the project's own
codec (client.protocol) for decoding and encoding, as riverlog does.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import struct

from riverlog.client.protocol.api import decode_request, encode_response
from riverlog.client.protocol.api_keys import ApiKey
from riverlog.client.protocol.errors import ErrorCode, UnsupportedApi
from riverlog.client.protocol.framing import FrameDecoder, encode_frame
from riverlog.client.records.layout import BATCH_HEADER_BYTES, BATCH_LENGTH_OFFSET, LOG_OVERHEAD, RECORDS_COUNT_OFFSET

API_VERSIONS, METADATA, PRODUCE, FETCH = ApiKey.API_VERSIONS, ApiKey.METADATA, ApiKey.PRODUCE, ApiKey.FETCH
RANGES = {PRODUCE: (0, 7), METADATA: (0, 6), API_VERSIONS: (0, 3)}
# Advertised, never served: librdkafka only writes record batch v2 (its
# MSGVER2 feature) when the broker lists Produce >= 3 *and* Fetch >= 4;
# without Fetch it falls back to magic-0 message sets.
ADVERTISED = {**RANGES, FETCH: (4, 10)}
UNSUPPORTED_VERSION = int(ErrorCode.UNSUPPORTED_VERSION)
UNKNOWN_TOPIC_OR_PARTITION = int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
MAX_FRAME = 100 * 1024 * 1024
_I32 = struct.Struct(">i")


class StandIn:
    def __init__(self, host: str, port: int, partitions: int) -> None:
        self.host = host
        self.port = port
        self.partitions = partitions
        self.offsets: dict[tuple[str, int], int] = {}

    def api_versions(self, version: int) -> dict:
        return {
            "error_code": 0,
            "api_keys": [{"api_key": k, "min_version": lo, "max_version": hi} for k, (lo, hi) in sorted(ADVERTISED.items())],
            "throttle_time_ms": 0,
        }

    def metadata(self, request: dict) -> dict:
        names = [t["name"] for t in (request.get("topics") or [])]
        parts = [
            {"error_code": 0, "partition_index": i, "leader_id": 0, "replica_nodes": [0], "isr_nodes": [0],
             "offline_replicas": []}
            for i in range(self.partitions)
        ]  # fmt: skip
        return {
            "throttle_time_ms": 0,
            "brokers": [{"node_id": 0, "host": self.host, "port": self.port, "rack": None}],
            "cluster_id": "standin",
            "controller_id": 0,
            "topics": [{"error_code": 0, "name": n, "is_internal": False, "partitions": parts} for n in names],
        }

    def produce(self, request: dict) -> dict:
        responses = []
        for topic in request["topic_data"]:
            name = topic["name"]
            out = []
            for pd in topic["partition_data"]:
                index = pd["index"]
                if not 0 <= index < self.partitions:
                    out.append({"index": index, "error_code": UNKNOWN_TOPIC_OR_PARTITION, "base_offset": -1})
                    continue
                records = pd["records"]
                count = 0
                if records is not None:
                    pos, end = 0, len(records)
                    while pos + BATCH_HEADER_BYTES <= end:
                        (length,) = _I32.unpack_from(records, pos + BATCH_LENGTH_OFFSET)
                        (n,) = _I32.unpack_from(records, pos + RECORDS_COUNT_OFFSET)
                        count += n
                        pos += LOG_OVERHEAD + length
                key = (name, index)
                base = self.offsets.get(key, 0)
                self.offsets[key] = base + count
                out.append({"index": index, "error_code": 0, "base_offset": base, "log_append_time_ms": -1,
                            "log_start_offset": 0})  # fmt: skip
            responses.append({"name": name, "partition_responses": out})
        return {"responses": responses, "throttle_time_ms": 0}

    def answer(self, frame: bytes) -> bytes | None:
        try:
            header, request = decode_request(frame)
        except UnsupportedApi as exc:
            header = getattr(exc, "header", None)
            if header is not None and header.api_key == API_VERSIONS:
                body = {"error_code": UNSUPPORTED_VERSION,
                        "api_keys": [{"api_key": API_VERSIONS, "min_version": 0, "max_version": 3}]}  # fmt: skip
                return encode_frame(encode_response(API_VERSIONS, 0, header.correlation_id, body))
            raise
        key, version = header.api_key, header.api_version
        lo, hi = RANGES.get(key, (1, 0))
        if not lo <= version <= hi:
            if key == API_VERSIONS:
                body = {"error_code": UNSUPPORTED_VERSION,
                        "api_keys": [{"api_key": API_VERSIONS, "min_version": 0, "max_version": 3}]}  # fmt: skip
                return encode_frame(encode_response(API_VERSIONS, 0, header.correlation_id, body))
            raise ConnectionError(f"unsupported api {key} v{version}")
        if key == PRODUCE:
            body = self.produce(request)
            if request["acks"] == 0:
                return None
        elif key == METADATA:
            body = self.metadata(request)
        else:
            body = self.api_versions(version)
        return encode_frame(encode_response(key, version, header.correlation_id, body))


class _Connection(asyncio.Protocol):
    def __init__(self, server: StandIn) -> None:
        self.server = server
        self.decoder = FrameDecoder(MAX_FRAME)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.decoder.feed(data)
            out = []
            while (frame := self.decoder.next_frame()) is not None:
                reply = self.server.answer(frame)
                if reply is not None:
                    out.append(reply)
            if out:
                self.transport.write(b"".join(out))
        except Exception:  # a protocol error: drop the connection, as a broker would
            self.transport.abort()


async def serve(host: str, port: int, partitions: int) -> None:
    loop = asyncio.get_running_loop()
    standin = StandIn(host, port, partitions)
    server = await loop.create_server(lambda: _Connection(standin), host, port, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"standin ready on {host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--partitions", type=int, default=6)
    args = ap.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.partitions))


if __name__ == "__main__":
    main()
