"""Scale by simulation: one real manager over 1,000 / 2,000 / 5,000 hollow nodes of 30 containers.

Real etcd, a real discovery daemon and a real `swarm manage` process; the nodes are hollow agents
(`python -m swarmd.agent.hollow`: real gRPC servers, registrations and heartbeats, in-memory engines),
NODES_PER_PROCESS to a process (niced to FLEET_NICE once the creates are measured: they stand for other
machines). Each node joins with containers already running, and the rest of
its 30 are created through the manager's API, which measures create throughput on the way.

Per fleet size (a growth table: `--scale-nodes 1000,2000,5000`, or SWARMD_BENCH_SCALE_NODES):
membership convergence (fleet started -> every node healthy in the manager with all its containers
synced) and the CPU each process kind used meanwhile, the converged fleet at rest (CPU per process
kind over 30 s, nothing asked of it), manager RSS (and per container), `docker ps -a` and `docker info` through the API (and
with the real docker CLI), placement latency inside the manager (its scheduling histogram), create
throughput with 16 clients, the manager's longest garbage collector pause (its /metrics), and a
killed hollow process's nodes seen lost within their lease. Then the heartbeat rows
(bench/heartbeats.py) at the largest size, at the agents' 2 s default and lengthened to about 250
renewals a second (named in the rows; the lease stays three heartbeats), and growth rows: how each cost grew from the smallest
size to the largest against the growth of the fleet.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

from bench import heartbeats
from bench.apiclient import ApiClient
from bench.hollowlab import PROCESS_KINDS, HollowCluster, histogram_quantile, metric_sum, node_statuses, rss_bytes
from bench.report import RESULTS, Row, judged, print_table, save
from swarmd.common import config
from swarmd.localcluster.processes import wait_until

__all__ = ["HollowCluster", "run"]      # bench.ui starts its fleet through HollowCluster

SIZES = (1000, 2000, 5000)
QUICK_SIZES = (100, 200)
CONTAINERS_PER_NODE = 30
FULL_CONTAINERS = 150_000   # the envelope the targets are set for: 5,000 nodes of 30
DAEMONS = 2                 # discovery daemons in the growth table; the nodes spread over them
# the fleet at rest: measured this long after convergence (the sync's last answers, the first
# samples), over this window
REST_SETTLE, REST_WINDOW = 10.0, 30.0
# After the creates, the hollow fleet's processes run at this niceness (their threads and their
# scheduling groups: each daemon is a session, so an autogroup, of its own). They stand for
# 5,000 other machines, yet share this machine's 2 CPUs with the manager, and each of the 20
# weighed as much as the manager: it waited for a CPU in the middle of its own work (a 6 ms
# collection took 144 ms of wall time). Niced, the fleet uses the CPU the manager leaves, and the
# rows measured then (`ps -a`, `info`, RSS, the collector, a kill) are the manager's own; their
# names say so. Not while the fleet works for what is measured: starved during the sync, its
# answers timed out (2,300 nodes found unreachable once), and the creates wait for its engines.
FLEET_NICE = 19


def sizes(quick: bool, asked: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The fleet sizes to run: asked for, else SWARMD_BENCH_SCALE_NODES ("1000,2000"), else the default."""
    if asked:
        return asked
    env = os.environ.get("SWARMD_BENCH_SCALE_NODES", "").strip()
    if env:
        return tuple(int(n) for n in env.split(",") if n.strip())
    return QUICK_SIZES if quick else SIZES


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


def ps_target_ms(containers: int) -> float:
    """`docker ps -a`: 1.5 s at 150,000 containers (issue 16), so 10 µs a container, never below
    the 500 ms the 30,000-container run was held to."""
    return max(500.0, containers * 0.01)


def seen_lost(cluster: HollowCluster) -> tuple[float, float, int]:
    """Kills the last hollow process (kill -9: no deregistration, its leases run out); seconds until
    the manager shows the first, then every one of its nodes Unhealthy (or gone), and how many."""
    victim = cluster.fleets[-1]
    first = (len(cluster.fleets) - 1) * cluster.nodes_per_process
    names = {f"hollow{i:04d}" for i in range(first, cluster.nodes)}
    victim.kill9()
    t0 = time.perf_counter()
    first_at: list[float] = []

    def lost() -> bool:
        statuses = node_statuses(cluster.swarm.info())
        down = sum(1 for n in names if statuses.get(n, "Unhealthy") != "Healthy")
        if down and not first_at:
            first_at.append(time.perf_counter() - t0)
        return down == len(names)

    wait_until(lost, 120, f"{len(names)} killed nodes to be seen lost", interval=0.25)
    return first_at[0], time.perf_counter() - t0, len(names)


