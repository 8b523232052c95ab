"""A fleet over time, on the lab: a cloned node id is refused without flapping (token:// and
etcd://), an agent restart (SIGTERM, then back within its lease) moves nothing, and leaving is the
explicit `swarm leave`.

The module runs its own discovery, agents (heartbeat 1 s, TTL 3 s) and manager, and never touches
the session swarm.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid

import pytest

from swarmd.localcluster.processes import Daemon, free_port, wait_until
from swarmd.localcluster.swarm import SwarmCluster, swarm_argv
from tests.integration.conftest import DockerCLI, own_cluster


@pytest.fixture(scope="module")
def cluster(lab, tmp_path_factory):
    with own_cluster(lab, tmp_path_factory.mktemp("fleet")) as c:
        yield c


def listed(cluster: SwarmCluster, url: str | None = None) -> list[list[str]]:
    argv = ["list"] + (["--discovery-addr", cluster.discovery_addr] if url is None else []) + \
        [url or cluster.discovery_url]
    out = subprocess.run(swarm_argv(*argv), capture_output=True, text=True, timeout=15)
    assert out.returncode == 0, out.stderr
    return [line.split() for line in out.stdout.splitlines() if line.strip()]


def clone_of(cluster: SwarmCluster, source: str, engine_index: int, tmp_path, *url_args: str) -> Daemon:
    """An agent on another engine and address whose state dir is a copy of `source`'s."""
    state = tmp_path / "cloned-state"
    shutil.copytree(cluster.root / f"agent-{source}", state)
    engine = cluster.lab.engines[engine_index]
    return Daemon("clone", swarm_argv(
        "join", "--advertise", f"127.0.0.1:{free_port()}", "--engine", engine.url, "--name", "clone-host",
        "--heartbeat", "1s", "--ttl", "3s", "--state-dir", str(state), *url_args), tmp_path / "clone.log").start()


def assert_refused_as_clone(clone: Daemon, held_addr: str) -> str:
    wait_until(lambda: not clone.running(), 30, "the cloned agent to exit")
    assert clone.proc.returncode not in (0, None), clone.log_tail()
    log = clone.log_path.read_text()
    assert "ID duplicated" in log and held_addr in log and "node-id" in log, log
    return log


def test_a_cloned_node_id_is_refused_and_the_original_never_flaps(cluster, tmp_path):
    original = cluster.agents["node1"]
    before = original.log_path.read_text().count("registration lost")
    clone = clone_of(cluster, "node1", 1, tmp_path, "--discovery-addr", cluster.discovery_addr,
                     cluster.discovery_url)
    try:
        assert_refused_as_clone(clone, cluster.agent_addrs["node1"])
        time.sleep(3)       # three heartbeats: a flapping original would have lost its lease by now
        assert original.log_path.read_text().count("registration lost") == before, original.log_tail()
        rows = listed(cluster)
        assert [r[:2] for r in rows if r[0] == "node1"] == [["node1", cluster.agent_addrs["node1"]]]
        assert not any(r[0] == "clone-host" for r in rows)
    finally:
        clone.stop()


def test_a_cloned_node_id_is_refused_under_etcd_too(cluster, lab, tmp_path):
    url = f"etcd://{lab.etcd.endpoint}/fleet-{uuid.uuid4().hex[:8]}"
    first = Daemon("first", swarm_argv(
        "join", "--advertise", f"127.0.0.1:{free_port()}", "--engine", lab.engines[0].url, "--name", "etcd-first",
        "--heartbeat", "1s", "--ttl", "3s", "--state-dir", str(tmp_path / "first"), url), tmp_path / "first.log").start()
    try:
        wait_until(lambda: any(r[0] == "etcd-first" for r in listed(cluster, url)), 30, "the first agent")
        addr = next(r[1] for r in listed(cluster, url) if r[0] == "etcd-first")
        state = tmp_path / "clone-state"
        shutil.copytree(tmp_path / "first", state)
        clone = Daemon("clone", swarm_argv(
            "join", "--advertise", f"127.0.0.1:{free_port()}", "--engine", lab.engines[2].url, "--name", "etcd-clone",
            "--heartbeat", "1s", "--ttl", "3s", "--state-dir", str(state), url), tmp_path / "clone.log").start()
        try:
            assert_refused_as_clone(clone, addr)
            time.sleep(3)
            assert "registration lost" not in first.log_path.read_text(), first.log_tail()
            assert [r[0] for r in listed(cluster, url)] == ["etcd-first"]
        finally:
            clone.stop()
    finally:
        first.stop()


