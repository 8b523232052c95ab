"""Scale by simulation: one real manager over 1,000 hollow nodes carrying 30,000 containers.

Real etcd, a real discovery daemon and a real `swarm manage` process; the nodes are hollow agents
(`python -m swarmd.agent.hollow`: real gRPC servers, registrations and heartbeats, in-memory engines),
several hundred to a process. Each node joins with containers already running, and the rest of
the 30,000 are created through the manager's API, which measures create throughput on the way.

Measured: membership convergence (fleet started -> every node healthy in the manager with all its
containers synced), placement latency inside the manager (its scheduling histogram), `docker ps -a`
and `docker info` through the API (and with the real docker CLI), manager RSS, create throughput.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
import urllib.request
from pathlib import Path

from bench.apiclient import ApiClient
from bench.report import Row, judged
from swarmd.localcluster.etcd import EtcdServer
from swarmd.localcluster.processes import Daemon, DaemonExited, free_port, wait_until
from swarmd.localcluster.swarm import SwarmCluster

NODES_PER_PROCESS = 250
# hollow nodes heartbeat every 5 s under a 15 s lease: the discovery daemon's load stays at
# 200 renewals/s for 1,000 nodes (the 2 s / 6 s agent default would be 500/s on this machine)
HEARTBEAT, TTL = "5s", "15s"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def histogram_quantile(text: str, metric: str, q: float) -> float:
    """The upper bound of the bucket holding quantile `q` of a Prometheus histogram (seconds)."""
    buckets = []
    for line in text.splitlines():
        if line.startswith(f"{metric}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= q * total:
            return bound
    return float("nan")


class HollowCluster:
    """etcd + discovery + one manager + hollow fleets, all real processes under one temp dir."""

    def __init__(self, nodes: int, containers_per_node: int, manager_args: tuple[str, ...] = ()):
        self.nodes = nodes
        self.manager_args = manager_args     # e.g. `--ui-addr` for the web view's suite
        self.containers_per_node = containers_per_node
        self.root = Path(tempfile.mkdtemp(prefix="swarmd-bench-scale-"))
        self.etcd = EtcdServer(self.root / "etcd")
        self.swarm = SwarmCluster(types.SimpleNamespace(etcd=self.etcd, root=self.root, engines=[]),
                                  root=self.root / "swarm", heartbeat=HEARTBEAT, ttl=TTL)
        self.metrics_addr = f"127.0.0.1:{free_port()}"
        self.fleets: list[Daemon] = []

    @property
    def manager(self) -> Daemon:
        return self.swarm.managers[0]

    @property
    def api(self) -> str:
        return self.swarm.manager_addrs[0]

    def start(self) -> None:
        self.etcd.start()
        self.swarm.start_discovery()
        self.swarm.start_manager("--metrics-addr", self.metrics_addr, *self.manager_args)
        wait_until(lambda: self.swarm.info() is not None, 20, "the manager to answer")

    def start_fleets(self) -> None:
        for first in range(0, self.nodes, NODES_PER_PROCESS):
            count = min(NODES_PER_PROCESS, self.nodes - first)
            self.fleets.append(Daemon(
                f"hollow{first}",
                [sys.executable, "-m", "swarmd.agent.hollow", "--count", str(count), "--first-index", str(first),
                 "--containers", str(self.containers_per_node), "--heartbeat", HEARTBEAT, "--ttl", TTL,
                 "--log-level", "warning", "--discovery-addr", self.swarm.discovery_addr,
                 self.swarm.discovery_url],
                self.root / f"hollow{first}.log").start())

    def start_converged(self, timeout: float = 600) -> float:
        """Manager, then the fleets; seconds from the fleets' start until every node is synced."""
        self.start()
        t0 = time.perf_counter()
        self.start_fleets()
        wait_until(self.converged, timeout, f"{self.nodes} hollow nodes with their containers", interval=0.5)
        return time.perf_counter() - t0

    def converged(self) -> dict | None:
        for d in [self.manager, *self.fleets]:
            if not d.running():
                raise DaemonExited(f"{d.name} exited:\n{d.log_tail()}")
        info = self.swarm.info()
        healthy = sum(1 for k, v in info["SystemStatus"] if k == "  └ Status" and v == "Healthy")
        if healthy == self.nodes and info["Containers"] >= self.nodes * self.containers_per_node:
            return info
        return None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{self.metrics_addr}/metrics", timeout=10) as r:
            return r.read().decode()

    def stop(self) -> None:
        for d in self.fleets:
            d.stop(timeout=30)
        self.swarm.stop()
        self.etcd.stop()
        shutil.rmtree(self.root, ignore_errors=True)


