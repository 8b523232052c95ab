"""Pure placement: decisions per second and latency on 1,000 and 5,000 synthetic nodes with 30
containers each.

One scheduler makes a run of decisions and each decision changes the cluster the way a create
does in the manager (see `decide`), so the scheduler's remembered verdicts are re-judged for the
changed nodes every time. The first decision over snapshots never seen (every node judged) is
reported apart, as the "cold" row, and left out of the run's latencies.

On a shared machine one run moves by a third with the other processes' load, so every row is
measured ROUNDS times, the rows interleaved round by round, and the median is reported.
"""
from __future__ import annotations

import collections
import copy
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


def decide(scheduler: Scheduler, spec: ContainerSpec, nodes: list[NodeSnapshot], n: int,
           cpu: list[float] | None = None) -> list[float]:
    """`n` decisions, each applied to the cluster as in the manager: the chosen node gets a new
    snapshot holding the container, and the placement made WINDOW decisions earlier is removed
    again (a second changed node). Returns the decision latencies; `cpu`, when given, gets each
    decision's CPU time (the thread's: what the decision costs whatever else the machine runs)."""
    position = {node.id: i for i, node in enumerate(nodes)}
    window: collections.deque[tuple[int, str]] = collections.deque()
    lat = []
    thread_time = time.thread_time if cpu is not None else _no_clock
    for k in range(n):
        c0 = thread_time()
        s = time.perf_counter()
        chosen = scheduler.select(spec, nodes)
        lat.append(time.perf_counter() - s)
        if cpu is not None:
            cpu.append(thread_time() - c0)
        i = position[chosen.id]
        c = placed(spec, k)
        nodes[i] = dataclasses.replace(chosen, containers=chosen.containers + (c,))
        window.append((i, c.id))
        if len(window) > WINDOW:
            j, cid = window.popleft()
            nodes[j] = dataclasses.replace(nodes[j], containers=tuple(x for x in nodes[j].containers if x.id != cid))
    return lat


def _no_clock() -> float:
    return 0.0


SIZES = (1000, 5000)
QUICK_SIZES = (1000,)   # fewer nodes leave the port spec no free node within WINDOW placements
ROUNDS = 3
DECISIONS = 3000
# throughput is judged at 1,000 nodes; at 5,000 the latency target alone (issue 16)
THROUGHPUT_TARGET_UP_TO = 1000


def run(quick: bool = False) -> list[Row]:
    # the garbage-collection policy of the manager process, whose scheduler this measures
    policy = GcPolicy()
    policy.install()
    try:
        return _run(quick)
    finally:
        policy.uninstall()
        gc.unfreeze()


def _name(size: int, strategy: str, label: str, what: str) -> str:
    # the 1,000-node rows keep their names of before, so that runs compare
    where = "" if size == 1000 else f"{size} nodes "
    return f"placement {where}{strategy} {label} {what}"


def _steady(strategy: str, spec: ContainerSpec, cluster: list[NodeSnapshot], n: int,
            cpu: list[float]) -> list[float]:
    """The latencies of `n` decisions by one scheduler (their CPU times into `cpu`), after a first
    (untimed) decision over the cluster: the scheduler's verdicts and the snapshots' indexes
    exist, as in a running manager."""
    nodes = list(cluster)     # decide replaces snapshots in this list, never in `cluster`
    scheduler = Scheduler(strategy)
    scheduler.select(spec, nodes)
    return decide(scheduler, spec, nodes, n, cpu)


def _cold(strategy: str, spec: ContainerSpec, cluster: list[NodeSnapshot]) -> float:
    """One decision of a new scheduler over snapshots never read (copies carry no index)."""
    nodes = [copy.copy(n) for n in cluster]
    s = time.perf_counter()
    Scheduler(strategy).select(spec, nodes)
    return time.perf_counter() - s


def _run(quick: bool) -> list[Row]:
    rounds, n = (1, 300) if quick else (ROUNDS, DECISIONS)
    rows = []
    for size in QUICK_SIZES if quick else SIZES:
        cluster = synthetic_cluster(size)
        keep_long_lived()     # as the manager keeps a node's records once its sync stored them
        cases = [(strategy, label, ContainerSpec.from_create(body, None))
                 for strategy in ("spread", "binpack") for label, body in SPECS.items()]
        cold: dict[int, list[float]] = collections.defaultdict(list)
        p50: dict[int, list[float]] = collections.defaultdict(list)
        p99: dict[int, list[float]] = collections.defaultdict(list)
        rate: dict[int, list[float]] = collections.defaultdict(list)
        cpu_mean: dict[int, list[float]] = collections.defaultdict(list)
        for _ in range(rounds):          # round by round: a slow spell of the machine hits every row
            for i, (strategy, _, spec) in enumerate(cases):
                cold[i].append(_cold(strategy, spec, cluster))
                cpu: list[float] = []
                lat = _steady(strategy, spec, cluster, n, cpu)
                rate[i].append(len(lat) / sum(lat))
                cpu_mean[i].append(sum(cpu) / len(cpu))
                lat.sort()
                p50[i].append(statistics.median(lat))
                p99[i].append(lat[int(len(lat) * 0.99) - 1])
        for i, (strategy, label, _) in enumerate(cases):
            rows.append(judged(_name(size, strategy, label, "first decision (cold)"),
                               statistics.median(cold[i]) * 1e3, "ms"))
            rows.append(judged(_name(size, strategy, label, "p50"), statistics.median(p50[i]) * 1e3, "ms"))
            rows.append(judged(_name(size, strategy, label, "p99"), statistics.median(p99[i]) * 1e3, "ms", "<= 2"))
            rows.append(judged(_name(size, strategy, label, "throughput"), statistics.median(rate[i]), "dec/s",
                               ">= 5000" if size <= THROUGHPUT_TARGET_UP_TO else ""))
            # informational: unlike the wall-clock rows, not moved by other processes' load
            rows.append(judged(_name(size, strategy, label, "CPU per decision"), statistics.median(cpu_mean[i]) * 1e6,
                               "us"))
        del cluster
        gc.collect()
    return rows
