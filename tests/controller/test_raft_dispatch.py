"""RaftCore.step finds each message's handler in an explicit table."""

from __future__ import annotations

import inspect
import random

import pytest

from riverlog.broker.controller.raft import core, messages
from riverlog.broker.controller.raft.core import RaftCore
from riverlog.broker.controller.raft.roles import RaftConfig

MESSAGE_TYPES = [cls for _, cls in inspect.getmembers(messages, inspect.isclass)
                 if issubclass(cls, messages.Message) and cls is not messages.Message]  # fmt: skip


def test_every_message_type_has_its_handler():
    assert len(MESSAGE_TYPES) == 10
    assert set(core._HANDLERS) == set(MESSAGE_TYPES)
    for cls, handler in core._HANDLERS.items():
        assert handler.__name__ == "_on_" + cls.__name__  # the handler of that message, not another's


def test_a_message_without_a_handler_is_refused_not_dropped():
    class Stray(messages.Message):
        pass

    node = RaftCore(RaftConfig(1, frozenset({1, 2, 3})), random.Random(1))
    with pytest.raises(KeyError):
        node.step(Stray(2, 1, 0))
