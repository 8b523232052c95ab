"""`swarm up --nodes N` starts a whole local cluster in the background; `swarm down` stops it by pid."""
from __future__ import annotations

import json
import os
import subprocess

from swarmd.localcluster.devcluster import Process, read_state
from swarmd.localcluster.swarm import swarm_argv


def swarm(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(swarm_argv(*args), capture_output=True, text=True, timeout=timeout)


def test_up_prints_docker_host_and_down_stops_every_process(tmp_path):
    state_dir = str(tmp_path / "dev")
    up = swarm("up", "--nodes", "2", "--state-dir", state_dir)
    try:
        assert up.returncode == 0, up.stderr + (tmp_path / "dev" / "up.log").read_text(errors="replace")
        export = up.stdout.strip().splitlines()[-1]
        assert export.startswith("export DOCKER_HOST=tcp://127.0.0.1:"), up.stdout
        docker_host = export.split("=", 1)[1]
        state = read_state(tmp_path / "dev")
        assert state["docker_host"] == docker_host
        procs = [Process(**p) for p in state["processes"]]
        names = {p.name for p in procs}
        assert {"supervisor", "etcd", "node1", "node2", "discovery", "agent-node1", "agent-node2",
                "manager0"} <= names
        assert all(p.alive() for p in procs)

        env = {**os.environ, "DOCKER_HOST": docker_host, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
        info = subprocess.run(["docker", "info", "--format", "{{json .}}"], env=env, capture_output=True,
                              text=True, timeout=30)
        assert info.returncode == 0, info.stderr
        status = dict((k.strip(), v) for k, v in json.loads(info.stdout)["SystemStatus"])
        assert status["Nodes"] == "2"
        hello = subprocess.run(["docker", "run", "--rm", "hello-world"], env=env, capture_output=True, text=True,
                               timeout=60)
        assert "Hello from Docker!" in hello.stdout, hello.stderr

        again = swarm("up", "--nodes", "1", "--state-dir", state_dir)
        assert again.returncode == 1 and "already up" in again.stderr
    finally:
        down = swarm("down", "--state-dir", state_dir)
    assert down.returncode == 0, down.stderr
    assert not any(p.alive() for p in procs)
    assert read_state(tmp_path / "dev") is None
    assert swarm("down", "--state-dir", state_dir).returncode == 1     # nothing left to stop
