"""Containers with a reschedule policy kept in etcd, on the lab: a manager started while their
node is down lists them (`Host Down`) and reschedules them, with one copy, and the stale copy
goes when the node returns; a container removed before the outage does not come back.

The module runs its own discovery, agents (heartbeat 1 s, TTL 3 s) and manager, which it stops
and starts again; it never touches the session swarm.
"""
from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from swarmd.localcluster.processes import wait_until
from swarmd.localcluster.swarm import SwarmCluster, swarm_argv
from tests.integration.conftest import DockerCLI, docker_cli_binary

LOST = "node2"
OTHERS = ("node1", "node3")


@pytest.fixture(scope="module")
def cluster(lab, tmp_path_factory):
    c = SwarmCluster(lab, root=tmp_path_factory.mktemp("durable"), heartbeat="1s", ttl="3s")
    try:
        c.start()
    except BaseException:
        print(c.logs())
        raise
    yield c
    c.stop()


def clis(cluster: SwarmCluster, tmp_path) -> list[DockerCLI]:
    return [DockerCLI(cluster.docker_host, str(tmp_path / f"cfg{v}"), docker_cli_binary(v)) for v in ("28", "20.10")]


def ps(cli: DockerCLI, *names: str) -> list[dict]:
    out = cli.out("ps", "-a", "--no-trunc", "--format", "{{json .}}")
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [r for r in rows if r["Names"].split("/")[-1] in names]


def listed_addrs(cluster: SwarmCluster) -> str:
    out = subprocess.run(swarm_argv("list", "--discovery-addr", cluster.discovery_addr, cluster.discovery_url),
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return out.stdout


def engine_names(lab, index: int) -> list[str]:
    client = lab.engines[index].client()
    try:
        return [c.name for c in client.containers.list(all=True)]
    finally:
        client.close()


def restart_manager(cluster: SwarmCluster) -> None:
    manager = cluster.managers.pop(0)
    addr = cluster.manager_addrs.pop(0)
    assert manager.stop(timeout=15) == 0, manager.log_tail()
    cluster.start_manager(addr=addr)


def test_a_manager_started_while_a_node_is_down_lists_and_reschedules_its_containers(cluster, lab, tmp_path):
    tag = uuid.uuid4().hex[:8]
    keep, gone = f"dur-keep-{tag}", f"dur-gone-{tag}"
    lost_index = next(i for i, e in enumerate(lab.engines) if e.name == LOST)
    cli, cli_2010 = clis(cluster, tmp_path)
    try:
        prefer = f"constraint:node==~{LOST}"        # soft: placed on node2, rescheduled anywhere
        for name in (keep, gone):
            cli.run("run", "-d", "--name", name, "-e", prefer, "-e", "reschedule:on-node-failure",
                    "busybox", "sleep", "600")
        cli.run("rm", "-f", gone)                    # its record goes with it
        before = ps(cli, keep)[0]
        assert before["Names"] == f"{LOST}/{keep}", before
        # the other nodes take nothing new until the listing below is checked
        for node in OTHERS:
            cli.run("node", "update", "--availability", "pause", node)

        manager = cluster.managers.pop(0)
        addr = cluster.manager_addrs.pop(0)
        assert manager.stop(timeout=15) == 0, manager.log_tail()
        cluster.agents[LOST].kill9()
        agent_addr = cluster.agent_addrs[LOST]
        wait_until(lambda: agent_addr not in listed_addrs(cluster), 20, f"{LOST}'s lease to run out")
        cluster.start_manager(addr=addr)
        cluster.wait_nodes(2, timeout=30)

        # known only from its record: listed on its node as Host Down, by both CLIs
        for c in (cli, cli_2010):
            rows = wait_until(lambda: ps(c, keep, gone) or None, 15, "the container read back from its record")
            assert [r["Names"] for r in rows] == [f"{LOST}/{keep}"], rows
            assert rows[0]["Status"] == "Host Down" and rows[0]["State"] == "unknown"
            assert rows[0]["ID"] == before["ID"]

        for node in OTHERS:
            cli.run("node", "update", "--availability", "active", node)

        def moved():
            rows = ps(cli, keep)
            ok = len(rows) == 1 and not rows[0]["Names"].startswith(f"{LOST}/") and rows[0]["State"] == "running"
            return rows[0] if ok else None
        after_move = wait_until(moved, 60, "the container rescheduled off the down node", interval=0.3)
        assert after_move["ID"] != before["ID"]
        assert [r["Names"] for r in ps(cli_2010, keep, gone)] == [after_move["Names"]]
        doc = json.loads(cli.out("inspect", keep))[0]
        assert doc["Config"]["Cmd"] == ["sleep", "600"]

        # the node returns with the old copy: it is removed, the rescheduled one stays
        cluster.start_agent(lost_index)
        cluster.wait_nodes(3, timeout=30)
        wait_until(lambda: keep not in engine_names(lab, lost_index), 20, "the stale copy removed")
        rows = ps(cli, keep, gone)
        assert len(rows) == 1 and rows[0]["ID"] == after_move["ID"] and rows[0]["State"] == "running", rows

        # and the record follows the move: another restart lists the container where it runs now
        restart_manager(cluster)
        cluster.wait_nodes(3, timeout=30)
        rows = wait_until(lambda: ps(cli, keep) or None, 15, "the container listed after a restart")
        assert [(r["ID"], r["Names"]) for r in rows] == [(after_move["ID"], after_move["Names"])]
    finally:
        if not cluster.agents[LOST].running():
            cluster.start_agent(lost_index)
        if len(cluster.managers) == 0 or not cluster.managers[0].running():
            cluster.managers.clear()
            cluster.manager_addrs.clear()
            cluster.start_manager()
        cluster.wait_nodes(3, timeout=30)
        for node in OTHERS:
            cli.run("node", "update", "--availability", "active", node, check=False)
        for engine in lab.engines:
            client = engine.client()
            try:
                for c in client.containers.list(all=True):
                    if c.name in (keep, gone):
                        c.remove(force=True)
            finally:
                client.close()
