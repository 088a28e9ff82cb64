"""Code a reader can hold: no function over 80 lines and no class over 400
in broker/, client/ or native/, unless the line just above it (above its
decorators) says why, as ``# size: <reason>``.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = ("broker", "client", "native")
MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = 400
MARKER = "# size:"


def _sources() -> list[pathlib.Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))


def _has_reason(lines: list[str], node: ast.AST) -> bool:
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    above = lines[first - 2].strip() if first >= 2 else ""
    return above.startswith(MARKER) and len(above) > len(MARKER) + 3


def oversized(path: pathlib.Path, root: pathlib.Path = ROOT) -> list[str]:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            limit, kind = MAX_FUNCTION_LINES, "function"
        elif isinstance(node, ast.ClassDef):
            limit, kind = MAX_CLASS_LINES, "class"
        else:
            continue
        length = node.end_lineno - node.lineno + 1
        if length > limit and not _has_reason(lines, node):
            found.append(f"{path.relative_to(root)}:{node.lineno} {kind} {node.name} is {length} lines")
    return found


def test_no_function_or_class_is_over_its_limit_without_a_reason():
    found = [line for path in _sources() for line in oversized(path)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("marked", [True, False])
def test_the_check_sees_a_long_function_and_honours_a_written_reason(tmp_path, marked):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    reason = "# size: one table of cases, read top to bottom\n" if marked else ""
    source = tmp_path / "long.py"
    source.write_text(f"{reason}@staticmethod\ndef long():\n{body}\n")
    assert (oversized(source, tmp_path) == []) is marked