def ps(cli: DockerCLI, name: str) -> list[dict]:
    out = cli.out("ps", "-a", "--no-trunc", "--format", "{{json .}}")
    return [r for r in map(json.loads, filter(None, out.splitlines())) if r["Names"].split("/")[-1] == name]


def test_an_agent_restart_moves_nothing(cluster, lab, tmp_path):
    cli = DockerCLI(cluster.docker_host, str(tmp_path / "cfg"))
    name = f"keep-{uuid.uuid4().hex[:8]}"
    since = str(int(time.time()) - 1)
    cli.run("run", "-d", "--name", name, "-e", "constraint:node==~node2", "-e", "reschedule:on-node-failure",
            "busybox", "sleep", "600")
    try:
        agent = cluster.agents["node2"]
        assert agent.stop(timeout=15) == 0, agent.log_tail()
        time.sleep(1)                    # well within the 3 s lease
        cluster.start_agent(1)
        cluster.wait_nodes(3, timeout=30)
        time.sleep(4)                    # past the lease the stopped agent had: nothing may move now
        rows = ps(cli, name)
        assert [r["Names"] for r in rows] == [f"node2/{name}"] and rows[0]["State"] == "running", rows
        events = cli.out("events", "--since", since, "--until", str(int(time.time())),
                         "--filter", f"container={name}", "--format", "{{.Action}}")
        assert events.split().count("create") == 1 and "destroy" not in events.split(), events
        left = lab.engines[1].client()
        assert [c.name for c in left.containers.list() if c.name == name] == [name]
        left.close()
    finally:
        cli.run("rm", "-f", name, check=False)


def test_swarm_leave_removes_a_stopped_agent_at_once_and_refuses_a_running_one(cluster, tmp_path):
    state = tmp_path / "leaver"
    agent = Daemon("leaver", swarm_argv(
        "join", "--advertise", f"127.0.0.1:{free_port()}", "--engine", cluster.lab.engines[2].url,
        "--name", "leaver", "--heartbeat", "1s", "--ttl", "60s", "--state-dir", str(state),
        "--discovery-addr", cluster.discovery_addr, cluster.discovery_url), tmp_path / "leaver.log").start()
    leave = swarm_argv("leave", "--state-dir", str(state), "--discovery-addr", cluster.discovery_addr,
                       cluster.discovery_url)
    try:
        wait_until(lambda: any(r[0] == "leaver" for r in listed(cluster)), 30, "the agent to register")
        running = subprocess.run(leave, capture_output=True, text=True, timeout=15)
        assert running.returncode == 1 and "still running" in running.stderr, running.stderr
        assert agent.stop(timeout=15) == 0
        assert any(r[0] == "leaver" for r in listed(cluster)), "SIGTERM deregistered the node"
        done = subprocess.run(leave, capture_output=True, text=True, timeout=15)
        assert done.returncode == 0 and "left the cluster" in done.stderr, done.stderr
        assert not any(r[0] == "leaver" for r in listed(cluster)), "the 60 s lease had to run out"
        again = subprocess.run(leave, capture_output=True, text=True, timeout=15)
        assert again.returncode == 0 and "not a member" in again.stderr, again.stderr
    finally:
        agent.stop()
