"""A hollow fleet under real daemons: etcd, one or more discovery daemons, a manager, hollow agents.

Shared by the `scale` and `ui` suites (and the heartbeat rows of `scale`). Every piece is a real
process under one temp dir; the nodes are `python -m swarmd.agent.hollow` processes of
NODES_PER_PROCESS nodes each, given every discovery daemon's address (each node starts at the
daemon its ID hashes to, see swarmd.common.membership.spread).
"""
from __future__ import annotations

import contextlib
import os
import signal
import shutil
import sys
import tempfile
import time
import types
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from swarmd.localcluster.etcd import EtcdServer
from swarmd.localcluster.processes import Daemon, DaemonExited, free_port, wait_until
from swarmd.localcluster.swarm import SwarmCluster, swarm_argv

# 500 hollow nodes to a process: 5,000 nodes converged with the fleet using 47-53 CPU-s, against 57-60
# at 250 (paired runs, docs/benchmarks.md "Eighth pass"); each process also runs an event loop and
# gRPC's poller thread of its own, which fewer processes share among more nodes
NODES_PER_PROCESS = 500
# hollow nodes heartbeat every 5 s under a 15 s lease in the growth table: the discovery tier's load
# stays at 200 renewals/s per 1,000 nodes (the 2 s / 6 s agent default is measured on its own)
HEARTBEAT, TTL = "5s", "15s"
TICKS = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (from /proc/<pid>/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS      # utime, stime: fields 14 and 15 of stat


PROCESS_KINDS = ("manager", "discovery", "etcd", "hollow agents")


def cpu_shares(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """CPU used by each process kind between two readings of cpu_by_kind, in % of one CPU."""
    return {kind: (after[kind] - before.get(kind, 0.0)) / seconds * 100 for kind in after}


def scrape(addr: str) -> str:
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
        return r.read().decode()


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{", 1)[0] != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


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


def node_statuses(info: dict) -> dict[str, str]:
    """Node name -> Status from a manager's `docker info` SystemStatus."""
    out: dict[str, str] = {}
    name = ""
    for key, value in info.get("SystemStatus") or []:
        if key.startswith(" ") and not key.startswith("  "):
            name = key.strip()
        elif key == "  └ Status" and name:
            out[name] = value
    return out


def renice(pid: int, nice: int) -> None:
    """Sets the niceness of every thread of `pid` and of its autogroup (Linux with
    CONFIG_SCHED_AUTOGROUP): each daemon starts its own session, so its own scheduling group, and
    a thread's niceness only weighs against the threads of its group; across groups, each
    group's own niceness does."""
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            os.setpriority(os.PRIO_PROCESS, int(task), nice)
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def last_node_settled(info: dict) -> float:
    """When the last node of a converged `docker info` last changed in the manager's view (Unix
    seconds, same host clock): its latest `└ UpdatedAt`, which the manager writes to the second,
    plus that second (an upper bound). A poll every few seconds sees the convergence up to one
    interval late; this reads when it happened."""
    latest = max(datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
                 for k, v in info["SystemStatus"] if k == "  └ UpdatedAt")
    return latest.timestamp() + 1.0


class HollowCluster:
    """etcd + discovery daemon(s) + one manager + hollow fleets, all real processes under one temp dir."""

    def __init__(self, nodes: int, containers_per_node: int, manager_args: tuple[str, ...] = (),
                 daemons: int = 1, heartbeat: str = HEARTBEAT, ttl: str = TTL,
                 nodes_per_process: int = NODES_PER_PROCESS):
        self.nodes = nodes
        self.manager_args = manager_args     # e.g. `--ui-addr` for the web view's suite
        self.containers_per_node = containers_per_node
        self.heartbeat, self.ttl = heartbeat, ttl
        self.nodes_per_process = nodes_per_process
        self.root = Path(tempfile.mkdtemp(prefix="swarmd-bench-scale-"))
        self.etcd = EtcdServer(self.root / "etcd")
        self.swarm = SwarmCluster(types.SimpleNamespace(etcd=self.etcd, root=self.root, engines=[]),
                                  root=self.root / "swarm", heartbeat=heartbeat, ttl=ttl)
        self.metrics_addr = f"127.0.0.1:{free_port()}"
        self.discovery_addrs = [f"127.0.0.1:{free_port()}" for _ in range(daemons)]
        self.discovery_metrics = [f"127.0.0.1:{free_port()}" for _ in range(daemons)]
        self.discoveries: list[Daemon] = []
        self.fleets: list[Daemon] = []
        self.convergence_cpu: dict[str, float] = {}   # CPU seconds by process kind, registrations -> converged
        self.convergence_polled = 0.0                 # seconds until a poll saw it converged (CPU measured over them)
        self.fleet_prepared = 0.0                     # seconds the held fleet took to build its nodes
        self._ready_files: list[Path] = []            # one per held fleet process

    @property
    def manager(self) -> Daemon:
        return self.swarm.managers[0]

    @property
    def api(self) -> str:
        return self.swarm.manager_addrs[0]

    def start_membership(self) -> None:
        """etcd, the discovery daemons (each serving /metrics) and a cluster token."""
        self.etcd.start()
        self.swarm.root.mkdir(parents=True, exist_ok=True)
        for i, (addr, metrics) in enumerate(zip(self.discovery_addrs, self.discovery_metrics)):
            self.discoveries.append(Daemon(
                f"discovery{i}", swarm_argv("discovery", "--listen", addr, "--etcd", self.etcd.url,
                                            "--metrics-addr", metrics),
                self.root / f"discovery{i}.log").start())
        self.swarm.discovery = self.discoveries[0]
        self.swarm.discovery_addr = ",".join(self.discovery_addrs)
        self.swarm.token = wait_until(self._create_token, 20, "swarm create to answer")

    def _create_token(self) -> str:
        import subprocess
        for d in self.discoveries:
            if not d.running():
                raise DaemonExited(f"{d.name} exited:\n{d.log_tail()}")
        out = subprocess.run(swarm_argv("create", "--discovery-addr", self.discovery_addrs[0]),
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else ""

    def start(self) -> None:
        self.start_membership()
        self.swarm.start_manager("--metrics-addr", self.metrics_addr, *self.manager_args)
        wait_until(lambda: self.swarm.info() is not None, 20, "the manager to answer")

    def start_fleets(self, containers: int | None = None, held: bool = False) -> None:
        """Starts the hollow processes; `held`: each builds its nodes, writes its ready file and
        waits for `release_fleets` before registering them."""
        per_node = self.containers_per_node if containers is None else containers
        for first in range(0, self.nodes, self.nodes_per_process):
            count = min(self.nodes_per_process, self.nodes - first)
            fleet = Daemon(
                f"hollow{first}",
                [sys.executable, "-m", "swarmd.agent.hollow", "--count", str(count), "--first-index", str(first),
                 "--containers", str(per_node), "--heartbeat", self.heartbeat, "--ttl", self.ttl,
                 "--log-level", "warning", "--discovery-addr", self.swarm.discovery_addr,
                 *(["--ready-file", str(self._held(first))] if held else []), self.swarm.discovery_url],
                self.root / f"hollow{first}.log").start()
            self.fleets.append(fleet)

    def _held(self, first: int) -> Path:
        """The ready file of the held fleet process whose first node is `first`."""
        self._ready_files.append(self.root / f"hollow{first}.ready")
        return self._ready_files[-1]

    def fleets_ready(self, timeout: float = 300) -> float:
        """Waits until every held fleet process serves its nodes; the seconds it took."""
        t0 = time.perf_counter()
        wait_until(lambda: self.check_running() or all(f.exists() for f in self._ready_files), timeout,
                   "the hollow processes to build their nodes", interval=0.2)
        return time.perf_counter() - t0

    def renice_fleets(self, nice: int) -> None:
        """Every hollow process (all its threads, its scheduling group) at niceness `nice`."""
        for f in self.fleets:
            renice(f.pid, nice)

    def release_fleets(self) -> None:
        """Lets every held fleet process register its nodes (SIGUSR1, to each by pid)."""
        for f in self.fleets:
            os.kill(f.pid, signal.SIGUSR1)

    def start_converged(self, timeout: float = 900) -> float:
        """Manager, then the fleets; seconds from the nodes' registrations until every node is synced
        (the CPU each process kind used meanwhile: `convergence_cpu`). The hollow processes build
        their nodes first (Python's start, the in-memory engines, the gRPC servers: what the machines
        they stand for would have done before joining; `fleet_prepared` seconds), held until all of
        them serve."""
        self.start()
        self.start_fleets(held=True)
        self.fleet_prepared = self.fleets_ready()
        before = self.cpu_by_kind()
        t0, released_at = time.perf_counter(), time.time()
        self.release_fleets()
        # each poll is a `docker info` over every node: polled every 0.5 s it took a fifth of the
        # manager's CPU at 1,000 nodes, slowing the very convergence it measures
        info = wait_until(self.converged, timeout, f"{self.nodes} hollow nodes with their containers",
                          interval=max(0.5, self.nodes / 1000))
        self.convergence_polled = time.perf_counter() - t0
        after = self.cpu_by_kind()
        self.convergence_cpu = {kind: after[kind] - before.get(kind, 0.0) for kind in after}
        return min(self.convergence_polled, last_node_settled(info) - released_at)

    def pids_by_kind(self) -> dict[str, list[int]]:
        """The running processes of the fleet, by kind (PROCESS_KINDS)."""
        return {"manager": [m.pid for m in self.swarm.managers], "discovery": [d.pid for d in self.discoveries],
                "etcd": [self.etcd.daemon.pid], "hollow agents": [f.pid for f in self.fleets]}

    def cpu_by_kind(self) -> dict[str, float]:
        """CPU seconds each process kind has used so far (every process of the kind together)."""
        return {kind: sum(cpu_seconds(pid) for pid in pids) for kind, pids in self.pids_by_kind().items()}

    def cpu_at_rest(self, settle: float, window: float) -> dict[str, float]:
        """% of one CPU each process kind uses over `window` seconds, `settle` seconds from now:
        a converged fleet left alone, which heartbeats and nothing else."""
        time.sleep(settle)
        before, t0 = self.cpu_by_kind(), time.perf_counter()
        time.sleep(window)
        after = self.cpu_by_kind()
        shares = cpu_shares(before, after, time.perf_counter() - t0)
        self.check_running()
        return shares

    def check_running(self) -> None:
        for d in [*self.swarm.managers, *self.discoveries, *self.fleets]:
            if not d.running():
                raise DaemonExited(f"{d.name} exited:\n{d.log_tail()}")

    def converged(self) -> dict | None:
        self.check_running()
        info = self.swarm.info()
        healthy = sum(1 for k, v in info["SystemStatus"] if k == "  └ Status" and v == "Healthy")
        if healthy == self.nodes and info["Containers"] >= self.nodes * self.containers_per_node:
            return info
        return None

    def metrics(self) -> str:
        return scrape(self.metrics_addr)

    def renewals(self) -> list[float]:
        """Heartbeats each discovery daemon has answered OK so far."""
        return [metric_sum(scrape(m), "swarmd_discovery_lease_renewals_total", code="OK")
                for m in self.discovery_metrics]

    def registrations(self) -> list[float]:
        """Registrations each discovery daemon has answered OK so far (a lost lease registers again)."""
        return [metric_sum(scrape(m), "swarmd_discovery_registrations_total", code="OK")
                for m in self.discovery_metrics]

    def stop(self) -> None:
        for d in self.fleets:
            d.stop(timeout=30)
        self.swarm.stop()
        for d in self.discoveries:
            d.stop()
        self.etcd.stop()
        shutil.rmtree(self.root, ignore_errors=True)
