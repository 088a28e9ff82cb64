"""A log directory back from a want of space is reloaded: what the broker
keeps per partition is dropped for that directory's partitions only."""

from __future__ import annotations

import errno

import trio

from riverlog.broker.config import BrokerConfig
from riverlog.broker.server import Broker

from .test_connection import _call, _connect


async def test_a_directory_back_online_drops_the_producer_state_of_its_own_partitions_only(tmp_path, nursery):
    a, b = tmp_path / "a", tmp_path / "b"
    config = BrokerConfig.from_properties({"listeners": "127.0.0.1:0", "log.dirs": f"{a},{b}"})
    broker = await nursery.start(Broker(config).serve)
    peer = await _connect(broker)
    _, created = await _call(peer, 19, 4, {"topics": [{"name": "t", "num_partitions": 2, "replication_factor": 1}]})
    assert created["topics"][0]["error_code"] == 0
    logs = broker.log_manager
    with trio.fail_after(10):
        while logs.get_log("t", 0) is None or logs.get_log("t", 1) is None:
            await trio.sleep(0.01)
    full, other = logs.log_dir_of("t", 0), logs.log_dir_of("t", 1)
    assert {full, other} == {a, b}
    kept = broker.partitions.producer_state("t", 1, logs.get_log("t", 1))
    broker.partitions.producer_state("t", 0, logs.get_log("t", 0))

    logs.failures.fail(full, OSError(errno.ENOSPC, "No space left on device"), "a test's append")
    broker._retry_offline_dirs()
    assert not logs.failures.is_offline(full)
    assert ("t", 0) not in broker.partitions._producer_states  # its log is a new one: rebuilt on first use
    assert broker.partitions._producer_states[("t", 1)][1] is kept  # (a rebuild reads the whole log)