def fleet_heartbeat(nodes: int) -> int:
    """Seconds between a hollow node's heartbeats in the growth table: 5 s up to 1,000 nodes, then
    longer with the fleet, so the discovery tier renews about 200 leases a second at every size
    (what two daemons sustain on this 2-core machine beside the manager and the fleet; the 2 s
    default is measured on its own by the heartbeat rows). The lease stays three heartbeats."""
    return max(5, -(-nodes // 200))


def measure_size(nodes: int, quick: bool) -> tuple[list[Row], dict[str, float]]:
    """The rows for one fleet size, and the values the growth rows compare."""
    total = nodes * CONTAINERS_PER_NODE
    api_created = nodes                          # one per node through the API; the rest join with the nodes
    preloaded = (total - api_created) // nodes
    beat = fleet_heartbeat(nodes)
    cluster = HollowCluster(nodes, preloaded, daemons=DAEMONS, heartbeat=f"{beat}s", ttl=f"{3 * beat}s")
    rows: list[Row] = []
    g: dict[str, float] = {}
    tag = f"scale {nodes}:"
    niced = f"scale {nodes} (fleet at nice {FLEET_NICE}):"
    try:
        g["convergence"] = cluster.start_converged()
        rows.append(judged(f"{tag} hollow fleet built its nodes before joining (processes' start, in-memory "
                           f"engines, gRPC servers; not part of the convergence)", cluster.fleet_prepared, "s"))
        rows.append(judged(f"{tag} membership convergence from the registrations, {nodes} joins "
                           f"({nodes * preloaded} containers synced; to the last node's UpdatedAt in docker info)",
                           g["convergence"], "s", "<= 60"))
        rows.append(judged(f"{tag} membership convergence as first seen by a docker info poll every "
                           f"{max(0.5, nodes / 1000):g} s", cluster.convergence_polled, "s"))
        rows += convergence_cpu_rows(tag, cluster.convergence_cpu, cluster.convergence_polled)
        rows += rest_rows(tag, cluster, cluster.cpu_at_rest(REST_SETTLE, REST_WINDOW))
        synced = cluster.metrics()                 # the collector's pauses until here: the sync

        seconds, errors = asyncio.run(create_many(cluster.api, api_created, 16, start=False, prefix="api-c"))
        rows.append(judged(f"{tag} API create throughput onto hollow nodes (16 clients, {api_created} creates)",
                           (api_created - errors) / seconds, "ctr/s", ">= 500"))
        if errors:
            rows.append(judged(f"{tag} API create errors", errors, "count"))
        n_run = min(api_created, 500)
        seconds, errors = asyncio.run(create_many(cluster.api, n_run, 16, start=True, prefix="api-r"))
        rows.append(judged(f"{tag} API create+start throughput onto hollow nodes (16 clients, {n_run})",
                           (n_run - errors) / seconds, "ctr/s"))
        metrics = cluster.metrics()
        rows.append(judged(f"{tag} placement latency p50 in the manager (histogram bound)",
                           histogram_quantile(metrics, "swarmd_manager_scheduling_seconds", 0.5) * 1e3, "ms"))
        g["placement p99"] = histogram_quantile(metrics, "swarmd_manager_scheduling_seconds", 0.99) * 1e3
        rows.append(judged(f"{tag} placement latency p99 in the manager (histogram bound)",
                           g["placement p99"], "ms", "<= 2"))
        rows.append(judged(f"{tag} placement p99 in the manager, the deciding thread's CPU time (histogram bound)",
                           histogram_quantile(metrics, "swarmd_manager_scheduling_cpu_seconds", 0.99) * 1e3, "ms"))
        created = cluster.metrics()                # … and until here: the sync and the creates
        cluster.renice_fleets(FLEET_NICE)          # what follows asks nothing of the fleet
        tag = niced

        count = len(json.loads(urllib.request.urlopen(f"http://{cluster.api}/containers/json?all=1",
                                                      timeout=120).read()))
        ps = asyncio.run(timed_get(cluster.api, "/containers/json?all=1", 3 if quick else 7))
        g["ps -a"] = statistics.median(ps) * 1e3
        rows.append(judged(f"{tag} docker ps -a API median, {count} containers", g["ps -a"], "ms",
                           f"<= {ps_target_ms(count):g}"))
        info = asyncio.run(timed_get(cluster.api, "/info", 5 if quick else 11))
        g["info"] = statistics.median(info) * 1e3
        rows.append(judged(f"{tag} docker info API median, {nodes} nodes", g["info"], "ms", "<= 200"))
        if shutil.which("docker"):
            rows.append(judged(f"{tag} `docker ps -a` CLI wall time, {count} containers",
                               docker_cli(cluster.api, "ps", "-a") * 1e3, "ms"))
            rows.append(judged(f"{tag} `docker info` CLI wall time, {nodes} nodes",
                               docker_cli(cluster.api, "info") * 1e3, "ms"))
        rss = rss_bytes(cluster.manager.pid)
        g["RSS"] = rss / 2**20
        rows.append(judged(f"{tag} manager RSS, {count} containers", g["RSS"], "MiB", "<= 1536"))
        # the target is 1.5 GiB at 150,000 containers, 10 KiB each; below that the fixed cost (the
        # interpreter, its modules, the per-node objects) weighs on each container, informational
        rows.append(judged(f"{tag} manager RSS per container", rss / max(1, count) / 1024, "KiB",
                           "<= 10" if count >= FULL_CONTAINERS else ""))
        scraped = cluster.metrics()
        rows += gc_rows((synced, created, scraped), f"scale {nodes}:", tag)

        first, every, killed = seen_lost(cluster)
        lease = config.parse_duration(cluster.ttl)
        rows.append(judged(f"{tag} kill -9 of {killed} nodes -> first seen lost (heartbeat {cluster.heartbeat}, "
                           f"lease {cluster.ttl}, {DAEMONS} discovery daemons)", first, "s", f"<= {lease:g}"))
        rows.append(judged(f"{tag} kill -9 of {killed} nodes -> every one seen lost", every, "s", f"<= {lease:g}"))
    finally:
        cluster.stop()
    return rows, g


def convergence_cpu_rows(tag: str, cpu: dict[str, float], seconds: float) -> list[Row]:
    """Where the CPU of a convergence went: CPU seconds by process kind, and how many CPUs all of
    them kept busy on average (2 on this machine is the ceiling: above that, the convergence time
    is CPU-bound)."""
    rows = [judged(f"{tag} membership convergence: {kind} CPU", cpu.get(kind, 0.0), "CPU s")
            for kind in PROCESS_KINDS]
    rows.append(judged(f"{tag} membership convergence: CPUs kept busy on average (all processes)",
                       sum(cpu.values()) / max(seconds, 1e-9), "CPUs"))
    return rows


def rest_rows(tag: str, cluster: HollowCluster, shares: dict[str, float]) -> list[Row]:
    """The converged fleet left alone: CPU per process kind, % of one CPU (informational)."""
    counts = {kind: len(pids) for kind, pids in cluster.pids_by_kind().items()}
    beat = f"heartbeat {cluster.heartbeat}: {cluster.nodes / config.parse_duration(cluster.heartbeat):.0f} renewals/s"
    rows = [judged(f"{tag} fleet at rest: {kind} CPU ({counts[kind]} process"
                   f"{'es' if counts[kind] > 1 else ''}; {beat}), % of one CPU", shares.get(kind, 0.0), "% CPU")
            for kind in PROCESS_KINDS]
    rows.append(judged(f"{tag} fleet at rest: every process together, % of one CPU", sum(shares.values()), "% CPU"))
    return rows


def gc_rows(scrapes: tuple[str, str, str], tag: str, niced: str) -> list[Row]:
    """The manager's collector over the run, from its /metrics scraped at convergence, after the
    creates and at the end: the most CPU one pause took (the collector's own work, judged: on 2
    CPUs shared with 24 other processes a wall pause also holds the wait for a CPU), the longest
    wall pause, and the pauses over 50 ms of wall time by phase (the sync and the creates, the
    fleet at equal priority: it works for them; then `ps -a`, `info` and the rest, the fleet niced)."""
    synced, created, scraped = scrapes
    rows = [judged(f"{tag} longest GC pause in the manager, its CPU time (whole run)",
                   metric_sum(scraped, "swarmd_manager_gc_pause_cpu_max_seconds") * 1e3, "ms", "<= 50"),
            judged(f"{tag} longest GC pause in the manager, wall time (whole run)",
                   metric_sum(scraped, "swarmd_manager_gc_pause_max_seconds") * 1e3, "ms")]
    before_over, before_every = 0.0, (0.0, 0.0, 0.0)
    for phase, name, at in (("the sync", tag, synced), ("the creates", tag, created),
                            ("the listings that followed", niced, scraped)):
        over, every = pauses_over(at)
        ran = "/".join(f"{now - then:.0f}" for now, then in zip(every, before_every))
        rows.append(judged(f"{name} GC pauses over 50 ms of wall time in the manager during {phase}, by generation "
                           f"0/1/2 ({ran} collections)", over - before_over, "count"))
        before_over, before_every = over, every
    return rows


def pauses_over(scraped: str, bound: str = "0.05") -> tuple[float, tuple[float, float, float]]:
    """How many of the manager's collections paused longer than `bound` seconds (its
    `swarmd_manager_gc_pause_seconds` histogram), and how many of each generation ran."""
    every = tuple(metric_sum(scraped, "swarmd_manager_gc_pause_seconds_count", generation=g) for g in "012")
    short = sum(metric_sum(scraped, "swarmd_manager_gc_pause_seconds_bucket", generation=g, le=bound) for g in "012")
    return sum(every) - short, every


def growth_rows(table: dict[int, dict[str, float]]) -> list[Row]:
    """For each measure: its value at the largest size over its value at the smallest, beside the
    fleet's own growth (linear growth shows the same factor; better than linear, a smaller one)."""
    small, large = min(table), max(table)
    if small == large:
        return []
    rows = []
    for key in table[large]:
        before, after = table[small].get(key), table[large][key]
        if before:
            rows.append(judged(f"scale growth {small} -> {large} nodes (x{large / small:g}): {key}",
                               after / before, "x"))
    return rows


def print_growth(table: dict[int, dict[str, float]]) -> None:
    keys = list(next(iter(table.values())))
    print("\nscale growth table:", file=sys.stderr)
    print(f"{'nodes':>7}  " + "  ".join(f"{k:>14}" for k in keys), file=sys.stderr)
    for n, g in sorted(table.items()):
        print(f"{n:>7}  " + "  ".join(f"{g.get(k, float('nan')):>14.4g}" for k in keys), file=sys.stderr)


def yardstick_ms(rounds: int = 5) -> float:
    """This machine's speed at the time of the run: the median CPU time of a fixed pure-Python
    workload (dicts, strings, JSON). The shared machine's speed moves by half over a day; runs of
    the growth table compare only beside this row."""
    doc = {"Id": "a" * 64, "Labels": {f"k{i}": f"v{i}" for i in range(20)}, "State": {"Running": True}}
    times = []
    for _ in range(rounds):
        t = time.thread_time()
        for i in range(20_000):
            d = json.loads(json.dumps(doc))
            d["Labels"][str(i)] = d["Id"][:12]
        times.append(time.thread_time() - t)
    return statistics.median(times) * 1e3


def run(quick: bool = False, nodes: tuple[int, ...] | None = None) -> list[Row]:
    rows: list[Row] = [judged("scale: this machine's speed, a fixed Python workload's CPU time (lower is faster)",
                              yardstick_ms(), "ms")]
    table: dict[int, dict[str, float]] = {}
    chosen = sizes(quick, nodes)
    for n in chosen:
        print(f"# scale: {n} nodes …", file=sys.stderr, flush=True)
        size_rows, table[n] = measure_size(n, quick)
        rows += size_rows
        # each size takes minutes (the largest, tens): what was measured is kept if a later one fails
        print_table(size_rows)
        save(size_rows, RESULTS / f"partial-scale-{n}.json")
    if len(table) > 1:
        print_growth(table)
        rows += growth_rows(table)
    beat_nodes = int(os.environ.get("SWARMD_BENCH_HEARTBEAT_NODES", "0") or 0) or max(chosen)
    print(f"# scale: heartbeats, {beat_nodes} nodes …", file=sys.stderr, flush=True)
    rows += heartbeats.run(nodes=beat_nodes)                       # the agents' default, 2 s / 6 s
    fitting = max(2, -(-beat_nodes // 250))                         # 250 renewals/s: fits this machine
    if fitting > 2:
        rows += heartbeats.run(nodes=beat_nodes, heartbeat=f"{fitting}s", ttl=f"{3 * fitting}s")
    return rows
