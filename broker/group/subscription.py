"""The topics of a consumer-protocol subscription (ConsumerProtocolSubscription).

Layout, all versions (never flexible): int16 version, int32 topic count, then
per topic an int16 length and UTF-8 bytes; user data and owned partitions
follow and are not read here.
"""

from __future__ import annotations

import struct

CONSUMER_PROTOCOL_TYPE = "consumer"


def subscription_topics(metadata: bytes) -> set[str] | None:
    """The subscribed topics, or None when the bytes do not parse."""
    try:
        (count,) = struct.unpack_from(">i", metadata, 2)
        if count < 0:
            return None
        pos, topics = 6, set()
        for _ in range(count):
            (n,) = struct.unpack_from(">h", metadata, pos)
            if n < 0 or pos + 2 + n > len(metadata):
                return None
            topics.add(metadata[pos + 2:pos + 2 + n].decode("utf-8"))
            pos += 2 + n
        return topics
    except (struct.error, UnicodeDecodeError):
        return None


def encode_subscription(topics: list[str], version: int = 0) -> bytes:
    """A minimal subscription (no user data); for tests and tools."""
    out = [struct.pack(">hi", version, len(topics))]
    for t in topics:
        b = t.encode()
        out.append(struct.pack(">h", len(b)) + b)
    out.append(struct.pack(">i", -1))  # null user data
    return b"".join(out)
