"""`docker node` over swarmd's nodes, on the lab, through the real docker CLIs: ls and inspect,
pause, drain (a rescheduling container moves once, another stays), node labels in constraints and
in `docker info`, intent surviving an agent and a manager restart, removal of a down node (and
the refusal of a ready one and of the removed agent), and the stale-version refusal.

The module runs its own discovery, agents (heartbeat 1 s, TTL 3 s) and manager: it changes node
intent, which the session swarm's tests must not see.
"""
from __future__ import annotations

import json
import time
import uuid

import pytest

from swarmd.localcluster.processes import Daemon, free_port, wait_until
from swarmd.localcluster.swarm import swarm_argv
from tests.integration.conftest import DockerCLI, docker_cli_binary, own_cluster


@pytest.fixture(scope="module")
def cluster(lab, tmp_path_factory):
    with own_cluster(lab, tmp_path_factory.mktemp("nodes")) as c:
        yield c


@pytest.fixture(params=["28", "20.10"])
def node_cli(request, cluster, tmp_path) -> DockerCLI:
    return DockerCLI(cluster.docker_host, str(tmp_path / "cfg"), docker_cli_binary(request.param))


@pytest.fixture
def cli(cluster, tmp_path) -> DockerCLI:
    return DockerCLI(cluster.docker_host, str(tmp_path / "cfg28"), docker_cli_binary("28"))


def inspect(cli: DockerCLI, ref: str) -> dict:
    return json.loads(cli.out("node", "inspect", ref))[0]


def node_of(cli: DockerCLI, name: str) -> str:
    return cli.out("inspect", "--format", "{{.Node.Name}}", name).strip()


def set_availability(cli: DockerCLI, node: str, availability: str) -> None:
    cli.run("node", "update", "--availability", availability, node)


def test_node_ls_and_inspect(node_cli, cluster):
    rows = [line.split() for line in node_cli.out("node", "ls").splitlines()[1:]]
    by_name = {r[1]: r for r in rows}
    assert set(by_name) == {"node1", "node2", "node3"}, rows
    for r in rows:
        assert r[2:4] == ["Ready", "Active"], rows
    doc = inspect(node_cli, "node2")
    assert doc["Description"]["Hostname"] == "node2"
    assert doc["Spec"]["Availability"] == "active" and doc["Spec"]["Role"] == "worker"
    assert doc["Status"]["State"] == "ready" and doc["Status"]["Addr"]
    assert doc["Description"]["Resources"]["NanoCPUs"] > 0 and doc["Description"]["Resources"]["MemoryBytes"] > 0
    assert doc["Description"]["Engine"]["EngineVersion"]
    assert doc["Version"]["Index"] >= 1
    assert inspect(node_cli, doc["ID"][:6])["ID"] == doc["ID"]     # an ID prefix names it too
    missing = node_cli.run("node", "inspect", "nosuchnode", check=False)
    # the 28.x CLI prints the engine's text, the 20.10 CLI its own for a 404
    assert missing.returncode != 0 and ("node nosuchnode not found" in missing.stderr
                                        or "No such node: nosuchnode" in missing.stderr), missing.stderr


def test_pause_keeps_new_containers_off_the_node(cli, cluster):
    names = [f"p-{uuid.uuid4().hex[:6]}-{i}" for i in range(4)]
    set_availability(cli, "node1", "pause")
    try:
        assert inspect(cli, "node1")["Spec"]["Availability"] == "pause"
        assert "Pause" in cli.out("node", "ls", "--filter", "name=node1")
        for n in names:
            cli.run("run", "-d", "--name", n, "busybox", "sleep", "300")
        assert all(node_of(cli, n) != "node1" for n in names)
        pinned = cli.run("run", "-d", "-e", "constraint:node==node1", "busybox", "true", check=False)
        assert pinned.returncode != 0 and "node==node1" in pinned.stderr, pinned.stderr
    finally:
        set_availability(cli, "node1", "active")
        for n in names:
            cli.run("rm", "-f", n, check=False)
    assert inspect(cli, "node1")["Spec"]["Availability"] == "active"


def test_drain_moves_rescheduling_containers_once_and_leaves_the_others(cli, cluster):
    moving, staying = f"mv-{uuid.uuid4().hex[:6]}", f"st-{uuid.uuid4().hex[:6]}"
    since = str(int(time.time()) - 1)
    cli.run("run", "-d", "--name", moving, "-e", "constraint:node==~node3", "-e", "reschedule:on-node-failure",
            "busybox", "sleep", "600")
    cli.run("run", "-d", "--name", staying, "-e", "constraint:node==~node3", "busybox", "sleep", "600")
    assert node_of(cli, moving) == node_of(cli, staying) == "node3"
    set_availability(cli, "node3", "drain")
    try:
        def listed():
            return [r for r in map(json.loads, cli.out("ps", "-a", "--format", "{{json .}}").splitlines())
                    if r["Names"].split("/")[-1] in (moving, staying)]

        def moved():
            rows = listed()
            return rows if len(rows) == 2 and f"node3/{moving}" not in [r["Names"] for r in rows] else None

        rows = wait_until(moved, 30, "the container to move off node3")
        names = sorted(r["Names"] for r in rows)
        assert len(rows) == 2 and f"node3/{staying}" in names, names            # one copy each
        assert [r["State"] for r in rows] == ["running", "running"], rows
        events = cli.out("events", "--since", since, "--until", str(int(time.time()) + 1),
                         "--filter", f"container={moving}", "--format", "{{.Action}} {{index .Actor.Attributes \"node.name\"}}")
        lines = events.splitlines()
        assert lines.count("create node3") == 1 and "destroy node3" in lines, events
        assert sum(1 for line in lines if line.startswith("create ")) == 2, lines
        # a stop on node3 came before the start of the new copy: never two running at once
        stop_at = lines.index("stop node3") if "stop node3" in lines else lines.index("die node3")
        assert stop_at < max(i for i, line in enumerate(lines) if line.startswith("start ") and "node3" not in line)
    finally:
        set_availability(cli, "node3", "active")
        cli.run("rm", "-f", moving, staying, check=False)


