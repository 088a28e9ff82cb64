"""Deterministic simulation of the Raft quorum (STYLE.md item 11).

A whole cluster of ``RaftCore``s runs in one process under a seeded clock,
network and disk; checkers look at every step; a failing seed replays the
same trace. ``python -m tests.sim --seeds N`` runs many seeds,
``--seed S`` one with its trace.
"""
