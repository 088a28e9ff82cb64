"""One-line descriptions of messages for a seed's readable trace."""

from __future__ import annotations

from dataclasses import fields

from riverlog.broker.controller.raft.messages import FetchResponse, FetchSnapshotResponse, Message

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


def describe_records(records: list, image: object) -> str:
    """One controller operation's records, short: topics by name where ``image`` (before them) knows them."""
    from riverlog.broker.metadata import records as r

    names = {t.topic_id: t.name for t in getattr(image, "topics", {}).values()}
    names.update({rec.topic_id: rec.name for rec in records if isinstance(rec, r.TopicRecord)})
    parts = []
    for rec in records:
        if isinstance(rec, r.RegisterBrokerRecord):
            parts.append(f"register b{rec.node_id} ({'fenced' if rec.fenced else 'unfenced'}, "
                         f"incarnation {rec.incarnation_id[:6]})")
        elif isinstance(rec, r.FenceBrokerRecord):
            parts.append(f"fence b{rec.node_id}@{rec.broker_epoch}")
        elif isinstance(rec, r.UnfenceBrokerRecord):
            parts.append(f"unfence b{rec.node_id}@{rec.broker_epoch}")
        elif isinstance(rec, r.TopicRecord):
            parts.append(f"topic {rec.name}={rec.topic_id[:6]}")
        elif isinstance(rec, r.PartitionRecord):
            parts.append(f"{names.get(rec.topic_id, rec.topic_id[:6])}-{rec.partition} replicas "
                         f"{list(rec.replicas)} isr {list(rec.isr)} leader {rec.leader} "
                         f"(leader epoch {rec.leader_epoch}, partition epoch {rec.partition_epoch})")
        elif isinstance(rec, r.RemoveTopicRecord):
            parts.append(f"remove topic {names.get(rec.topic_id, '?')}={rec.topic_id[:6]}")
        elif isinstance(rec, r.ProducerIdsRecord):
            parts.append(f"producer ids for b{rec.broker_id}@{rec.broker_epoch} up to {rec.next_producer_id}")
        else:
            parts.append(type(rec).__name__)
    return "; ".join(parts)
