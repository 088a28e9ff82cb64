"""One-line descriptions of messages for a seed's readable trace."""

from __future__ import annotations

from dataclasses import fields

from broker.controller.raft.messages import FetchResponse, FetchSnapshotResponse, Message

SHORT = {
    "VoteRequest": "Vote", "VoteResponse": "Vote+",
    "BeginQuorumEpochRequest": "BeginQuorumEpoch", "BeginQuorumEpochResponse": "BeginQuorumEpoch+",
    "EndQuorumEpochRequest": "EndQuorumEpoch", "EndQuorumEpochResponse": "EndQuorumEpoch+",
    "FetchRequest": "Fetch", "FetchResponse": "Fetch+",
    "FetchSnapshotRequest": "FetchSnapshot", "FetchSnapshotResponse": "FetchSnapshot+",
}


def describe_message(message: Message) -> str:
    name = type(message).__name__
    parts = []
    for f in fields(message):
        if f.name in ("src", "dst"):
            continue
        value = getattr(message, f.name)
        if isinstance(message, FetchResponse) and f.name == "entries":
            if value:
                parts.append(f"entries=[{value[0].offset}..{value[-1].offset}]")
            continue
        if isinstance(message, FetchSnapshotResponse) and f.name == "chunk":
            parts.append(f"chunk={len(value)}B")
            continue
        if f.default is not None and value == f.default and f.name != "correlation":
            continue  # leave defaults out
        parts.append(f"{f.name}={value}")
    return f"{SHORT.get(name, name)} {message.src}->{message.dst} " + " ".join(parts)
