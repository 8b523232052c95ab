"""Pure placement: decisions per second and latency on 1,000 synthetic nodes with 30,000 containers.

One scheduler makes a run of decisions and each decision changes the cluster the way a create
does in the manager (see `decide`), so the scheduler's remembered verdicts are re-judged for the
changed nodes every time; the first decision over snapshots never seen is reported apart.
"""
from __future__ import annotations

import collections
import dataclasses
import gc
import random
import statistics
import time

from bench.report import Row, judged
from swarmd.manager.gc_policy import GcPolicy, keep_long_lived
from swarmd.manager.scheduler import ContainerSpec, Scheduler
from swarmd.manager.scheduler.snapshot import ContainerSnapshot, ImageSnapshot, NodeSnapshot, PortBinding

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


WINDOW = 100   # placements kept before the oldest is removed again (ports stay free on most nodes)


def placed(spec: ContainerSpec, k: int) -> ContainerSnapshot:
    """The container a decision placed, as the manager's pending placeholder shows it."""
    return ContainerSnapshot(id=f"placed{k}".ljust(64, "0"), name=f"placed{k}", image=spec.image, image_id="",
                             state="created", labels={}, ports=spec.ports, cpus=spec.cpus, memory=spec.memory)


def decide(scheduler: Scheduler, spec: ContainerSpec, nodes: list[NodeSnapshot], n: int) -> list[float]:
    """`n` decisions, each applied to the cluster as in the manager: the chosen node gets a new
    snapshot holding the container, and the placement made WINDOW decisions earlier is removed
    again (a second changed node). Returns the decision latencies."""
    position = {node.id: i for i, node in enumerate(nodes)}
    window: collections.deque[tuple[int, str]] = collections.deque()
    lat = []
    for k in range(n):
        s = time.perf_counter()
        chosen = scheduler.select(spec, nodes)
        lat.append(time.perf_counter() - s)
        i = position[chosen.id]
        c = placed(spec, k)
        nodes[i] = dataclasses.replace(chosen, containers=chosen.containers + (c,))
        window.append((i, c.id))
        if len(window) > WINDOW:
            j, cid = window.popleft()
            nodes[j] = dataclasses.replace(nodes[j], containers=tuple(x for x in nodes[j].containers if x.id != cid))
    return lat


def run(quick: bool = False) -> list[Row]:
    # the garbage-collection policy of the manager process, whose scheduler this measures
    policy = GcPolicy()
    policy.install()
    try:
        return _run(quick)
    finally:
        policy.uninstall()
        gc.unfreeze()


def _run(quick: bool) -> list[Row]:
    size = 200 if quick else 1000
    rows = []
    for strategy in ("spread", "binpack"):
        for label, body in SPECS.items():
            spec = ContainerSpec.from_create(body, None)
            # the first decision of a signature over snapshots never read before: every node judged
            cold = []
            for _ in range(3):
                nodes = synthetic_cluster(size)
                s = time.perf_counter()
                Scheduler(strategy).select(spec, nodes)
                cold.append(time.perf_counter() - s)
            rows.append(judged(f"placement {strategy} {label} first decision (cold)", statistics.median(cold) * 1e3,
                               "ms"))
            nodes = synthetic_cluster(size)
            keep_long_lived()     # as the manager keeps a node's records once its sync stored them
            scheduler = Scheduler(strategy)
            lat = decide(scheduler, spec, nodes, 300 if quick else 3000)
            total = sum(lat)
            lat.sort()
            rows.append(judged(f"placement {strategy} {label} p50", statistics.median(lat) * 1e3, "ms"))
            rows.append(judged(f"placement {strategy} {label} p99", lat[int(len(lat) * 0.99) - 1] * 1e3, "ms",
                               "<= 2"))
            rows.append(judged(f"placement {strategy} {label} throughput", len(lat) / total, "dec/s", ">= 5000"))
    return rows
