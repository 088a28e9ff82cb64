"""ControllerChannel on the node that is the active controller: the request runs in-process."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import trio

from riverlog.broker.controller.forwarding import ControllerChannel, ControllerUnavailable


def _leading_driver():
    return SimpleNamespace(node_id=1, core=SimpleNamespace(is_leader=True, leader_id=1))


async def test_a_fault_in_the_local_controller_is_retried_not_raised(caplog):
    # Before: the exception left send() and ended the task that asked (registration,
    # heartbeats, producer id blocks), taking the whole broker down with it.
    calls = []

    async def local(api_key, version, body):
        calls.append(api_key)
        if len(calls) == 1:
            raise RuntimeError("a controller fault")
        return {"error_code": 0}

    channel = ControllerChannel(_leading_driver(), {}, local)
    with trio.fail_after(10):
        assert await channel.send(67, 0, {}, timeout_s=5) == {"error_code": 0}
    assert len(calls) == 2
    assert any("a controller fault" in r.getMessage() or r.exc_info for r in caplog.records if r.levelname == "ERROR")


async def test_a_local_controller_that_keeps_failing_is_unavailable_after_the_timeout(autojump_clock):
    async def local(api_key, version, body):
        raise RuntimeError("a controller fault")

    channel = ControllerChannel(_leading_driver(), {}, local)
    with pytest.raises(ControllerUnavailable):
        await channel.send(67, 0, {}, timeout_s=1)
