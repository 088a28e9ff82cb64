from __future__ import annotations

import pytest

from tests.integration.broker_process import BrokerProcess


@pytest.fixture(scope="module")
def broker_process(tmp_path_factory):
    """One real broker process per test module (topics differ per test)."""
    b = BrokerProcess(tmp_path_factory.mktemp("broker") / "data").start()
    yield b
    b.close()


@pytest.fixture
def bootstrap(broker_process) -> str:
    return broker_process.bootstrap
