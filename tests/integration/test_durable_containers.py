"""Containers with a reschedule policy kept in etcd, on the lab: a manager started while their
node is down lists them (`Host Down`) and reschedules them, with one copy, and the stale copy
goes when the node returns; a container removed before the outage does not come back. Also a
new primary after failover that started while the node was down.

Each test runs its own discovery, agents (heartbeat 1 s, TTL 3 s) and managers, which it stops
and starts again; none touches the session swarm.
"""
from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from swarmd.localcluster.processes import wait_until
from swarmd.localcluster.swarm import SwarmCluster, swarm_argv, wait_one_primary
from tests.integration.conftest import DockerCLI, docker_cli_binary, own_cluster

LOST = "node2"
OTHERS = ("node1", "node3")


@pytest.fixture
def cluster(lab, tmp_path_factory):
    with own_cluster(lab, tmp_path_factory.mktemp("durable")) as c:
        yield c


@pytest.fixture
def replicated(lab, tmp_path_factory):
    c = SwarmCluster(lab, root=tmp_path_factory.mktemp("durable-ha"), heartbeat="1s", ttl="3s")
    try:
        c.start_replicated(managers=2)
    except BaseException:
        print(c.logs())
        raise
    yield c
    c.stop()


def clis(cluster: SwarmCluster, tmp_path, addr: str | None = None) -> list[DockerCLI]:
    host = f"tcp://{addr}" if addr else cluster.docker_host
    return [DockerCLI(host, str(tmp_path / f"cfg{v}"), docker_cli_binary(v)) for v in ("28", "20.10")]


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


def remove_everywhere(lab, *names: str) -> None:
    for engine in lab.engines:
        client = engine.client()
        try:
            for c in client.containers.list(all=True):
                if c.name in names:
                    c.remove(force=True)
        finally:
            client.close()


def wait_lease_out(cluster: SwarmCluster, node: str) -> None:
    agent_addr = cluster.agent_addrs[node]
    wait_until(lambda: agent_addr not in listed_addrs(cluster), 20, f"{node}'s lease to run out")


def wait_host_down(c: DockerCLI, name: str, before: dict) -> None:
    """The container listed by `c` on the down node as Host Down, as it was."""
    rows = wait_until(lambda: ps(c, name) or None, 15, "the container read back from its record")
    assert [r["Names"] for r in rows] == [f"{LOST}/{name}"], rows
    assert rows[0]["Status"] == "Host Down" and rows[0]["State"] == "unknown"
    assert rows[0]["ID"] == before["ID"]


def wait_moved(c: DockerCLI, name: str) -> dict:
    def moved():
        rows = ps(c, name)
        ok = len(rows) == 1 and not rows[0]["Names"].startswith(f"{LOST}/") and rows[0]["State"] == "running"
        return rows[0] if ok else None
    return wait_until(moved, 60, "the container rescheduled off the down node", interval=0.3)


def restart_manager(cluster: SwarmCluster) -> None:
    manager = cluster.managers.pop(0)
    addr = cluster.manager_addrs.pop(0)
    assert manager.stop(timeout=15) == 0, manager.log_tail()
    cluster.start_manager(addr=addr)


# lease_out: the node's lease ran out before the manager starts (membership never lists it), or
# not (membership lists it, its agent never answers, and its lease runs out later)
@pytest.mark.parametrize("lease_out", [True, False], ids=["lease-out", "lease-alive"])
def test_a_manager_started_while_a_node_is_down_lists_and_reschedules_its_containers(cluster, lab, tmp_path,
                                                                                    lease_out):
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
        if lease_out:
            wait_lease_out(cluster, LOST)
        cluster.start_manager(addr=addr)
        cluster.wait_nodes(2, timeout=30)

        # known only from its record: listed on its node as Host Down, by both CLIs
        for c in (cli, cli_2010):
            wait_host_down(c, keep, before)
            assert [r["Names"] for r in ps(c, keep, gone)] == [f"{LOST}/{keep}"]

        for node in OTHERS:
            cli.run("node", "update", "--availability", "active", node)

        after_move = wait_moved(cli, keep)
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
        remove_everywhere(lab, keep, gone)      # the cluster (its intent included) goes with the test


def test_a_new_primary_started_while_a_node_was_down_reschedules_its_containers(replicated, lab, tmp_path):
    cluster = replicated
    keep = f"dur-ha-{uuid.uuid4().hex[:8]}"
    lost_index = next(i for i, e in enumerate(lab.engines) if e.name == LOST)
    primary = wait_one_primary(cluster.manager_addrs)
    old_replica = next(a for a in cluster.manager_addrs if a != primary)
    cli, _ = clis(cluster, tmp_path / "p", primary)
    try:
        cli.run("run", "-d", "--name", keep, "-e", f"constraint:node==~{LOST}", "-e", "reschedule:on-node-failure",
                "busybox", "sleep", "600")
        before = ps(cli, keep)[0]
        assert before["Names"] == f"{LOST}/{keep}", before
        for node in OTHERS:       # the old primary cannot move it before it stops
            cli.run("node", "update", "--availability", "pause", node)
        # the replica goes; node2 goes; a new replica starts while node2 is down, then takes over
        index = cluster.manager_addrs.index(old_replica)
        assert cluster.managers[index].stop(timeout=15) == 0
        cluster.agents[LOST].kill9()
        wait_lease_out(cluster, LOST)
        new = cluster.start_replica()
        new_cli, new_cli_2010 = clis(cluster, tmp_path / "n", new)
        wait_one_primary([primary, new])
        for c in (new_cli, new_cli_2010):      # a replica lists it from its record too
            wait_host_down(c, keep, before)
        assert cluster.managers[cluster.manager_addrs.index(primary)].stop(timeout=15) == 0
        assert wait_one_primary([new]) == new
        for node in OTHERS:
            new_cli.run("node", "update", "--availability", "active", node)
        after_move = wait_moved(new_cli, keep)
        assert after_move["ID"] != before["ID"]
        assert [r["Names"] for r in ps(new_cli_2010, keep)] == [after_move["Names"]]
        cluster.start_agent(lost_index)
        wait_until(lambda: keep not in engine_names(lab, lost_index), 30, "the stale copy removed")
        assert [r["ID"] for r in ps(new_cli, keep)] == [after_move["ID"]]
    finally:
        remove_everywhere(lab, keep)
