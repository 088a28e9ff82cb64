"""``partition.metadata``: which topic a partition directory belongs to.

Kafka writes this file (``version: 0`` and ``topic_id: ...``) so that a
directory named ``orders-0`` left over from a deleted topic is never taken
for the partition of a new topic with the same name: a broker that was down
while ``orders`` was deleted and created again must not serve the old
records under the new topic. Here the topic id is the metadata's own, 32 hex
digits. Written atomically (temp file, fsync, rename, fsync dir).
"""

from __future__ import annotations

from pathlib import Path

from riverlog.broker.storage.checkpoint import write_atomically

FILE_NAME = "partition.metadata"


def read_topic_id(partition_dir: Path) -> str | None:
    """The topic id recorded in the directory; None if there is none (or it is unreadable)."""
    try:
        text = (partition_dir / FILE_NAME).read_text()
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "topic_id":
            return value.strip() or None
    return None


def write_topic_id(partition_dir: Path, topic_id: str) -> None:
    write_atomically(partition_dir / FILE_NAME, f"version: 0\ntopic_id: {topic_id}\n".encode())
