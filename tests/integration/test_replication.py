"""Replicated managers on the lab: one primary elected in etcd, replicas forwarding every call.

The module runs its own discovery, agents and managers (the session `swarm` is left alone); the
etcd-outage test runs its own etcd too, since the lab's etcd is shared by every other test.
"""
from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
import uuid

import pytest

from swarmd.localcluster.etcd import EtcdServer
from swarmd.localcluster.processes import free_port, wait_until
from swarmd.localcluster.swarm import SwarmCluster, swarm_argv
from swarmd.localcluster.swarm import manager_role as role
from swarmd.localcluster.swarm import wait_one_primary as one_primary
from swarmd.localcluster.processes import Daemon
from tests.integration.conftest import DockerCLI


def info(addr: str, timeout: float = 5) -> dict:
    with urllib.request.urlopen(f"http://{addr}/info", timeout=timeout) as r:
        return json.loads(r.read())


def get_status(addr: str, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code
    except (OSError, urllib.error.URLError):
        return 0


@pytest.fixture(scope="module")
def replicated(lab, tmp_path_factory):
    cluster = SwarmCluster(lab, root=tmp_path_factory.mktemp("replication"))
    try:
        cluster.start_replicated(managers=2)
    except BaseException:
        print(cluster.logs())
        raise
    yield cluster
    cluster.stop()


@pytest.fixture
def names(lab):
    made: list[str] = []
    yield made
    for engine in lab.engines:
        client = engine.client()
        try:
            for c in client.containers.list(all=True):
                if c.name in made:
                    c.remove(force=True)
        finally:
            client.close()


def cli_for(addr: str, tmp_path) -> DockerCLI:
    return DockerCLI(f"tcp://{addr}", str(tmp_path / f"cfg-{addr.replace(':', '-')}"))


def test_one_primary_and_replicas_forward_everything(replicated, names, tmp_path):
    primary = one_primary(replicated.manager_addrs)
    replica = next(a for a in replicated.manager_addrs if a != primary)
    cli = cli_for(replica, tmp_path)
    out = cli.out("info")
    assert "Role: replica" in out and f"Primary: {primary}" in out
    assert "Role: primary" in cli_for(primary, tmp_path).out("info")

    name = f"repl-{uuid.uuid4().hex[:8]}"
    names.append(name)
    cid = cli.out("run", "-d", "--name", name, "busybox", "sh", "-c", "echo started; sleep 300").strip()
    assert len(cid) == 64
    # the primary placed it: both managers see it
    assert name in cli.out("ps", "--filter", f"name={name}", "--format", "{{.Names}}")
    assert cid in cli_for(primary, tmp_path).out("inspect", "-f", "{{.Id}}", name)
    # a stream (logs), a hijacked exec with stdin, and run --rm (attach + wait) through the replica
    wait_until(lambda: "started" in cli.out("logs", name), 10, "logs through the replica")
    assert cli.run("exec", "-i", name, "cat", input="through the replica\n").stdout == "through the replica\n"
    assert cli.out("run", "--rm", "busybox", "echo", "hello from a replica").strip() == "hello from a replica"
    # errors come back as the primary gave them
    missing = cli.run("inspect", "no-such-container-xyz", check=False)
    assert missing.returncode != 0 and "No such" in missing.stderr
    cli.run("rm", "-f", name)


def test_primary_kill_fails_over_and_the_cli_keeps_working(replicated, names, tmp_path):
    addrs = replicated.manager_addrs
    primary = one_primary(addrs)
    index = addrs.index(primary)
    survivor = next(a for a in addrs if a != primary)
    name = f"fo-{uuid.uuid4().hex[:8]}"
    names.append(name)
    cli_for(survivor, tmp_path).run("run", "-d", "--name", name, "busybox", "sleep", "300")

    replicated.managers[index].kill9()
    assert one_primary([survivor], timeout=10) == survivor
    cli = cli_for(survivor, tmp_path)
    assert name in cli.out("ps", "--format", "{{.Names}}")
    second = f"{name}-after"
    names.append(second)
    cli.run("run", "-d", "--name", second, "busybox", "sleep", "300")

    # the killed manager comes back as a replica and loses nothing: its view is rebuilt from agents
    replicated.managers[index].start()
    assert one_primary(addrs) == survivor
    replicated.wait_nodes(len(replicated.lab.engines), manager=index)
    back = cli_for(primary, tmp_path)
    listed = back.out("ps", "--format", "{{.Names}}")
    assert name in listed and second in listed
    assert "Role: replica" in back.out("info")
    cli.run("rm", "-f", name, second)


def test_etcd_url_election_fails_over(lab, tmp_path):
    prefix = f"/swarmd-test/{uuid.uuid4().hex[:8]}"
    url = f"etcd://{lab.etcd.endpoint}{prefix}"
    addrs, daemons = [], []
    try:
        for i in range(2):
            addr = f"127.0.0.1:{free_port()}"
            addrs.append(addr)
            daemons.append(Daemon(f"etcd-manager{i}", swarm_argv(
                "manage", "-H", f"tcp://{addr}", "--replication", "--advertise", addr, "--replication-ttl", "3s",
                url), tmp_path / f"manager{i}.log").start())
        primary = one_primary(addrs)
        replica = next(a for a in addrs if a != primary)
        wait_until(lambda: get_status(replica, "/containers/json") == 200, 15, "a forwarded read")
        daemons[addrs.index(primary)].kill9()
        assert one_primary([replica], timeout=10) == replica
        assert get_status(replica, "/containers/json") == 200
    finally:
        for d in daemons:
            d.stop()


def test_etcd_outage_steps_the_primary_down_without_split_brain(lab, tmp_path):
    etcd = EtcdServer(tmp_path / "etcd", name="etcd-outage").start()
    cluster = SwarmCluster(lab, root=tmp_path / "swarm")
    cluster.root.mkdir(parents=True, exist_ok=True)
    try:
        cluster.start_discovery(etcd_url=etcd.url)
        for _ in range(2):
            cluster.start_replica()
        addrs = cluster.manager_addrs
        one_primary(addrs)

        etcd.daemon.stop()
        primaries_seen: list[int] = []

        def nobody_primary():
            roles = [role(a)[0] for a in addrs]
            primaries_seen.append(roles.count("primary"))
            return all(r == "replica" for r in roles)
        wait_until(nobody_primary, 10, "the primary to step down", interval=0.1)
        assert max(primaries_seen) <= 1
        assert get_status(addrs[0], "/containers/json") == 503      # nobody to forward to
        assert all(role(a)[1] == "" for a in addrs)

        etcd.daemon.start()
        wait_until(etcd.healthy, 20, "etcd back")
        primary = one_primary(addrs, timeout=30)
        replica = next(a for a in addrs if a != primary)
        # the replica learns the new primary from its own watch of the election, a moment later
        wait_until(lambda: role(replica)[1] == primary, 10, "the replica to see the new primary", interval=0.1)
        assert get_status(replica, "/containers/json") == 200
    finally:
        cluster.stop()
        etcd.stop()


def test_replicas_forward_over_tls(lab, tmp_path):
    from swarmd.common.tls import TLSConfig
    cluster = SwarmCluster(lab, root=tmp_path / "tls", tls=True)
    cluster.root.mkdir(parents=True, exist_ok=True)
    cluster._make_pki()
    d = cluster.pki_dir / "client"
    ctx = TLSConfig.from_files(str(d / "ca.pem"), str(d / "cert.pem"), str(d / "key.pem")).client_ssl_context()

    def roles():
        out = {}
        for i, a in enumerate(cluster.manager_addrs):
            try:
                out[a] = dict(cluster.info(i)["SystemStatus"][:2])
            except OSError:
                return None
        return out
    try:
        cluster.start_discovery()
        for _ in range(2):
            cluster.start_replica()
        seen = wait_until(lambda: (r := roles()) and sorted(v["Role"] for v in r.values()) == ["primary", "replica"]
                          and r, 20, "a primary and a replica over TLS")
        replica = next(a for a, v in seen.items() if v["Role"] == "replica")

        def forwarded():
            # an election that has just settled may still move once: a replica answers 503 meanwhile
            try:
                with urllib.request.urlopen(f"https://{replica}/containers/json", timeout=10, context=ctx) as r:
                    return r.status == 200 and isinstance(json.loads(r.read()), list)
            except urllib.error.HTTPError as err:
                if err.code != 503:
                    raise
                return False
        wait_until(forwarded, 15, "the replica to forward over TLS", interval=0.2)
    finally:
        cluster.stop()


def test_frozen_primary_loses_leadership_and_comes_back_as_replica(replicated):
    """A primary that hangs with its connections open (SIGSTOP) stops heartbeating its campaign:
    the discovery daemon releases the leader key, a replica takes over, a read forwarded to the
    frozen primary is answered by the new one, and the thawed manager rejoins as a replica."""
    from concurrent.futures import ThreadPoolExecutor
    addrs = replicated.manager_addrs
    primary = one_primary(addrs)
    survivor = next(a for a in addrs if a != primary)
    frozen = replicated.managers[addrs.index(primary)]
    rounds: list[dict[str, str]] = []

    def observe() -> dict[str, str]:
        rounds.append({a: role(a, timeout=0.5)[0] for a in addrs})
        return rounds[-1]

    ttl = 3.0
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(1) as pool:
            read = pool.submit(get_status, survivor, "/containers/json")    # forwarded to the frozen primary
            wait_until(lambda: observe()[survivor] == "primary", ttl + 3, "the replica to take over", interval=0.1)
            assert read.result() == 200
        assert rounds[-1][primary] == "down"
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    wait_until(lambda: observe()[primary] == "replica", 10, "the thawed manager back as a replica", interval=0.1)
    settle = time.monotonic() + 1.0
    while time.monotonic() < settle:
        observe()
    assert all(list(r.values()).count("primary") <= 1 for r in rounds), rounds
    assert role(primary) == ("replica", survivor) and role(survivor)[0] == "primary"
    assert get_status(primary, "/containers/json") == 200     # forwarded to the new primary
