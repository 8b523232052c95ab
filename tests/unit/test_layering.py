"""The layers of the one `swarmd` package, read from the source's imports (no module is run):
the CLI sits above the daemons, the daemons above the shared library, and the development lab
is used by the CLI and tests alone."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# tree folder -> the package it installs as (setup.py's PACKAGE_DIRS)
FOLDERS = {"swarmd": "swarmd", "manager": "swarmd.manager", "agent": "swarmd.agent",
           "discovery": "swarmd.discovery", "proto": "swarmd.proto"}
DAEMONS = ("swarmd.manager", "swarmd.agent", "swarmd.discovery")


def imports_by_module() -> dict[str, set[str]]:
    """module name -> the swarmd modules it imports (absolute imports; the tree has no others)."""
    found: dict[str, set[str]] = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            if "_pb2" in path.name:
                continue
            rel = path.relative_to(ROOT / folder).with_suffix("")
            module = ".".join([package, *rel.parts]).removesuffix(".__init__")
            names = set()
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module)
                    names.update(f"{node.module}.{a.name}" for a in node.names)
                elif isinstance(node, ast.Import):
                    names.update(a.name for a in node.names)
            found[module] = {n for n in names if n == "swarmd" or n.startswith("swarmd.")}
    return found


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _offenders(importers: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{mod} imports {name}"
                  for mod, names in imports_by_module().items() if _under(mod, importers)
                  for name in names if any(_under(name, f) for f in forbidden))


def test_the_shared_library_imports_no_daemon_cli_or_lab():
    assert _offenders("swarmd.common", (*DAEMONS, "swarmd.cli", "swarmd.localcluster")) == []


def test_no_daemon_imports_the_cli_or_the_lab():
    for daemon in DAEMONS:
        assert _offenders(daemon, ("swarmd.cli", "swarmd.localcluster")) == []


def test_daemons_do_not_import_each_other():
    for daemon in DAEMONS:
        others = tuple(d for d in DAEMONS if d != daemon)
        assert _offenders(daemon, others) == []


def test_the_scan_sees_real_imports():
    graph = imports_by_module()
    assert "swarmd.common.logs" in graph["swarmd.manager.daemon"]
    assert any(_under(n, "swarmd.manager") for n in graph["swarmd.cli.manage"])
