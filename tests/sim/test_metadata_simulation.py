"""The controller and metadata replay simulation as a test, and its checkers' own tests.

Seeds run in chunks, each chunk over a small process pool, so a failure
names its seeds (replay one with ``python -m tests.sim --metadata --seed S``).
The planted bugs show each metadata rule can fail: a checker that cannot
fail proves nothing.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import replace
from types import MappingProxyType

import pytest

from riverlog.broker.metadata import broker_lifecycle
from riverlog.broker.metadata.image import MetadataImage
from riverlog.broker.metadata.image_machine import MetadataStateMachine, encode_entry
from riverlog.broker.metadata.records import (
    FenceBrokerRecord,
    PartitionRecord,
    RegisterBrokerRecord,
    TopicRecord,
    UnfenceBrokerRecord,
)

from tests.sim.checkers import Checker, Violation
from tests.sim.controller import SimController
from tests.sim.metadata_checkers import MetadataChecker
from tests.sim.metadata_cluster import MetadataSimulation
from tests.sim.metadata_machine import CLUSTER_ID

CHUNKS = 4
SEEDS_PER_CHUNK = 50
TOPIC_ID = "ab" * 16


def chunk_id(chunk: int) -> str:
    return f"seeds{chunk * SEEDS_PER_CHUNK}-{(chunk + 1) * SEEDS_PER_CHUNK - 1}"


def run_seed(seed: int) -> str | None:
    violation = MetadataSimulation(seed).run().violation
    return None if violation is None else str(violation)


@pytest.mark.parametrize("chunk", range(CHUNKS), ids=chunk_id)
def test_no_seed_breaks_a_metadata_rule(chunk: int) -> None:
    seeds = range(chunk * SEEDS_PER_CHUNK, (chunk + 1) * SEEDS_PER_CHUNK)
    with multiprocessing.get_context("fork").Pool(min(2, os.cpu_count() or 1)) as pool:
        failures = [v for v in pool.map(run_seed, seeds, chunksize=5) if v is not None]
    assert not failures, f"{len(failures)} seeds broke a rule:\n" + "\n".join(failures)


def test_a_metadata_seed_replays_the_same_trace() -> None:
    traces: list[list[str]] = [[], []]
    for trace in traces:
        MetadataSimulation(3, trace=trace.append).run()
    assert traces[0] == traces[1]
    assert sum("controller: committed" in line for line in traces[0]) > 5


def test_the_simulation_moves_leaders_and_fences_brokers() -> None:
    """The runs exercise what the rules are about: fencing, elections, snapshots."""
    traces: list[str] = []
    for seed in range(4):
        MetadataSimulation(seed, trace=traces.append).run()
    text = "\n".join(traces)
    for what in ("fence expired broker", "unfence b", "leader -1", "controlled shutdown", "create topic",
                 "remove topic", "controller: active in epoch", "producer ids for b"):
        assert what in text, what


# -- the simulation catches planted bugs --------------------------------------------------


def first_rules(seeds: range) -> set[str]:
    """The rule the first violating seed broke (empty if none did)."""
    for seed in seeds:
        violation = MetadataSimulation(seed).run().violation
        if violation is not None:
            return {violation.rule}
    return set()


def test_a_fence_that_leaves_the_leader_in_place_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker_lifecycle, "_partitions_without", lambda image, node_id: [])
    assert "a fenced broker never leads" in first_rules(range(20))


def test_an_election_that_keeps_the_leader_epoch_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def same_epoch(topic, part, isr, leader):  # type: ignore[no-untyped-def]
        return PartitionRecord(topic.topic_id, part.partition, part.replicas, isr, leader, part.leader_epoch,
                               part.partition_epoch + 1)  # fmt: skip
    monkeypatch.setattr(broker_lifecycle, "_changed", same_epoch)
    assert "a partition never has two leaders with one leader epoch" in first_rules(range(20))


def test_an_image_that_skips_an_entry_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    apply = MetadataStateMachine.apply

    def skipping(self, entries):  # type: ignore[no-untyped-def]
        apply(self, [e for e in entries if not (self.node_id == 1 and e.offset == 6)])
    monkeypatch.setattr(MetadataStateMachine, "apply", skipping)
    assert "a node's image is the replay of the committed log it applied" in first_rules(range(20))


def test_producer_id_blocks_handed_out_without_a_record_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.sim import brokers

    decide = brokers.decide_allocate_producer_ids
    monkeypatch.setattr(brokers, "decide_allocate_producer_ids", lambda *a, **kw: (decide(*a, **kw)[0], []))
    assert "no two producer id blocks overlap" in first_rules(range(20))


def test_a_snapshot_that_forgets_the_next_producer_id_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    from riverlog.broker.metadata import image_machine
    from riverlog.broker.metadata.records import ProducerIdsRecord

    records = image_machine.image_records
    monkeypatch.setattr(image_machine, "image_records",
                        lambda image: [r for r in records(image) if not isinstance(r, ProducerIdsRecord)])
    rules = first_rules(range(40))
    assert rules & {"a node's image is the replay of the committed log it applied",
                    "no two producer id blocks overlap"}, rules


def test_a_controller_deciding_before_its_leader_change_is_applied_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    from riverlog.broker.controller.raft.core import RaftCore

    monkeypatch.setattr(RaftCore, "leader_epoch_start", property(lambda self: -1))
    rules = first_rules(range(40))
    assert rules & {"every committed entry applies to the image before it",
                    "a partition never has two leaders with one leader epoch", "a fenced broker never leads"}, rules


# -- the checkers' rules, one planted image each --------------------------------------------


def image(*entries: list) -> MetadataImage:  # type: ignore[type-arg]
    out = MetadataImage.empty(CLUSTER_ID, 0)
    for offset, records in enumerate(entries):
        out = out.apply_entry(records, offset)
    return out


def base_entries() -> list[list]:  # type: ignore[type-arg]
    return [
        [RegisterBrokerRecord(1, "h1", 9092, fenced=True, incarnation_id="1" * 32)],
        [RegisterBrokerRecord(2, "h2", 9092, fenced=True, incarnation_id="2" * 32)],
        [UnfenceBrokerRecord(1, 0), UnfenceBrokerRecord(2, 1)],
        [TopicRecord("t", TOPIC_ID), PartitionRecord(TOPIC_ID, 0, (1, 2), (1, 2), 1, 0, 0)],
    ]


def checker_with_history(entries: list[list]) -> MetadataChecker:  # type: ignore[type-arg]
    raft = Checker(seed=99)
    for offset, records in enumerate(entries):
        raft.committed(0, offset, 1, encode_entry(records), False, "applied")
    return MetadataChecker(raft)


def caught(rule: str, plant) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Violation) as raised:
        plant()
    assert raised.value.rule == rule
    assert "seed 99" in str(raised.value)


def with_partition(img: MetadataImage, **changes: object) -> MetadataImage:
    topic = img.topics["t"]
    part = replace(topic.partitions[0], **changes)
    topic = replace(topic, partitions=MappingProxyType({0: part}))
    return replace(img, topics=MappingProxyType({"t": topic}), topics_by_id=MappingProxyType({TOPIC_ID: topic}))


def test_an_image_unlike_the_replay_is_caught() -> None:
    entries = base_entries()
    checker = checker_with_history(entries)
    checker.image_changed(0, image(*entries), 4)  # the replay itself is fine
    checker.image_changed(1, image(*entries[:2]), 2)
    skipped = image(*entries[:2]).apply_entry(entries[3], 3)  # the unfencing at offset 2 left out
    caught("a node's image is the replay of the committed log it applied",
           lambda: checker.image_changed(2, skipped, 4))


def test_a_committed_entry_that_does_not_apply_is_caught() -> None:
    entries = base_entries() + [[FenceBrokerRecord(1, 7)]]  # a stale broker epoch: does not apply
    checker = checker_with_history(entries)
    caught("every committed entry applies to the image before it", lambda: checker.replay(5))


def test_a_fenced_leader_is_caught() -> None:
    entries = base_entries() + [[FenceBrokerRecord(1, 0)]]  # fenced, but the partition still names it
    checker = checker_with_history(entries)
    caught("a fenced broker never leads", lambda: checker.image_changed(0, image(*entries), 5))


def test_two_leaders_at_one_leader_epoch_are_caught() -> None:
    entries = base_entries()
    checker = checker_with_history(entries)
    img = image(*entries)
    checker.partitions(0, img)
    checker.partitions(1, with_partition(img, partition_epoch=1))  # same leader, same epoch: fine
    caught("a partition never has two leaders with one leader epoch",
           lambda: checker.partitions(2, with_partition(img, leader=2)))


def test_a_leader_epoch_going_back_on_a_node_is_caught() -> None:
    entries = base_entries()
    checker = checker_with_history(entries)
    img = image(*entries)
    checker.partitions(0, with_partition(img, leader_epoch=3))
    checker.restarted(1)
    checker.partitions(1, img)  # another node, or a restart, may be behind
    caught("leader epochs only grow", lambda: checker.partitions(0, img))


def test_a_leader_outside_its_isr_is_caught() -> None:
    entries = base_entries()
    checker = checker_with_history(entries)
    caught("every leader is in its ISR",
           lambda: checker.partitions(0, with_partition(image(*entries), isr=(2,))))


def test_overlapping_producer_id_blocks_are_caught() -> None:
    checker = checker_with_history(base_entries())
    checker.producer_ids_allocated(1, 0, 1000)
    checker.producer_ids_allocated(2, 1000, 1000)  # adjacent: fine
    caught("no two producer id blocks overlap", lambda: checker.producer_ids_allocated(1, 1999, 1000))


def test_a_controller_that_decides_past_a_cancelled_operations_entry_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # QuorumController before the fix: a caller's timeout cancelled the operation and
    # released the lock with its entry in flight; the next decision ran without it.
    cancel = SimController.cancel

    def forgetting(self, op):  # type: ignore[no-untyped-def]
        cancel(self, op)
        if self.in_flight is not None and self.in_flight.op is op:
            self.in_flight = None
            self.schedule(1)
    monkeypatch.setattr(SimController, "cancel", forgetting)
    rules = first_rules(range(40))
    assert rules & {"every committed entry applies to the image before it",
                    "a partition never has two leaders with one leader epoch", "a fenced broker never leads"}, rules
