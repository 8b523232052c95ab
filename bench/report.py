"""Benchmark rows: a value, its unit, a target and whether it was met; printed and saved as JSON."""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


@dataclass
class Row:
    name: str
    value: float
    unit: str
    target: str = ""          # e.g. "<= 2", ">= 5000"; empty: informational
    pass_: bool | None = None

    def to_json(self) -> dict:
        d = asdict(self)
        d["pass"] = d.pop("pass_")
        return d


def judged(name: str, value: float, unit: str, target: str = "") -> Row:
    """A row whose pass/miss follows from `target` ("<= X" or ">= X")."""
    ok = None
    if target:
        op, _, bound = target.partition(" ")
        ok = value <= float(bound) if op == "<=" else value >= float(bound)
    return Row(name, round(value, 4), unit, target, ok)


def print_table(rows: list[Row]) -> None:
    width = max([len(r.name) for r in rows] + [10])
    print(f"{'measurement':<{width}}  {'value':>12}  {'unit':<8}  {'target':<10}  result")
    print("-" * (width + 46))
    for r in rows:
        verdict = "" if r.pass_ is None else ("PASS" if r.pass_ else "MISS")
        print(f"{r.name:<{width}}  {r.value:>12.4g}  {r.unit:<8}  {r.target:<10}  {verdict}")


def save(rows: list[Row], path: Path | None = None) -> Path:
    path = path or RESULTS / "latest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count(),
                       "kernel": platform.release()},
           "rows": [r.to_json() for r in rows]}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path