async def timed_get(addr: str, path: str, n: int) -> list[float]:
    client = ApiClient(f"tcp://{addr}")
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            await client.call("GET", path)
            out.append(time.perf_counter() - t)
    finally:
        await client.close()
    return out


async def create_many(addr: str, total: int, clients: int, start: bool, prefix: str) -> tuple[float, int]:
    """`total` containers created (and started) by `clients` concurrent API clients; (seconds, errors)."""
    counter = iter(range(total))
    errors = 0

    async def worker() -> None:
        nonlocal errors
        client = ApiClient(f"tcp://{addr}")
        try:
            for i in counter:
                try:
                    created = await client.json("POST", f"/containers/create?name={prefix}{i}",
                                                {"Image": "busybox", "Cmd": ["sleep", "3600"],
                                                 "Labels": {"bench": "scale"}})
                    if start:
                        await client.call("POST", f"/containers/{created['Id']}/start")
                except Exception:  # counted, not fatal: the rate is what is measured
                    errors += 1
        finally:
            await client.close()

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return time.perf_counter() - t, errors


def docker_cli(addr: str, *args: str) -> float:
    env = {**os.environ, "DOCKER_HOST": f"tcp://{addr}"}
    env.pop("DOCKER_CONTEXT", None)
    t = time.perf_counter()
    subprocess.run(["docker", *args], env=env, check=True, stdout=subprocess.DEVNULL, timeout=120)
    return time.perf_counter() - t


def p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(q * len(values))) - 1))]


def run(quick: bool = False) -> list[Row]:
    nodes = 100 if quick else 1000
    total = nodes * 30
    api_created = nodes                          # one per node through the API; the rest join with the nodes
    preloaded = (total - api_created) // nodes
    cluster = HollowCluster(nodes, preloaded)
    rows: list[Row] = []
    try:
        converged = cluster.start_converged()
        rows.append(judged(f"scale: membership convergence, {nodes} joins ({nodes * preloaded} containers synced)",
                           converged, "s"))
        rows.append(judged(f"scale: manager RSS, {nodes} nodes / {nodes * preloaded} containers",
                           rss_bytes(cluster.manager.pid) / 2**20, "MiB"))

        seconds, errors = asyncio.run(create_many(cluster.api, api_created, 16, start=False, prefix="api-c"))
        rows.append(judged(f"scale: API create throughput onto hollow nodes (16 clients, {api_created} creates)",
                           (api_created - errors) / seconds, "ctr/s", ">= 500"))
        if errors:
            rows.append(judged("scale: API create errors", errors, "count"))
        n_run = min(api_created, 500)
        seconds, errors = asyncio.run(create_many(cluster.api, n_run, 16, start=True, prefix="api-r"))
        rows.append(judged(f"scale: API create+start throughput onto hollow nodes (16 clients, {n_run})",
                           (n_run - errors) / seconds, "ctr/s"))
        metrics = cluster.metrics()
        rows.append(judged(f"scale: placement latency p50 in the manager, {nodes} nodes (histogram bound)",
                           histogram_quantile(metrics, "swarmd_manager_scheduling_seconds", 0.5) * 1e3, "ms"))
        rows.append(judged(f"scale: placement latency p99 in the manager, {nodes} nodes (histogram bound)",
                           histogram_quantile(metrics, "swarmd_manager_scheduling_seconds", 0.99) * 1e3, "ms",
                           "<= 2"))

        count = len(json.loads(urllib.request.urlopen(f"http://{cluster.api}/containers/json?all=1",
                                                      timeout=60).read()))
        ps = asyncio.run(timed_get(cluster.api, "/containers/json?all=1", 3 if quick else 7))
        rows.append(judged(f"scale: docker ps -a API median, {count} containers", statistics.median(ps) * 1e3,
                           "ms", "<= 500"))
        info = asyncio.run(timed_get(cluster.api, "/info", 5 if quick else 11))
        rows.append(judged(f"scale: docker info API median, {nodes} nodes", statistics.median(info) * 1e3, "ms",
                           "<= 200"))
        if shutil.which("docker"):
            rows.append(judged(f"scale: `docker ps -a` CLI wall time, {count} containers",
                               docker_cli(cluster.api, "ps", "-a") * 1e3, "ms"))
            rows.append(judged(f"scale: `docker info` CLI wall time, {nodes} nodes",
                               docker_cli(cluster.api, "info") * 1e3, "ms"))
        rows.append(judged(f"scale: manager RSS, {nodes} nodes / {count} containers",
                           rss_bytes(cluster.manager.pid) / 2**20, "MiB", "<= 1024"))
    finally:
        cluster.stop()
    return rows
