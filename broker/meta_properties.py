"""``meta.properties``: the identity a data directory carries (as Kafka's).

Written once, on the first start::

    version=1
    node.id=1
    cluster.id=Xk3v...

A data directory written by another node id is refused: its data belongs to
that node, and serving it under another id would confuse clients.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Mapping
from pathlib import Path

from riverlog.broker.controller.raft_store import METADATA_DIR
from riverlog.broker.storage.checkpoint import fsync_dir
from riverlog.broker.storage.log_config import ConfigError

FILE_NAME = "meta.properties"


def cluster_id_for(voters: Mapping[int, tuple[str, int]]) -> str | None:
    """The cluster id nodes of a new cluster agree on without talking: derived
    from ``controller.quorum.voters`` (every node is started with the same
    string), in Kafka's 22-character form. None for the single broker."""
    if not voters:
        return None
    text = ",".join(f"{n}@{h}:{p}" for n, (h, p) in sorted(voters.items()))
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()[:16]).decode().rstrip("=")


def load_or_create_cluster_id(data_dir: Path, node_id: int, new_cluster_id: str | None = None) -> str:
    """The cluster id in ``meta.properties``; a new data directory gets
    ``new_cluster_id`` (or a random one) and keeps it for good."""
    path = data_dir / FILE_NAME
    if path.exists():
        props = {}
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                props[key.strip()] = value.strip()
        if props.get("node.id") != str(node_id):
            raise ConfigError(f"{data_dir} belongs to node.id {props.get('node.id')}, not {node_id}")
        if not props.get("cluster.id"):
            raise ConfigError(f"{path} has no cluster.id")
        return props["cluster.id"]
    # Kafka's format: a random UUID in URL-safe base64 without padding.
    cluster_id = new_cluster_id or base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    tmp = path.with_name(FILE_NAME + ".tmp")
    tmp.write_text(f"version=1\nnode.id={node_id}\ncluster.id={cluster_id}\n")
    tmp.replace(path)
    fsync_dir(data_dir)
    return cluster_id


def check_new_voter(data_dir: Path, voters: Mapping[int, tuple[str, int]], node_id: int, initial_cluster: bool) -> None:
    """Refuse to start a voter of a multi-voter quorum whose data directory
    has no metadata, unless it is told this is a new cluster's first start.

    A voter whose data was wiped and that rejoins with an empty log would
    vote as if it had never acknowledged anything, and could elect a
    candidate that lacks committed metadata: Raft's safety rests on votes
    coming from the log a voter acknowledged with. Kafka makes every node
    format its storage first; here the first start of a new cluster says so
    with ``--initial-cluster`` (``riverlog cluster up`` does), and a wiped
    voter must be restored, or knowingly started with it.
    """
    if len(voters) < 2 or node_id not in voters or initial_cluster or (data_dir / METADATA_DIR).is_dir():
        return
    raise ConfigError(
        f"{data_dir} holds no metadata, and node {node_id} is a voter of a {len(voters)}-voter quorum: a voter "
        "rejoining with an empty log could elect a leader that lacks committed metadata. For the first start "
        "of a new cluster pass --initial-cluster (riverlog cluster up does); for a voter whose data was lost, "
        "restore it, or pass --initial-cluster knowing that a majority of the other voters must hold the log."
    )
