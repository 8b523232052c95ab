"""Signals and logs of the three daemons as processes: SIGHUP reloads the log level from the env
file, SIGTERM exits 0 after a clean shutdown, and `--log-format json` writes one JSON object a line."""
from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from swarmd.localcluster.processes import Daemon, free_port, wait_until
from swarmd.localcluster.swarm import SwarmCluster, swarm_argv


@pytest.fixture(scope="module")
def discovery_only(lab, tmp_path_factory):
    """A discovery daemon and a cluster token of this module's own."""
    cluster = SwarmCluster(lab, root=tmp_path_factory.mktemp("signals"))
    cluster.root.mkdir(parents=True, exist_ok=True)
    cluster.start_discovery()
    yield cluster
    cluster.stop()


def json_lines(path: Path) -> list[dict]:
    """Every line of the log as JSON (fails on a line that is not)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def has_line(path: Path, msg: str) -> dict | None:
    return next((doc for doc in json_lines(path) if doc["msg"] == msg), None)


def start(tmp_path: Path, name: str, env_file: Path, *verb_args: str) -> Daemon:
    argv = swarm_argv("--log-format", "json", "--env-file", str(env_file), *verb_args)
    return Daemon(name, argv, tmp_path / f"{name}.log").start()


def hup_then_term(daemon: Daemon, env_file: Path, ready_msg: str, stopped_msg: str) -> None:
    """The daemon started at level error: SIGHUP to info must show, and SIGTERM must exit 0."""
    log = daemon.log_path
    assert has_line(log, ready_msg) is None, "an info line was written at level error"
    env_file.write_text("# reloaded\nSWARM_LOG_LEVEL=info\n")
    daemon.proc.send_signal(signal.SIGHUP)
    reloaded = wait_until(lambda: has_line(log, "SIGHUP: configuration reloaded"), 10, "the reload line")
    assert reloaded["log_level"] == "info" and reloaded["level"] == "info"
    assert daemon.running()
    assert daemon.stop(timeout=15) == 0, daemon.log_tail()
    assert has_line(log, stopped_msg) is not None, daemon.log_tail()
    json_lines(log)


def test_discovery_reloads_on_sighup_and_exits_0_on_sigterm(lab, tmp_path):
    env_file = tmp_path / "discovery.env"
    env_file.write_text("SWARM_LOG_LEVEL=error\n")
    addr = f"127.0.0.1:{free_port()}"
    d = start(tmp_path, "discovery", env_file, "discovery", "--listen", addr, "--etcd", lab.etcd.url)
    try:
        def token():
            out = subprocess.run(swarm_argv("create", "--discovery-addr", addr), capture_output=True, text=True,
                                 timeout=10)
            return out.returncode == 0 and out.stdout.strip()
        wait_until(token, 20, "discovery to serve")
        hup_then_term(d, env_file, "discovery serving", "discovery shutting down")
    finally:
        d.stop()


def test_agent_reloads_on_sighup_and_stays_a_member_after_sigterm(lab, discovery_only, tmp_path):
    env_file = tmp_path / "agent.env"
    env_file.write_text("SWARM_LOG_LEVEL=error\n")
    engine = lab.engines[0]
    d = start(tmp_path, "agent", env_file, "join", "--advertise", f"127.0.0.1:{free_port()}",
              "--engine", engine.url, "--name", "signals-agent", "--heartbeat", "1s", "--ttl", "60s",
              "--state-dir", str(tmp_path / "state"), "--discovery-addr", discovery_only.discovery_addr,
              discovery_only.discovery_url)

    def listed() -> str:
        out = subprocess.run(swarm_argv("list", "--discovery-addr", discovery_only.discovery_addr,
                                        discovery_only.discovery_url), capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        return out.stdout
    try:
        wait_until(lambda: listed().strip(), 30, "the agent to register")
        hup_then_term(d, env_file, "agent serving", "agent stopped")
        # a stop is not a departure: the node stays a member while its 60 s lease lives
        assert "signals-agent" in listed()
        left = subprocess.run(swarm_argv("leave", "--state-dir", str(tmp_path / "state"), "--discovery-addr",
                                         discovery_only.discovery_addr, discovery_only.discovery_url),
                              capture_output=True, text=True, timeout=15)
        assert left.returncode == 0, left.stderr
        assert listed().strip() == ""
    finally:
        d.stop()


def test_manager_survives_sighup_and_exits_0_on_sigterm(discovery_only, tmp_path):
    env_file = tmp_path / "manager.env"
    env_file.write_text("SWARM_LOG_LEVEL=error\n")
    addr = f"127.0.0.1:{free_port()}"
    d = start(tmp_path, "manager", env_file, "manage", "-H", f"tcp://{addr}",
              "--discovery-addr", discovery_only.discovery_addr, discovery_only.discovery_url)
    try:
        def pong():
            with urllib.request.urlopen(f"http://{addr}/_ping", timeout=2) as r:
                return r.read() == b"OK"
        wait_until(pong, 20, "the manager to serve")
        hup_then_term(d, env_file, "manager serving", "manager stopped")
    finally:
        d.stop()


def test_sighup_without_env_file_keeps_running(discovery_only, tmp_path):
    addr = f"127.0.0.1:{free_port()}"
    d = Daemon("manager", swarm_argv("--log-format", "json", "manage", "-H", f"tcp://{addr}",
                                     "--discovery-addr", discovery_only.discovery_addr,
                                     discovery_only.discovery_url), tmp_path / "m.log").start()
    try:
        wait_until(lambda: has_line(d.log_path, "manager serving"), 20, "the manager to serve")
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: has_line(d.log_path, "SIGHUP: no --env-file to re-read; nothing to reload"), 10,
                   "the reload line")
        assert d.running()
        assert d.stop(timeout=15) == 0
    finally:
        d.stop()
