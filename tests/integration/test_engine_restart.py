"""A host's engine restarts under a running agent: the node turns unhealthy, then comes back with
its containers, without restarting the agent or the manager."""
from __future__ import annotations

import pytest

from swarmd.localcluster.lab import Lab
from swarmd.localcluster.processes import wait_until
from swarmd.localcluster.swarm import SwarmCluster
from tests.integration.conftest import DockerCLI


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    with Lab(engines=1, registry=False) as lab:
        cluster = SwarmCluster(lab, root=tmp_path_factory.mktemp("restart"))
        try:
            cluster.start()
            yield lab, cluster, DockerCLI(cluster.docker_host, str(tmp_path_factory.mktemp("restart-cli")))
        finally:
            cluster.stop()


def _status(cli) -> str:
    return next(line.split(":", 1)[1].strip() for line in cli.out("info").splitlines() if "└ Status" in line)


def test_engine_restart_is_survived(single):
    lab, cluster, cli = single
    cid = cli.out("run", "-d", "--name", "keeper", "busybox", "sleep", "300").strip()
    engine = lab.engines[0]
    engine.daemon.stop(timeout=20)
    try:
        wait_until(lambda: _status(cli) == "Unhealthy", 20, "the node to turn unhealthy")
        failed = cli.run("run", "--rm", "busybox", "true", check=False)
        assert failed.returncode == 125 and "no healthy node" in failed.stderr
    finally:
        engine.restart()
    wait_until(lambda: _status(cli) == "Healthy", 30, "the node to come back", interval=0.2)
    # the engine stopped its containers when it stopped; the manager shows them as they are now
    wait_until(lambda: cli.out("ps", "-a", "--filter", "name=keeper", "--format", "{{.State}}").strip() == "exited",
               10, "the container's state after the restart")
    cli.run("start", "keeper")
    assert cli.out("inspect", "--format", "{{.Id}} {{.State.Running}}", "keeper").split() == [cid, "true"]
    assert cli.out("run", "--rm", "busybox", "echo", "back") == "back\n"
    assert cluster.agents[engine.name].running()
