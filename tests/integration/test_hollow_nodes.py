"""Hollow nodes (agent.hollow) join a real discovery daemon and a real manager schedules onto them."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.request

import pytest

from swarmd.localcluster.processes import Daemon, wait_until
from swarmd.localcluster.swarm import SwarmCluster

COUNT = 20


@pytest.fixture(scope="module")
def hollow(lab, tmp_path_factory):
    cluster = SwarmCluster(lab, root=tmp_path_factory.mktemp("hollow"), heartbeat="1s", ttl="3s")
    fleet = None
    try:
        cluster.start_discovery()
        fleet = Daemon("hollow", [sys.executable, "-m", "swarmd.agent.hollow", "--count", str(COUNT), "--containers", "2",
                                  "--heartbeat", "1s", "--ttl", "3s", "--discovery-addr", cluster.discovery_addr,
                                  cluster.discovery_url], cluster.root / "hollow.log").start()
        cluster.start_manager()
        cluster.wait_nodes(COUNT, timeout=60)
        yield cluster
    except BaseException:
        print(cluster.logs(), fleet.log_tail() if fleet else "")
        raise
    finally:
        if fleet is not None:
            fleet.stop()
        cluster.stop()


def call(cluster: SwarmCluster, method: str, path: str, body: dict | None = None):
    req = urllib.request.Request(f"http://{cluster.manager_addrs[0]}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        data = r.read()
        return r.status, json.loads(data) if data else None


def test_manager_lists_every_hollow_node_and_their_containers(hollow):
    info = hollow.info()
    names = sorted(row[0].strip() for row in info["SystemStatus"] if row[0].startswith(" hollow"))
    assert names == [f"hollow{i:04d}" for i in range(COUNT)]
    assert info["Containers"] == COUNT * 2 and info["ContainersRunning"] == COUNT * 2
    assert info["NCPU"] == COUNT * 4
    _, listed = call(hollow, "GET", "/containers/json?all=1")
    assert len(listed) == COUNT * 2
    assert all(c["Names"][0].startswith("/hollow") for c in listed)


def test_create_start_inspect_remove_on_hollow_nodes(hollow):
    status, created = call(hollow, "POST", "/containers/create?name=hollow-web",
                           {"Image": "busybox", "Cmd": ["sleep", "60"], "Labels": {"bench": "yes"},
                            "Env": ["constraint:node==hollow0007"]})
    assert status == 201
    status, _ = call(hollow, "POST", f"/containers/{created['Id']}/start")
    assert status == 204
    _, doc = call(hollow, "GET", "/containers/hollow-web/json")
    assert doc["Node"]["Name"] == "hollow0007" and doc["State"]["Running"]
    _, listed = call(hollow, "GET", "/containers/json?filters=" + urllib.request.quote('{"label":["bench=yes"]}'))
    assert [c["Id"] for c in listed] == [created["Id"]]
    status, _ = call(hollow, "DELETE", f"/containers/{created['Id']}?force=1")
    assert status == 204
    wait_until(lambda: call(hollow, "GET", "/info")[1]["Containers"] == COUNT * 2, 10, "the removal to be seen")


def test_spread_places_new_containers_on_distinct_hollow_nodes(hollow):
    ids = []
    try:
        for i in range(5):
            _, created = call(hollow, "POST", f"/containers/create?name=spread{i}", {"Image": "busybox"})
            ids.append(created["Id"])
        nodes = {call(hollow, "GET", f"/containers/{cid}/json")[1]["Node"]["Name"] for cid in ids}
        assert len(nodes) == 5
    finally:
        for cid in ids:
            call(hollow, "DELETE", f"/containers/{cid}?force=1")


def _node_names(cluster: SwarmCluster) -> list[str]:
    return [row[0].strip() for row in cluster.info()["SystemStatus"] if row[0].startswith(" ") and
            not row[0].startswith("  ")]


def test_a_held_fleet_serves_its_nodes_and_registers_them_only_when_released(hollow, tmp_path):
    ready = tmp_path / "held.ready"
    held = Daemon("held", [sys.executable, "-m", "swarmd.agent.hollow", "--count", "3", "--name-prefix", "held",
                           "--first-index", "100", "--heartbeat", "1s", "--ttl", "3s", "--ready-file", str(ready),
                           "--discovery-addr", hollow.discovery_addr, hollow.discovery_url],
                  tmp_path / "held.log").start()
    try:
        wait_until(ready.exists, 30, "the held fleet to serve its nodes", interval=0.1)
        assert ready.read_text().strip() == str(held.pid)
        time.sleep(1.5)             # a heartbeat and a half later, not one of them has registered
        assert held.running() and not [n for n in _node_names(hollow) if n.startswith("held")]
        os.kill(held.pid, signal.SIGUSR1)
        hollow.wait_nodes(COUNT + 3, timeout=30)
        assert sorted(n for n in _node_names(hollow) if n.startswith("held")) == ["held0100", "held0101", "held0102"]
    finally:
        held.stop()
    hollow.wait_nodes(COUNT, timeout=30)            # deregistered as it stopped
