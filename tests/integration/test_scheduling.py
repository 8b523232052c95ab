"""Strategies and filters end to end: the real docker CLI against managers on the lab's engines.

The module runs its own cluster (own discovery, agents labelled `containerslots=4`, and one
manager per strategy) on the shared lab engines, so it can also take a node down.
"""
from __future__ import annotations

import pytest

from swarmd.localcluster.processes import wait_until
from swarmd.localcluster.swarm import SwarmCluster
from tests.integration.conftest import DockerCLI

pytestmark = pytest.mark.usefixtures("clean_containers")


@pytest.fixture(scope="module")
def sched(lab, tmp_path_factory):
    cluster = SwarmCluster(lab, root=tmp_path_factory.mktemp("sched"),
                           agent_args=("--label", "containerslots=4", "--label", "rack=r1"))
    try:
        cluster.start(managers=1)
        cluster.start_manager("--strategy", "binpack")
        cluster.start_manager("--strategy", "random")
        for i in (1, 2):
            cluster.wait_nodes(3, manager=i)
    except BaseException:
        print(cluster.logs())
        cluster.stop()
        raise
    config = tmp_path_factory.mktemp("sched-docker")
    cluster.clis = [DockerCLI(f"tcp://{a}", str(config)) for a in cluster.manager_addrs]
    yield cluster
    cluster.stop()


def _node(cli, name: str) -> str:
    return cli.out("inspect", "--format", "{{.Node.Name}}", name).strip()


def _run(cli, *args: str) -> str:
    return cli.out("run", "-d", *args).strip()


def _fails(cli, *args: str) -> str:
    proc = cli.run("run", "-d", *args, check=False)
    assert proc.returncode == 125, proc.stdout + proc.stderr
    return proc.stderr


def test_spread_balances_containers(sched, lab):
    spread = sched.clis[0]
    for i in range(6):
        _run(spread, "--name", f"s{i}", "busybox", "sleep", "300")
    counts = sorted(sum(1 for i in range(6) if _node(spread, f"s{i}") == e.name) for e in lab.engines)
    assert counts == [2, 2, 2]


def test_binpack_fills_one_node_up_to_its_container_slots(sched):
    binpack = sched.clis[1]
    assert "Strategy: binpack" in binpack.out("info")
    for i in range(5):
        _run(binpack, "--name", f"b{i}", "-m", "32m", "busybox", "sleep", "300")
    nodes = [_node(binpack, f"b{i}") for i in range(5)]
    assert len(set(nodes[:4])) == 1            # filled first …
    assert nodes[4] != nodes[0]                # … until containerslots=4 is reached


def test_random_uses_only_nodes_with_room(sched):
    rnd = sched.clis[2]
    assert "Strategy: random" in rnd.out("info")
    for i in range(9):
        _run(rnd, "--name", f"r{i}", "busybox", "sleep", "300")
    nodes = [_node(rnd, f"r{i}") for i in range(9)]
    assert max(nodes.count(n) for n in set(nodes)) <= 4 and len(set(nodes)) == 3
    for i in range(9, 12):
        _run(rnd, "--name", f"r{i}", "busybox", "sleep", "300")
    assert "available container slots" in _fails(rnd, "--name", "r-full", "busybox", "true")


def test_port_filter(sched, lab):
    cli = sched.clis[0]
    for i in range(3):
        _run(cli, "--name", f"p{i}", "-p", "18100:80", "busybox", "sleep", "300")
    assert {_node(cli, f"p{i}") for i in range(3)} == {e.name for e in lab.engines}
    err = _fails(cli, "--name", "p3", "-p", "18100:80", "busybox", "sleep", "300")
    assert "Unable to find a node that satisfies the following conditions \n[port 18100 (Bridge mode)]" in err


def test_dependency_filter(sched):
    cli = sched.clis[0]
    _run(cli, "--name", "dep", "-v", "/data", "busybox", "sleep", "300")
    home = _node(cli, "dep")
    _run(cli, "--name", "dep-vol", "--volumes-from", "dep", "busybox", "sleep", "300")
    _run(cli, "--name", "dep-link", "--link", "dep:db", "busybox", "sleep", "300")
    _run(cli, "--name", "dep-net", "--net", "container:dep", "busybox", "sleep", "300")
    assert {_node(cli, n) for n in ("dep-vol", "dep-link", "dep-net")} == {home}
    assert "dep" in _fails(cli, "--volumes-from", "no-such-dep", "busybox", "true")


