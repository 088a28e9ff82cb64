"""A broker's producer ids from the controller's blocks: which id comes next,
when the next block is asked for (90% into the current one), and what
happens while there is none."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from click.testing import CliRunner

from riverlog.broker.cli import main

from riverlog.broker.producer_ids import NoProducerIdBlock, ProducerIdBlocks, ProducerIdManager, legacy_producer_id_floor
from riverlog.broker.storage.checkpoint import CorruptCheckpointError, write_checkpoint
from riverlog.client.protocol import ErrorCode


def test_ids_come_from_the_current_block_then_the_prefetched_one():
    blocks = ProducerIdBlocks()
    with pytest.raises(NoProducerIdBlock):
        blocks.next_id()
    assert blocks.wants_block()
    blocks.add_block(0, 10)
    taken = [blocks.next_id() for _ in range(8)]
    assert taken == list(range(8)) and not blocks.wants_block()
    blocks.next_id()  # the 9th of 10: 90% used
    assert blocks.wants_block()
    blocks.add_block(50, 10)  # another broker had the blocks between
    assert not blocks.wants_block()
    assert [blocks.next_id() for _ in range(3)] == [9, 50, 51]
    assert not blocks.wants_block()


def test_with_every_block_used_there_is_no_id_until_the_next_block():
    blocks = ProducerIdBlocks()
    blocks.add_block(100, 2)
    assert [blocks.next_id(), blocks.next_id()] == [100, 101]
    for _ in range(2):
        with pytest.raises(NoProducerIdBlock):
            blocks.next_id()
    blocks.add_block(200, 2)
    assert blocks.next_id() == 200


@pytest.mark.parametrize("start,length", [(5, 10), (14, 10), (20, 0), (2**63 - 5, 10)])
def test_a_block_overlapping_one_already_taken_or_empty_is_refused(start, length):
    blocks = ProducerIdBlocks()
    blocks.add_block(10, 10)
    with pytest.raises(ValueError):
        blocks.add_block(start, length)
    assert blocks.next_id() == 10


async def test_the_manager_asks_at_once_then_ahead_of_need_and_retries_errors(autojump_clock):
    # (virtual time: the retries' backoff passes at once)
    answers = [(ErrorCode.COORDINATOR_NOT_AVAILABLE, -1, 0), RuntimeError("a controller fault"),
               (ErrorCode.NONE, 0, 10), (ErrorCode.STALE_BROKER_EPOCH, -1, 0), (ErrorCode.NONE, 10, 10)]  # fmt: skip
    asked = []

    async def allocate():
        asked.append(len(asked))
        answer = answers[len(asked) - 1]
        if isinstance(answer, Exception):
            raise answer  # it must not end the task (before: it took the broker down)
        return answer

    manager = ProducerIdManager()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(manager.run, allocate)
        with trio.fail_after(10):
            await manager.wait_first_block()
        assert len(asked) == 3  # an error and a fault, then the first block
        assert [manager.next_id() for _ in range(8)] == list(range(8))
        await trio.testing.wait_all_tasks_blocked()
        assert len(asked) == 3  # 80% used: not yet
        manager.next_id()
        with trio.fail_after(10):
            while len(asked) < 5 or manager.blocks.wants_block():
                await trio.sleep(0.01)
        assert [manager.next_id() for _ in range(3)] == [9, 10, 11]
        nursery.cancel_scope.cancel()


def test_the_legacy_file_gives_the_floor(tmp_path):
    assert legacy_producer_id_floor(tmp_path) == 0
    write_checkpoint(tmp_path / "producer-id-block", [(3000,)])
    assert legacy_producer_id_floor(tmp_path) == 3000
    write_checkpoint(tmp_path / "producer-id-block", [("x",)])
    with pytest.raises(CorruptCheckpointError):
        legacy_producer_id_floor(tmp_path)


@pytest.mark.parametrize("value", ["-1", str(2**63 - 1000), str(2**63), "x", "1 2"])
def test_a_legacy_file_out_of_range_or_corrupt_is_refused_naming_it(tmp_path, value):
    # A value near 2^63 made every allocation fail forever; a corrupt one was a traceback.
    (tmp_path / "producer-id-block").write_text(f"0\n1\n{value}\n")
    with pytest.raises(CorruptCheckpointError, match="producer-id-block"):
        legacy_producer_id_floor(tmp_path)


def test_the_highest_legacy_floor_allows_one_block(tmp_path):
    write_checkpoint(tmp_path / "producer-id-block", [(2**63 - 1 - 1000,)])
    assert legacy_producer_id_floor(tmp_path) == 2**63 - 1 - 1000


def test_broker_start_with_a_corrupt_legacy_file_exits_with_one_clear_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "producer-id-block").write_text("0\n1\nnot-a-number\n")
    result = CliRunner().invoke(main, ["broker", "start", "--listen", "127.0.0.1:0", "--data-dir", str(data)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    [line] = [line for line in result.output.splitlines() if line.strip()]
    assert str(data / "producer-id-block") in line and "delete" in line


async def test_failures_are_warned_by_name_every_10_s_and_so_is_having_no_id(autojump_clock, caplog):
    answers = iter([(ErrorCode.COORDINATOR_NOT_AVAILABLE, -1, 0)] * 30 + [(ErrorCode.NONE, 0, 1)]
                   + [(12345, -1, 0)] + [(ErrorCode.NONE, 1, 1)])  # fmt: skip
    manager = ProducerIdManager()
    with pytest.raises(NoProducerIdBlock):
        manager.next_id()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(manager.run, lambda: _answer(next(answers)))
        await manager.wait_first_block()
        assert manager.next_id() == 0
        while manager.blocks.wants_block():
            await trio.sleep(0.01)
        assert manager.next_id() == 1
        nursery.cancel_scope.cancel()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("no producer id left" in w for w in warnings)
    failed = [w for w in warnings if w.startswith("AllocateProducerIds")]
    # 30 refusals over ~25 s of backoff: a warning every 10 s, not one per spell nor one per try
    assert 3 <= sum("COORDINATOR_NOT_AVAILABLE" in w for w in failed) <= 4
    assert sum("12345" in w for w in failed) == 1  # a new spell warns at once; an unknown code by number


async def _answer(answer):
    return answer
