"""Handlers get the broker's services (broker/services.py), never the Broker:
no handler module names it or reaches for a ``.broker``, none reaches into
another object's private attributes, and nothing a handler can reach from
its context leads back to the Broker (its lifecycle: start, stop, listeners)."""

from __future__ import annotations

import ast
import functools
import types
from pathlib import Path

import pytest

import riverlog.broker.handlers as handlers
from riverlog.broker.config import BrokerConfig
from riverlog.broker.handlers import RequestContext
from riverlog.broker.server import Broker
from riverlog.broker.services import BrokerServices

HANDLER_MODULES = sorted(Path(handlers.__file__).parent.glob("*.py"))


def lifecycle_references(source: str) -> list[str]:
    """What in a handler module's source reaches past its services: the
    Broker class or its module, a ``.broker`` attribute (the old
    ``ctx.broker``), or another object's private attribute."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id == "Broker":
            found.append(f"line {node.lineno}: names Broker")
        elif isinstance(node, ast.Attribute) and node.attr in ("broker", "Broker"):
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"line {node.lineno}: private .{node.attr}")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").endswith("broker.server") or any(a.name == "Broker" for a in node.names):
                found.append(f"line {node.lineno}: imports from {node.module}")
        elif isinstance(node, ast.Import) and any(a.name.endswith("broker.server") for a in node.names):
            found.append(f"line {node.lineno}: imports the server")
    return found


def test_the_check_finds_what_it_looks_for():
    bad = (
        "from riverlog.broker.server import Broker\n"
        "def handle(ctx, request):\n"
        "    assert not isinstance(ctx, Broker)\n"
        "    ctx.broker.request_stop()\n"
        "    return ctx.services.groups._loaded\n"
    )
    assert len(lifecycle_references(bad)) == 4
    good = "def handle(ctx, request):\n    return ctx.services.partitions.led_partition('t', 0)\n"
    assert lifecycle_references(good) == []


@pytest.mark.parametrize("path", HANDLER_MODULES, ids=lambda p: p.name)
def test_no_handler_module_reaches_for_the_broker(path):
    assert lifecycle_references(path.read_text()) == []


@pytest.mark.parametrize("module", ["server", "services", "partitions"])
def test_the_broker_and_its_services_call_public_interfaces_only(module):
    """Another object's private attribute (the group service's, say) is not
    reached for from the broker's own modules either."""
    source = (Path(handlers.__file__).parent.parent / f"{module}.py").read_text()
    assert [r for r in lifecycle_references(source) if "private" in r] == []


def test_the_request_context_holds_the_services():
    assert RequestContext._fields == ("services", "header", "peer")


_LEAVES = (type, types.ModuleType, types.CodeType, types.FrameType, types.CoroutineType, types.GeneratorType,
           str, bytes, bytearray, memoryview, int, float, complex, bool, type(None))  # fmt: skip


def _referents(obj) -> list:
    """What ``obj`` holds the way code reaches it: attributes, items, a bound
    method's object, a closure's cells (not a function's module globals)."""
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    if isinstance(obj, types.MethodType):
        return [obj.__self__, obj.__func__]
    if isinstance(obj, types.FunctionType):
        cells = [c.cell_contents for c in obj.__closure__ or () if c.cell_contents is not None]
        return [*cells, *(obj.__defaults__ or ()), *(obj.__kwdefaults__ or {}).values()]
    if isinstance(obj, functools.partial):
        return [obj.func, *obj.args, *obj.keywords.values()]
    held = list(vars(obj).values()) if hasattr(obj, "__dict__") else []
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if hasattr(obj, slot):
                held.append(getattr(obj, slot))
    return held


def reaches_a_broker(root) -> list[str]:
    """The paths from ``root`` to a Broker, if any (Trio's own objects, which
    lead to every task, are not followed)."""
    seen, paths = {id(root)}, []
    todo = [(root, "services")]
    while todo:
        obj, path = todo.pop()
        if isinstance(obj, Broker):
            paths.append(path)
            continue
        if isinstance(obj, _LEAVES) or type(obj).__module__.split(".")[0] in ("trio", "_trio", "logging"):
            continue
        for held in _referents(obj):
            if id(held) not in seen:
                seen.add(id(held))
                todo.append((held, f"{path} -> {type(held).__name__}"))
    return paths


def test_the_walk_finds_a_broker_held_anywhere(tmp_path):
    broker = Broker(BrokerConfig.from_properties({"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path)}))
    holder = types.SimpleNamespace(callbacks=[functools.partial(print, {"x": lambda: broker})])
    assert reaches_a_broker(holder)
    assert reaches_a_broker(types.SimpleNamespace(on_change=[broker.request_stop]))


async def test_nothing_a_handler_reaches_leads_back_to_the_broker(tmp_path, nursery):
    config = BrokerConfig.from_properties({"listeners": "127.0.0.1:0", "log.dirs": str(tmp_path)})
    broker = await nursery.start(Broker(config).serve)  # started: the quorum attached, groups loaded
    services = broker.services
    assert isinstance(services, BrokerServices)
    assert reaches_a_broker(services) == []
