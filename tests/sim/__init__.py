"""Deterministic simulation of the Raft quorum.

A whole cluster of ``RaftCore``s runs in one process under a seeded clock,
network and disk; checkers look at every step; a failing seed replays the
same trace. ``python -m tests.sim --seeds N`` runs many seeds,
``--seed S`` one with its trace. With ``--metadata`` the nodes' state
machines are the metadata image and the leader is the active controller
for simulated brokers and topic operations (metadata_cluster.py).
"""
