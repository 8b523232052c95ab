"""`swarm up --nodes N` starts a whole local cluster in the background; `swarm down` stops it by pid."""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess

import docker

from swarmd.localcluster import slots
from swarmd.localcluster.devcluster import Process, read_state
from swarmd.localcluster.engine import host_bridges
from swarmd.localcluster.processes import wait_until
from swarmd.localcluster.swarm import swarm_argv


def swarm(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(swarm_argv(*args), capture_output=True, text=True, timeout=timeout)


def test_up_prints_docker_host_and_down_stops_every_process(tmp_path):
    state_dir = str(tmp_path / "dev")
    bridges: set[str] = set()
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

        made = subprocess.run(["docker", "network", "create", "leaktest"], env=env, capture_output=True,
                              text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        bridges = set()
        for url in state["engines"].values():
            engine = docker.DockerClient(base_url=url, version="1.41")
            bridges |= {f"br-{n.id[:12]}" for n in engine.networks.list(names=["leaktest"])}
            engine.close()
        assert len(bridges) == 2 and bridges <= set(host_bridges()), bridges

        again = swarm("up", "--nodes", "1", "--state-dir", state_dir)
        assert again.returncode == 1 and "already up" in again.stderr
    finally:
        down = swarm("down", "--state-dir", state_dir)
    assert down.returncode == 0, down.stderr
    assert not any(p.alive() for p in procs)
    assert read_state(tmp_path / "dev") is None
    assert not bridges & set(host_bridges()), "swarm down left the network's bridges behind"
    assert swarm("down", "--state-dir", state_dir).returncode == 1     # nothing left to stop


def _slot_taken(index: int) -> bool:
    fd = os.open(slots.STATE_ROOT / f"slot-{index}.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)            # closing drops a lock this test took
    return False


def _holds_no_files(pid: int) -> bool:
    """A killed process's descriptors (and so its locks) are closed once its last thread exits."""
    try:
        return not os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return True


def test_down_after_the_supervisor_died_still_clears_the_engines_bridges(tmp_path):
    state_dir = str(tmp_path / "dev")
    up = swarm("up", "--nodes", "1", "--state-dir", state_dir)
    try:
        assert up.returncode == 0, up.stderr + (tmp_path / "dev" / "up.log").read_text(errors="replace")
        state = read_state(tmp_path / "dev")
        engine = docker.DockerClient(base_url=state["engines"]["node1"], version="1.41")
        net = engine.networks.create("orphaned")
        engine.close()
        bridge = f"br-{net.id[:12]}"
        assert bridge in host_bridges()
        supervisor = next(Process(**p) for p in state["processes"] if p["name"] == "supervisor")
        os.kill(supervisor.pid, signal.SIGKILL)
        wait_until(lambda: not supervisor.alive(), 10, "the supervisor to die")
        wait_until(lambda: _holds_no_files(supervisor.pid), 10, "the supervisor's files to close")
        # its daemons still hold its slot: no other lab starts in its directories or bridges
        assert _slot_taken(state["slot"])
    finally:
        down = swarm("down", "--state-dir", state_dir)
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stderr and "node1" in down.stderr
    assert bridge not in host_bridges()
