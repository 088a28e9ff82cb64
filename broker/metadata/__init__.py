"""Cluster metadata: records, the immutable image, the metadata log and the controller seam.

- records.py: metadata records and their JSON encoding (pure).
- image.py: MetadataImage, apply, changed_partitions (pure).
- validation.py, placement.py, decisions.py: Kafka's rules (pure).
- metadata_log.py: the durable log ``__cluster_metadata-0``.
- controller.py: QuorumController, one voter; the Raft issue replaces its insides.
"""
