"""Partition replication (Kafka's leader/ISR model), pure cores first:
partition.py holds one replica's state and rules (ISR, high watermark,
AlterPartition, acks=all), truncation.py the follower's truncation rule
(KIP-101, KIP-279). No Trio, no files, no sockets, no clock: time comes in
as an int of milliseconds."""
