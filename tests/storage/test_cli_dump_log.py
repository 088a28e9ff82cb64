from __future__ import annotations

from click.testing import CliRunner

from riverlog.broker.cli import main
from riverlog.broker.storage.log import Log
from riverlog.broker.storage.log_config import LogConfig

from .conftest import make_batch


def _segment(tmp_path):
    log = Log(tmp_path / "t-0", LogConfig())
    log.append_as_leader(make_batch(2), leader_epoch=3)
    log.append_as_leader(make_batch(1), leader_epoch=3)
    log.close()
    return log.segments[0].log_path


def test_dump_log_lists_batches_and_records(tmp_path):
    result = CliRunner().invoke(main, ["dump-log", "--print-records", str(_segment(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "baseOffset: 0 lastOffset: 1 count: 2" in result.output
    assert "baseOffset: 2 lastOffset: 2 count: 1" in result.output
    assert "offset: 1 timestamp:" in result.output and "leaderEpoch: 3" in result.output


def test_dump_log_reports_a_corrupt_batch_and_fails(tmp_path):
    path = _segment(tmp_path)
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF
    path.write_bytes(bytes(data))
    result = CliRunner().invoke(main, ["dump-log", str(path)])
    assert result.exit_code == 1
    assert "corrupt batch at position" in result.output


def test_dump_log_needs_an_existing_file(tmp_path):
    result = CliRunner().invoke(main, ["dump-log", str(tmp_path / "missing.log")])
    assert result.exit_code == 2 and "does not exist" in result.output