def test_affinity_filter(sched, lab):
    cli = sched.clis[0]
    _run(cli, "--name", "anchor", "busybox", "sleep", "300")
    home = _node(cli, "anchor")
    _run(cli, "--name", "near", "-e", "affinity:container==anchor", "busybox", "sleep", "300")
    _run(cli, "--name", "far", "-e", "affinity:container!=anchor", "busybox", "sleep", "300")
    assert _node(cli, "near") == home and _node(cli, "far") != home
    lab.engines[2].client().images.get("busybox").tag("swarmd/only-on-3:1")
    try:
        wait_until(lambda: "node3" in cli.out("image", "inspect", "--format", "{{.Nodes}}", "swarmd/only-on-3:1"),
                   10, "image event to reach the manager")
        _run(cli, "--name", "img", "-e", "affinity:image==swarmd/only-on-3:1", "busybox", "sleep", "300")
        assert _node(cli, "img") == lab.engines[2].name
    finally:
        lab.engines[2].client().images.remove("swarmd/only-on-3:1")
    _run(cli, "--name", "soft", "-e", "affinity:container==~no-such-container", "busybox", "sleep", "300")
    err = _fails(cli, "-e", "affinity:container==no-such-container", "busybox", "true")
    assert ("satisfies the following conditions \n[available container slots]\n"
            "[container==no-such-container (soft=false)]") in err


def test_constraint_filter(sched, lab):
    cli = sched.clis[0]
    _run(cli, "--name", "c-label", "-e", "constraint:lab.index==2", "busybox", "sleep", "300")
    assert _node(cli, "c-label") == "node2"
    # the docker CLI keeps one `-e` per name (`constraint:node!` here): several rules on one key go in the label
    _run(cli, "--name", "c-not", "--label", 'com.docker.swarm.constraints=["node!=node1","node!=node2"]',
         "busybox", "sleep", "300")
    assert _node(cli, "c-not") == "node3"
    _run(cli, "--name", "c-regex", "-e", "constraint:node==/node[1]/", "busybox", "sleep", "300")
    assert _node(cli, "c-regex") == "node1"
    _run(cli, "--name", "c-glob", "-e", "constraint:rack==r*", "busybox", "sleep", "300")   # agent --label
    _run(cli, "--name", "c-json", "--label", 'com.docker.swarm.constraints=["node==node3"]', "busybox", "sleep", "300")
    assert _node(cli, "c-json") == "node3"
    _run(cli, "--name", "c-soft", "-e", "constraint:node==~nowhere", "busybox", "sleep", "300")
    err = _fails(cli, "-e", "constraint:node==nowhere", "busybox", "true")
    assert ("Unable to find a node that satisfies the following conditions \n[available container slots]\n"
            "[node==nowhere]") in err
    err = _fails(cli, "-e", "constraint:garbage", "busybox", "true")
    assert "invalid constraint" in err
    # the engine never sees the swarm expressions as environment; they are kept as labels
    env = cli.out("inspect", "--format", "{{json .Config.Env}}", "c-label")
    assert "constraint:" not in env
    assert "lab.index==2" in cli.out("inspect", "--format", "{{json .Config.Labels}}", "c-label")


def test_resource_reservation(sched, lab):
    cli = sched.clis[0]
    total = lab.engines[0].client().info()["MemTotal"]
    err = _fails(cli, "-m", str(total * 2), "busybox", "true")
    assert "no resources available" in err.lower() or "memory" in err.lower()


def test_health_filter_avoids_a_lost_node(sched, lab):
    cli = sched.clis[0]
    victim = lab.engines[0].name
    sched.agents[victim].kill9()
    try:
        wait_until(lambda: cli.out("info").count("└ Status: Healthy") == 2, 20, "the node to turn unhealthy")
        for i in range(4):
            _run(cli, "--name", f"h{i}", "busybox", "sleep", "300")
        assert victim not in {_node(cli, f"h{i}") for i in range(4)}
        err = _fails(cli, "-e", f"constraint:node=={victim}", "busybox", "true")
        assert victim in err
    finally:
        sched.start_agent(0)
        wait_until(lambda: cli.out("info").count("└ Status: Healthy") == 3, 30, "the node to come back")
