"""The systemd units in deploy/systemd pass `systemd-analyze verify` with the installed console script."""
from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = sorted((Path(__file__).parents[2] / "deploy" / "systemd").glob("*.service"))
SWARM = Path(sys.executable).with_name("swarm")


def test_every_daemon_has_a_unit():
    assert [u.name for u in UNITS] == ["swarm-agent.service", "swarm-discovery.service", "swarm-manager.service"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_verifies(unit, tmp_path):
    assert shutil.which("systemd-analyze"), "systemd-analyze is part of the bootstrap packages"
    assert SWARM.exists(), f"console script {SWARM} is installed by `make venv`"
    text = unit.read_text().replace("/opt/swarmd/bin/swarm", str(SWARM))
    copy = tmp_path / unit.name
    copy.write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if unit.name in line and "docker.service" not in line]
    assert proc.returncode == 0 or not problems, proc.stdout + proc.stderr
    assert not problems, problems


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_restarts_stops_cleanly_and_is_hardened(unit):
    cfg = configparser.ConfigParser(strict=False, interpolation=None)
    cfg.optionxform = str
    cfg.read_string(unit.read_text())
    service = cfg["Service"]
    assert service["Restart"] in ("on-failure", "always")
    assert service["KillSignal"] == "SIGTERM"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert "EnvironmentFile" in service
    if unit.name == "swarm-agent.service":
        # reaches the engine through the docker group and the socket, not as root
        assert service["Group"] == "docker" and "/run/docker.sock" in service["ReadWritePaths"]
    else:
        assert service["DynamicUser"] == "yes"
