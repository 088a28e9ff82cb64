"""Cluster metadata: records, the immutable image, its state machine and the controller seam.

- records.py: metadata records and their JSON encoding (pure).
- image.py: MetadataImage, apply, changed_partitions (pure).
- validation.py, placement.py, decisions.py: Kafka's rules (pure).
- internal_topics.py: which topics are internal and what a client may not do to them (pure).
- image_machine.py: the image as the Raft log's state machine (entries, snapshots).
- controller.py: QuorumController, the operations, committed through the
  Raft quorum (broker/controller/) of the metadata log ``__cluster_metadata-0``.
"""
