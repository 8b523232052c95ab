"""Pure placement: decisions per second and latency on 1,000 synthetic nodes with 30,000 containers."""
from __future__ import annotations

import random
import statistics
import time

from bench.report import Row, judged
from manager.scheduler import ContainerSpec, Scheduler
from manager.scheduler.snapshot import ContainerSnapshot, ImageSnapshot, NodeSnapshot, PortBinding

GiB = 1 << 30


def synthetic_cluster(nodes: int = 1000, containers_per_node: int = 30, seed: int = 7) -> list[NodeSnapshot]:
    rng = random.Random(seed)
    out = []
    for n in range(nodes):
        containers = tuple(
            ContainerSnapshot(
                id=f"{n:04x}{c:04x}".ljust(64, "0"), name=f"c{n}-{c}", image="busybox",
                image_id="sha256:" + "b" * 64, state="running", labels={"app": f"a{c % 10}"},
                ports=(PortBinding("0.0.0.0", 10000 + c, "tcp"),) if c % 5 == 0 else (),
                cpus=0.1 if c % 3 == 0 else 0.0, memory=(64 << 20) if c % 2 == 0 else 0)
            for c in range(containers_per_node))
        out.append(NodeSnapshot(
            id=f"node{n:04d}", name=f"node{n:04d}", addr=f"10.0.{n // 250}.{n % 250}:4001",
            labels={"zone": f"z{n % 4}", "storage": rng.choice(["ssd", "disk"])}, healthy=True,
            total_cpus=16.0, total_memory=64 * GiB, containers=containers,
            images=(ImageSnapshot("sha256:" + "b" * 64, ("busybox:latest",)),), engine_version="20.10.24",
            os="linux", kernel_version="6.1", operating_system="Debian", architecture="x86_64"))
    return out


SPECS = {
    "plain": {"Image": "busybox"},
    "constraint+affinity+port": {"Image": "busybox", "Env": ["constraint:zone==z1", "affinity:image==busybox"],
                                 "HostConfig": {"Memory": 128 << 20, "NanoCpus": 500_000_000,
                                                "PortBindings": {"80/tcp": [{"HostPort": "10001"}]}}},
}


def run(quick: bool = False) -> list[Row]:
    nodes = synthetic_cluster(200 if quick else 1000)
    rows = []
    for strategy in ("spread", "binpack"):
        scheduler = Scheduler(strategy)
        for label, body in SPECS.items():
            spec = ContainerSpec.from_create(body, None)
            scheduler.select(spec, nodes)            # warm caches the way a live manager would be
            lat = []
            n = 300 if quick else 2000
            t0 = time.perf_counter()
            for _ in range(n):
                s = time.perf_counter()
                scheduler.select(spec, nodes)
                lat.append(time.perf_counter() - s)
            elapsed = time.perf_counter() - t0
            lat.sort()
            rows.append(judged(f"placement {strategy} {label} p50", statistics.median(lat) * 1e3, "ms"))
            rows.append(judged(f"placement {strategy} {label} p99", lat[int(len(lat) * 0.99) - 1] * 1e3, "ms",
                               "<= 2"))
            rows.append(judged(f"placement {strategy} {label} throughput", n / elapsed, "dec/s", ">= 5000"))
    return rows
