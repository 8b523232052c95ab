"""Failure handling on real daemons: primary manager failover and rescheduling after an agent dies.

A lab of 3 engines, the discovery daemon, 3 agents with the default heartbeat (2 s) and TTL (6 s),
and two `--replication` managers (default election TTL 3 s). Times are taken from `kill -9` (or
SIGSTOP: a hung primary whose connections stay open, released when its heartbeats stop) to what a
client sees through the API (`/info` roles, node status, `/containers/json`), polled every 50 ms.
"""
from __future__ import annotations

import json
import os
import signal
import statistics
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from bench.report import Row, judged
from swarmd.localcluster.lab import Lab
from swarmd.localcluster.processes import wait_until
from swarmd.localcluster.swarm import SwarmCluster, wait_one_primary

POLL = 0.05
LOST = "node2"
POLICY = json.dumps(["on-node-failure"])


def _get(addr: str, path: str):
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=5) as r:
        return json.loads(r.read())


def _role(addr: str) -> str:
    try:
        return dict(_get(addr, "/info")["SystemStatus"][:1]).get("Role", "")
    except (OSError, urllib.error.URLError, ValueError):
        return "down"


def _node_status(addr: str, node: str) -> str:
    status = _get(addr, "/info")["SystemStatus"]
    for i, (k, _) in enumerate(status):
        if k.strip() == node:
            return next(v for key, v in status[i + 1:] if key == "  └ Status")
    return ""


def _post(addr: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(f"http://{addr}{path}", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        raw = r.read()
    return json.loads(raw) if raw else {}


def _elapsed(predicate, t0: float, timeout: float, what: str) -> float:
    wait_until(predicate, timeout, what, interval=POLL)
    return time.monotonic() - t0


def measure_failover(swarm: SwarmCluster, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        addrs = swarm.manager_addrs
        primary = wait_one_primary(addrs, timeout=30)
        index = addrs.index(primary)
        survivor = next(a for a in addrs if a != primary)
        t0 = time.monotonic()
        swarm.managers[index].kill9()
        out.append(_elapsed(lambda: _role(survivor) == "primary", t0, 30, "a replica to become primary"))
        swarm.managers[index].start()
        wait_until(lambda: _role(primary) == "replica", 30, "the old primary back as a replica", interval=POLL)
    return out


def measure_freeze_failover(swarm: SwarmCluster, rounds: int) -> list[float]:
    """SIGSTOP the primary: its Campaign stream stays open, so the discovery daemon releases the
    leader key only when the manager's heartbeats stop arriving (two thirds of the TTL + 0.2 s)."""
    out = []
    for _ in range(rounds):
        addrs = swarm.manager_addrs
        primary = wait_one_primary(addrs, timeout=30)
        frozen = swarm.managers[addrs.index(primary)]
        survivor = next(a for a in addrs if a != primary)
        t0 = time.monotonic()
        os.kill(frozen.pid, signal.SIGSTOP)
        try:
            out.append(_elapsed(lambda: _role(survivor) == "primary", t0, 30, "a replica to become primary"))
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        wait_until(lambda: _role(primary) == "replica", 30, "the thawed primary back as a replica", interval=POLL)
    return out


def measure_etcd_failover(lab: Lab, root: Path, rounds: int) -> list[float]:
    """The same with an etcd:// URL: no discovery daemon to revoke the lease, so it expires (3 s)."""
    from swarmd.localcluster.processes import Daemon, free_port
    from swarmd.localcluster.swarm import swarm_argv
    url = f"etcd://{lab.etcd.endpoint}/bench-failover-{uuid.uuid4().hex[:8]}"
    addrs = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    daemons = [Daemon(f"etcd-manager{i}", swarm_argv("manage", "-H", f"tcp://{a}", "--replication", "--advertise", a,
                                                     url), root / f"etcd-manager{i}.log").start()
               for i, a in enumerate(addrs)]
    out = []
    try:
        for _ in range(rounds):
            primary = wait_one_primary(addrs, timeout=30)
            index = addrs.index(primary)
            survivor = addrs[1 - index]
            t0 = time.monotonic()
            daemons[index].kill9()
            out.append(_elapsed(lambda: _role(survivor) == "primary", t0, 30, "a replica to become primary"))
            daemons[index].start()
            wait_until(lambda: _role(primary) == "replica", 30, "the old primary back as a replica", interval=POLL)
    finally:
        for d in daemons:
            d.stop()
    return out


def measure_reschedule(swarm: SwarmCluster, lab: Lab) -> tuple[float, float]:
    primary = wait_one_primary(swarm.manager_addrs, timeout=30)
    lost_index = next(i for i, e in enumerate(lab.engines) if e.name == LOST)
    name = f"bench-resched-{uuid.uuid4().hex[:8]}"
    created = _post(primary, f"/containers/create?name={name}", {
        "Image": "busybox", "Cmd": ["sleep", "600"], "Env": [f"constraint:node==~{LOST}"],
        "Labels": {"com.docker.swarm.reschedule-policies": POLICY, "bench": "failover"}})
    _post(primary, f"/containers/{created['Id']}/start")

    def moved() -> bool:
        for c in _get(primary, '/containers/json?filters={"label":["bench=failover"]}'):
            if c["Names"][0].split("/")[-1] == name and not c["Names"][0].startswith(f"/{LOST}/") \
                    and c["State"] == "running":
                return True
        return False
    try:
        t0 = time.monotonic()
        swarm.agents[LOST].kill9()
        unhealthy = _elapsed(lambda: _node_status(primary, LOST) == "Unhealthy", t0, 30, "node unhealthy")
        running = _elapsed(moved, t0, 60, "the container running elsewhere")
    finally:
        if not swarm.agents[LOST].running():
            swarm.start_agent(lost_index)
        swarm.wait_nodes(len(lab.engines), manager=swarm.manager_addrs.index(primary))
    return unhealthy, running


def run(quick: bool = False) -> list[Row]:
    rounds = 1 if quick else 3
    with Lab(engines=3, registry=False) as lab:
        swarm = SwarmCluster(lab, root=Path(tempfile.mkdtemp(prefix="swarmd-bench-failover-")),
                             heartbeat="2s", ttl="6s")
        try:
            swarm.start_replicated(managers=2)
            failovers = measure_failover(swarm, rounds)
            freezes = measure_freeze_failover(swarm, rounds)
            resched = [measure_reschedule(swarm, lab) for _ in range(rounds)]
            etcd_failovers = measure_etcd_failover(lab, swarm.root, rounds)
        finally:
            swarm.stop()
            for engine in lab.engines:
                engine.remove_all_containers()
    return [
        judged("failover: primary kill -> replica primary", statistics.median(failovers), "s", "<= 5"),
        judged("failover: primary kill -> replica primary (max)", max(failovers), "s"),
        judged("failover: primary SIGSTOP -> replica primary", statistics.median(freezes), "s", "<= 3"),
        judged("failover (etcd://): primary kill -> replica primary", statistics.median(etcd_failovers), "s",
               "<= 5"),
        judged("reschedule: agent kill -> node unhealthy", statistics.median(r[0] for r in resched), "s", "<= 6"),
        judged("reschedule: agent kill -> container running elsewhere",
               statistics.median(r[1] for r in resched), "s"),
    ]