def test_node_labels_in_constraints_and_info(node_cli, cluster):
    zone = f"z{uuid.uuid4().hex[:6]}"
    node_cli.run("node", "update", "--label-add", f"zone={zone}", "node2")
    names = []
    try:
        assert inspect(node_cli, "node2")["Spec"]["Labels"] == {"zone": zone}
        for rule in (f"constraint:zone=={zone}", f"constraint:node.labels.zone=={zone}"):
            name = f"l-{uuid.uuid4().hex[:6]}"
            names.append(name)
            node_cli.run("run", "-d", "--name", name, "-e", rule, "busybox", "sleep", "300")
            assert node_of(node_cli, name) == "node2"
        info = node_cli.out("info")
        block = info.split(" node2:", 1)[1].split(" node3:", 1)[0]
        assert f"zone={zone}" in block, info
    finally:
        node_cli.run("node", "update", "--label-rm", "zone", "node2")
        node_cli.run("rm", "-f", *names, check=False)
    assert inspect(node_cli, "node2")["Spec"]["Labels"] == {}


def test_a_stale_version_is_refused(cli, cluster):
    doc = inspect(cli, "node1")
    body = json.dumps({**doc["Spec"], "Labels": {"stale": "1"}})
    import urllib.error
    import urllib.request
    url = f"http://{cluster.manager_addrs[0]}/v1.41/nodes/{doc['ID']}/update?version={doc['Version']['Index'] - 1}"
    req = urllib.request.Request(url, data=body.encode(), method="POST", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 500 and "update out of sequence" in err.value.read().decode()
    assert inspect(cli, "node1")["Spec"]["Labels"] == {}


def test_intent_survives_an_agent_and_a_manager_restart(cli, cluster):
    cli.run("node", "update", "--availability", "pause", "--label-add", "rack=r7", "node2")
    try:
        agent = cluster.agents["node2"]
        assert agent.stop(timeout=15) == 0, agent.log_tail()
        cluster.start_agent(1)
        cluster.wait_nodes(3, timeout=30)
        doc = inspect(cli, "node2")
        assert doc["Spec"]["Availability"] == "pause" and doc["Spec"]["Labels"] == {"rack": "r7"}
        manager = cluster.managers.pop(0)
        addr = cluster.manager_addrs.pop(0)
        manager.stop(timeout=15)
        cluster.start_manager(addr=addr)
        cluster.wait_nodes(3, timeout=30)
        doc = wait_until(lambda: (lambda d: d if d["Spec"]["Availability"] == "pause" else None)(inspect(cli, "node2")),
                         15, "the intent to be read back")
        assert doc["Spec"]["Labels"] == {"rack": "r7"}
        assert "rack=r7" in cli.out("info").split(" node2:", 1)[1].split(" node3:", 1)[0]
    finally:
        cli.run("node", "update", "--availability", "active", "--label-rm", "rack", "node2")


def test_node_rm_removes_a_down_node_and_refuses_a_ready_one(cli, cluster, tmp_path):
    state = tmp_path / "retiree"
    argv = swarm_argv("join", "--advertise", f"127.0.0.1:{free_port()}", "--engine", cluster.lab.engines[2].url,
                      "--name", "retiree", "--heartbeat", "1s", "--ttl", "3s", "--state-dir", str(state),
                      "--discovery-addr", cluster.discovery_addr, cluster.discovery_url)
    agent = Daemon("retiree", argv, tmp_path / "retiree.log").start()
    try:
        wait_until(lambda: "Ready" in cli.out("node", "ls", "--filter", "name=retiree"), 30, "the agent to join")
        refused = cli.run("node", "rm", "retiree", check=False)
        assert refused.returncode != 0 and "--force" in refused.stderr, refused.stderr
        agent.stop(timeout=15)
        wait_until(lambda: "Down" in cli.out("node", "ls", "--filter", "name=retiree"), 30, "the node to be down")
        assert cli.out("node", "rm", "retiree").strip() == "retiree"
        assert "retiree" not in cli.out("node", "ls")
        assert "retiree" not in cli.out("info")
        again = Daemon("retiree-again", argv, tmp_path / "again.log").start()
        try:
            wait_until(lambda: not again.running(), 30, "the removed agent to be refused")
            assert again.proc.returncode not in (0, None)
            assert "was removed from the cluster" in again.log_path.read_text()
        finally:
            again.stop()
        assert "retiree" not in cli.out("node", "ls")
    finally:
        agent.stop()
