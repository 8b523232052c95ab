"""Rescheduling on node failure, on the lab: `kill -9` of an agent, then its return.

The module runs its own discovery, agents (heartbeat 1 s, TTL 3 s) and two replicated managers
(only the primary reschedules, so a duplicate would show), and never touches the session swarm.
"""
from __future__ import annotations

import json
import uuid

import pytest

from swarmd.localcluster.processes import wait_until
from tests.integration.conftest import DockerCLI, own_cluster
from swarmd.localcluster.swarm import SwarmCluster
from swarmd.localcluster.swarm import wait_one_primary as one_primary

LOST = "node2"


@pytest.fixture(scope="module")
def cluster(lab, tmp_path_factory):
    with own_cluster(lab, tmp_path_factory.mktemp("rescheduling"), replicated_managers=2) as c:
        yield c


def ps(cli: DockerCLI, *names: str) -> list[dict]:
    out = cli.out("ps", "-a", "--no-trunc", "--format", "{{json .}}")
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [r for r in rows if r["Names"].split("/")[-1] in names]


def node_status(cluster: SwarmCluster, manager: int, node: str) -> str:
    status = cluster.info(manager)["SystemStatus"]
    for i, (k, v) in enumerate(status):
        if k.strip() == node:
            return next(val for key, val in status[i + 1:] if key == "  └ Status")
    return ""


def engine_names(lab, index: int) -> list[str]:
    client = lab.engines[index].client()
    try:
        return [c.name for c in client.containers.list(all=True)]
    finally:
        client.close()


def test_agent_kill_reschedules_flags_the_rest_and_its_return_leaves_no_duplicate(cluster, lab, tmp_path):
    tag = uuid.uuid4().hex[:8]
    by_env, by_label, plain = f"rs-env-{tag}", f"rs-label-{tag}", f"rs-plain-{tag}"
    mine = (by_env, by_label, plain)
    lost_index = next(i for i, e in enumerate(lab.engines) if e.name == LOST)
    primary = one_primary(cluster.manager_addrs)
    replica_index = next(i for i, a in enumerate(cluster.manager_addrs) if a != primary)
    cli = DockerCLI(f"tcp://{primary}", str(tmp_path / "cfg"))
    via_replica = DockerCLI(f"tcp://{cluster.manager_addrs[replica_index]}", str(tmp_path / "cfg2"))
    try:
        prefer = f"constraint:node==~{LOST}"        # soft: placed on node2, rescheduled anywhere
        cli.run("run", "-d", "--name", by_env, "-e", prefer, "-e", "reschedule:on-node-failure",
                "busybox", "sleep", "600")
        cli.run("run", "-d", "--name", by_label, "-e", prefer,
                "--label", 'com.docker.swarm.reschedule-policies=["on-node-failure"]', "busybox", "sleep", "600")
        cli.run("run", "-d", "--name", plain, "-e", prefer, "busybox", "sleep", "600")
        before = {r["Names"].split("/")[-1]: r for r in ps(cli, *mine)}
        assert all(r["Names"].startswith(f"{LOST}/") for r in before.values()), before

        cluster.agents[LOST].kill9()
        wait_until(lambda: node_status(cluster, 0, LOST) == "Unhealthy", 10, f"{LOST} unhealthy")

        def moved():
            rows = {r["Names"].split("/")[-1]: r for r in ps(cli, *mine)}
            ok = all(n in rows and not rows[n]["Names"].startswith(f"{LOST}/") and rows[n]["State"] == "running"
                     for n in (by_env, by_label))
            return rows if ok else None
        rows = after_move = wait_until(moved, 20, "rescheduled containers running elsewhere", interval=0.2)
        assert rows[plain]["Names"].startswith(f"{LOST}/")
        assert rows[plain]["Status"] == "Host Down" and rows[plain]["State"] == "unknown"
        for n in (by_env, by_label):
            assert rows[n]["ID"] != before[n]["ID"]
        # exactly one copy of each, whichever manager is asked
        for c in (cli, via_replica):
            listed = [r["Names"].split("/")[-1] for r in ps(c, *mine)]
            assert sorted(listed) == sorted(mine), listed
        # the copy keeps the configuration, policy included
        doc = json.loads(cli.out("inspect", by_env))[0]
        assert doc["Config"]["Cmd"] == ["sleep", "600"]
        assert json.loads(doc["Config"]["Labels"]["com.docker.swarm.reschedule-policies"]) == ["on-node-failure"]

        # the node returns: its stale copies go, the container without the policy is back as it was
        cluster.start_agent(lost_index)
        wait_until(lambda: node_status(cluster, 0, LOST) == "Healthy", 20, f"{LOST} healthy again")
        wait_until(lambda: not ({by_env, by_label} & set(engine_names(lab, lost_index))), 15,
                   "stale copies removed from the returned node")
        assert plain in engine_names(lab, lost_index)
        rows = {r["Names"].split("/")[-1]: r for r in ps(cli, *mine)}
        assert len(ps(cli, *mine)) == 3
        assert rows[plain]["State"] == "running" and rows[plain]["Names"].startswith(f"{LOST}/")
        for n in (by_env, by_label):
            assert rows[n]["ID"] == after_move[n]["ID"] and rows[n]["State"] == "running"
        assert cli.out("inspect", "-f", "{{.State.Running}}", by_env).strip() == "true"
    finally:
        if not cluster.agents[LOST].running():
            cluster.start_agent(lost_index)
        for engine in lab.engines:
            client = engine.client()
            try:
                for c in client.containers.list(all=True):
                    if c.name in mine:
                        c.remove(force=True)
            finally:
                client.close()

