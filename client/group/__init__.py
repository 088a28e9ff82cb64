"""The client side of the classic consumer group's embedded "consumer"
protocol: the Subscription a member puts in JoinGroup's opaque `metadata`,
the Assignment the leader hands out in SyncGroup's opaque `assignment`
(consumer_protocol.py), and the partition assignors the leader runs to turn
the first into the second (assignors.py). Pure code, no I/O: the coordinator
driver encodes, decodes and calls `assign()`; interoperable with the Java
client's ConsumerProtocol and its range, roundrobin and cooperative-sticky
assignors, so a group that mixes clients agrees on who owns what.
"""
