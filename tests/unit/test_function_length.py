"""No production function is longer than 120 lines: a reader sees each one whole."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("swarmd", "manager", "agent", "discovery", "bench", "deploy")
LIMIT = 120


def long_functions(limit: int = LIMIT) -> list[str]:
    found = []
    for folder in PRODUCTION:
        for path in (ROOT / folder).rglob("*.py"):
            if "_pb2" in path.name or "__pycache__" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > limit:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return sorted(found)


def test_no_production_function_is_longer_than_120_lines():
    assert long_functions() == []


def test_the_scan_finds_functions():
    assert long_functions(limit=40), "the scan saw no function of over 40 lines: is it reading the tree?"
