"""The cleaner's choice of logs and of their cleanable range (Kafka's rules)."""

from __future__ import annotations

from riverlog.broker.storage.cleaner_choice import (
    LogFacts,
    SegmentFacts,
    first_dirty_offset,
    first_uncleanable_offset,
    log_to_clean,
    logs_to_clean,
)

NOW = 1_700_000_100_000
OLD = NOW - 60_000
NEVER = 2**63 - 1


def facts(segments, *, end=None, checkpoint=None, start=None, hw=None, ratio=0.5, min_lag=0, max_lag=NEVER,
          tombstones_due=None, name="state-0") -> LogFacts:  # fmt: skip
    """``segments``: (base offset, size) or (base offset, size, first ts, largest ts); the last is active."""
    segs = tuple(SegmentFacts(s[0], s[1], *(s[2:] or (OLD, OLD))) for s in segments)
    end = segs[-1].base_offset + 10 if end is None else end
    return LogFacts(
        name=name, segments=segs, log_start_offset=segs[0].base_offset if start is None else start,
        log_end_offset=end, high_watermark=end if hw is None else hw, first_dirty_offset=checkpoint,
        min_cleanable_dirty_ratio=ratio, min_compaction_lag_ms=min_lag, max_compaction_lag_ms=max_lag,
        tombstones_due_ms=tombstones_due,
    )  # fmt: skip


def test_the_active_segment_counts_as_neither_clean_nor_dirty():
    # The failing run: a pass saw most bytes in the active segment and
    # took them as clean; once rolled they are dirty and must earn a pass.
    log = facts([(0, 600), (100, 90_000), (4000, 50_000)], checkpoint=100)
    chosen = log_to_clean(log, NOW)
    assert chosen is not None and chosen.reason == "dirty ratio"
    assert (chosen.clean_bytes, chosen.cleanable_bytes) == (600, 90_000)
    assert (chosen.first_dirty_offset, chosen.first_uncleanable_offset) == (100, 4000)


def test_a_log_whose_records_are_all_in_the_active_segment_is_never_chosen():
    # One producer batch larger than segment.bytes is the active segment on its
    # own: with no later append nothing rolls it (segment.ms acts on appends).
    assert log_to_clean(facts([(0, 107_000)], end=4051), NOW) is None


def test_the_dirty_ratio_is_taken_over_the_cleanable_part_against_the_threshold():
    segs = [(0, 100), (10, 60), (20, 5_000)]
    assert log_to_clean(facts(segs, checkpoint=10), NOW) is None  # 60 / 160 = 0.375
    assert log_to_clean(facts(segs, checkpoint=10, ratio=0.3), NOW) is not None
    chosen = log_to_clean(facts([(0, 100), (10, 120), (20, 5_000)], checkpoint=10), NOW)
    assert chosen is not None and round(chosen.dirty_ratio, 3) == round(120 / 220, 3)
    # Exactly the threshold is not above it (as Kafka).
    assert log_to_clean(facts([(0, 100), (10, 100), (20, 1)], checkpoint=10), NOW) is None


def test_a_log_never_cleaned_is_all_dirty_and_a_checkpoint_outside_the_log_resets_to_its_start():
    segs = [(50, 100), (60, 100), (70, 10)]
    assert first_dirty_offset(facts(segs)) == 50
    assert first_dirty_offset(facts(segs, checkpoint=20)) == 50  # records deleted past it
    assert first_dirty_offset(facts(segs, checkpoint=500, end=75)) == 50  # truncated below it
    assert first_dirty_offset(facts(segs, checkpoint=60)) == 60
    assert log_to_clean(facts(segs, checkpoint=500, end=75), NOW).cleanable_bytes == 200


def test_nothing_at_or_past_the_high_watermark_is_cleanable():
    segs = [(0, 100), (10, 100), (20, 100), (30, 10)]
    assert first_uncleanable_offset(facts(segs, end=35, hw=25), NOW) == 20  # hw inside a segment: not it
    assert first_uncleanable_offset(facts(segs, end=35, hw=20), NOW) == 20  # up to its base: the one before is
    assert log_to_clean(facts(segs, end=35, hw=5), NOW) is None


def test_segments_younger_than_min_compaction_lag_and_all_after_them_wait():
    young = NOW - 1_000
    segs = [(0, 100, OLD, OLD), (10, 100, young, young), (20, 100, OLD, OLD), (30, 10)]
    assert first_uncleanable_offset(facts(segs, min_lag=5_000), NOW) == 10
    assert first_uncleanable_offset(facts(segs, min_lag=500), NOW) == 30
    # A lagging segment already cleaned does not hold back the dirty ones.
    assert first_uncleanable_offset(facts(segs, min_lag=5_000, checkpoint=20), NOW) == 30


def test_max_compaction_lag_forces_a_pass_below_the_ratio_but_not_an_empty_one():
    segs = [(0, 1_000, OLD, OLD), (10, 10, NOW - 9_000, NOW - 8_000), (20, 5)]
    assert log_to_clean(facts(segs, checkpoint=10), NOW) is None
    chosen = log_to_clean(facts(segs, checkpoint=10, max_lag=5_000), NOW)
    assert chosen is not None and chosen.reason == "max.compaction.lag.ms"
    assert log_to_clean(facts(segs, checkpoint=10, max_lag=10_000), NOW) is None
    assert log_to_clean(facts(segs, checkpoint=20, max_lag=1), NOW) is None  # nothing dirty


def test_tombstones_a_pass_kept_bring_the_log_back_when_due():
    segs = [(0, 300), (10, 5)]
    assert log_to_clean(facts(segs, checkpoint=10), NOW) is None
    assert log_to_clean(facts(segs, checkpoint=10, tombstones_due=NOW + 1), NOW) is None
    chosen = log_to_clean(facts(segs, checkpoint=10, tombstones_due=NOW), NOW)
    assert chosen is not None and chosen.reason == "tombstones due"


def test_the_filthiest_log_goes_first_and_clean_logs_not_at_all():
    logs = [
        facts([(0, 100), (10, 200), (20, 1)], checkpoint=10, name="a-0"),  # 0.67
        facts([(0, 10), (10, 200), (20, 1)], checkpoint=10, name="b-0"),  # 0.95
        facts([(0, 100), (10, 1)], checkpoint=10, name="c-0"),  # clean
        facts([(0, 0)], end=0, name="d-0"),  # empty
    ]
    assert [c.name for c in logs_to_clean(logs, NOW)] == ["b-0", "a-0"]
