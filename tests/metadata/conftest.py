import itertools

import pytest
import trio

from riverlog.broker.controller.raft.roles import RaftConfig
from riverlog.broker.controller.raft_driver import RaftDriver
from riverlog.broker.metadata.controller import QuorumController
from riverlog.broker.metadata.decisions import TopicDefaults
from riverlog.broker.metadata.image_machine import MetadataStateMachine


class RunningController(QuorumController):
    """A QuorumController on a one-voter quorum of its own, stoppable."""

    scope: trio.CancelScope
    stopped: trio.Event

    async def close(self) -> None:  # type: ignore[override]
        self.scope.cancel()
        await self.stopped.wait()


@pytest.fixture
def make_controller(tmp_path, nursery):
    ids = itertools.count(1)

    async def make(node_id=1, defaults=TopicDefaults(), start=True, data_dir=None):
        machine = MetadataStateMachine("test-cluster", node_id)
        driver = RaftDriver(RaftConfig(node_id, frozenset({node_id})), data_dir or tmp_path, machine,
                            cluster_id="test-cluster", peers={}, listen=None)  # fmt: skip
        c = RunningController(driver, machine, defaults=defaults, clock_ms=lambda: 1_700_000_000_000,
                              new_topic_id=lambda: f"{next(ids):032x}")  # fmt: skip
        c.scope, c.stopped = trio.CancelScope(), trio.Event()

        async def run(task_status=trio.TASK_STATUS_IGNORED):
            try:
                with c.scope:
                    await driver.serve(task_status=task_status)
            finally:
                c.stopped.set()

        await nursery.start(run)
        if start:
            await c.start("127.0.0.1", 9092)
        return c

    return make
