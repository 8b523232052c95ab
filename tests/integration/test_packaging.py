"""The wheel installs one top-level package, `swarmd`, holding every module of the tree under
the name setup.py maps it to, and it runs from there alone."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"swarmd": "swarmd", "manager": "swarmd/manager", "agent": "swarmd/agent",
           "discovery": "swarmd/discovery", "proto": "swarmd/proto"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("swarmd-*.whl")
    return path


def test_the_wheel_has_exactly_one_top_level_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"swarmd"}
    for folder, installed in FOLDERS.items():
        for src in (ROOT / folder).rglob("*.py"):
            if "__pycache__" in src.parts:
                continue
            assert f"{installed}/{src.relative_to(ROOT / folder).as_posix()}" in names, src
    assert "swarmd/proto/swarm/v1/agent_pb2_grpc.py" in names
    assert any(n.endswith(".dist-info/entry_points.txt") for n in names)


def test_the_unpacked_wheel_runs_on_its_own(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path)
    probe = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); "
             "import swarmd.manager.daemon, swarmd.agent.daemon, swarmd.discovery.daemon, swarmd.cli; "
             "import swarmd.proto.swarm.v1.agent_pb2_grpc as stubs; "
             f"assert stubs.__file__.startswith({str(tmp_path)!r}), stubs.__file__; "
             "sys.argv = ['swarm', '--help']; swarmd.cli.main()")
    ran = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "discovery" in ran.stdout and "manage" in ran.stdout and "join" in ran.stdout
