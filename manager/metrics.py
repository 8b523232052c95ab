"""The manager's Prometheus metrics: cluster state on scrape, counters and histograms as it works."""
from __future__ import annotations

import asyncio
import gc
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from swarmd.common import logs

log = logs.get("manager.metrics")

# a collection pausing longer than this is logged: which generation, its CPU, what it freed (a
# wall pause far above its CPU time is the host's CPUs busy elsewhere, not the collector's work)
LONG_GC_PAUSE = 0.05

REGISTRY = CollectorRegistry(auto_describe=True)

API_REQUESTS = Counter("swarmd_manager_api_requests_total", "Docker API requests served",
                       ["method", "route", "status"], registry=REGISTRY)
API_LATENCY = Histogram("swarmd_manager_api_request_seconds", "Docker API request latency (to the end of the "
                        "response; streams count their whole life)", ["method", "route"], registry=REGISTRY,
                        buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
SCHEDULING = Counter("swarmd_manager_scheduling_decisions_total", "Placement decisions", ["result"],
                     registry=REGISTRY)
# a decision's buckets resolve the 2 ms placement target (1.5, 2, 3 ms)
DECISION_BUCKETS = (.00005, .0001, .00025, .0005, .00075, .001, .0015, .002, .003, .004, .005, .0075, .01, .025, .1)
SCHEDULING_LATENCY = Histogram("swarmd_manager_scheduling_seconds", "Time to choose a node for a container",
                               registry=REGISTRY, buckets=DECISION_BUCKETS)
# the same decisions in the deciding thread's CPU time: the decision's own work, without the time
# the process waited for a CPU meanwhile (on a host the manager shares, the wall time holds both)
SCHEDULING_CPU = Histogram("swarmd_manager_scheduling_cpu_seconds",
                           "CPU time to choose a node for a container (the deciding thread's)", registry=REGISTRY,
                           buckets=DECISION_BUCKETS)
AGENT_RPC_ERRORS = Counter("swarmd_manager_agent_rpc_errors_total", "Failed calls to agents", ["node", "status"],
                           registry=REGISTRY)
LEADER = Gauge("swarmd_manager_leader", "1 when this manager is the primary", registry=REGISTRY)
# every request and placement waits while the collector runs: the longest pause is what a user feels
GC_PAUSES = Histogram("swarmd_manager_gc_pause_seconds", "Garbage collector pauses, by generation",
                      ["generation"], registry=REGISTRY,
                      buckets=(.001, .002, .005, .01, .02, .03, .05, .075, .1, .2, .5, 1, 2))
GC_PAUSE_MAX = Gauge("swarmd_manager_gc_pause_max_seconds", "The longest garbage collector pause since start",
                     registry=REGISTRY)
# the same pauses in the collecting thread's CPU time: the collector's own work, without the time the
# process waited for a CPU meanwhile (on a host the manager shares, the wall pause holds both)
GC_PAUSE_CPU_MAX = Gauge("swarmd_manager_gc_pause_cpu_max_seconds",
                         "The most CPU time one garbage collector pause has taken since start", registry=REGISTRY)


_request_children: dict[tuple[str, str, int], tuple] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    children = _request_children.get((method, route, status))
    if children is None:     # label lookups cost more than the observation: keep the children
        children = (API_REQUESTS.labels(method, route, str(status)), API_LATENCY.labels(method, route))
        if len(_request_children) < 10_000:
            _request_children[(method, route, status)] = children
    children[0].inc()
    children[1].observe(seconds)


class ClusterCollector:
    """Nodes by state and containers by node and state, read from the live view at scrape time."""

    def __init__(self, cluster):
        self.cluster = cluster

    def describe(self):
        return []

    def collect(self):
        nodes = GaugeMetricFamily("swarmd_manager_nodes", "Nodes by state", labels=["state"])
        counts = {"healthy": 0, "pending": 0, "unhealthy": 0}
        containers = GaugeMetricFamily("swarmd_manager_containers", "Containers by node and state",
                                       labels=["node", "state"])
        for view in list(self.cluster.nodes.values()):
            counts[view.status.lower()] = counts.get(view.status.lower(), 0) + 1
            by_state: dict[str, int] = {}
            for rec in list(view.containers.values()):
                st = rec.state.get("Status") or "unknown"
                by_state[st] = by_state.get(st, 0) + 1
            for st, n in sorted(by_state.items()):
                containers.add_metric([view.name, st], n)
        for state, n in counts.items():
            nodes.add_metric([state], n)
        yield nodes
        yield containers


def watch_cluster(cluster) -> None:
    REGISTRY.register(ClusterCollector(cluster))


class GcPauses:
    """Times every collection through `gc.callbacks` into GC_PAUSES and GC_PAUSE_MAX."""

    def __init__(self):
        self._started = 0.0
        self._started_cpu = 0.0
        self.longest_cpu = 0.0
        self._children = [GC_PAUSES.labels(str(g)) for g in range(3)]   # no label lookup inside a pause
        self.longest = 0.0

    def install(self) -> None:
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            self._started_cpu = time.thread_time()
            return
        pause = time.perf_counter() - self._started
        cpu = time.thread_time() - self._started_cpu
        generation = min(2, int(info.get("generation", 2)))
        self._children[generation].observe(pause)
        if pause > self.longest:
            self.longest = pause
            GC_PAUSE_MAX.set(pause)
        if cpu > self.longest_cpu:
            self.longest_cpu = cpu
            GC_PAUSE_CPU_MAX.set(cpu)
        if pause > LONG_GC_PAUSE:
            # logged from the event loop, not here: a collection can run inside any allocation,
            # and logging inside one (handlers, locks, I/O) broke CPython 3.11's AST constructor
            # when the collection ran within `ast.parse` ("recursion depth mismatch")
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:          # no loop in this thread: the metrics alone keep the pause
                return
            loop.call_soon_threadsafe(_log_long_pause, generation, pause, cpu, info.get("collected", 0),
                                      info.get("uncollectable", 0))


def _log_long_pause(generation: int, pause: float, cpu: float, collected: int, uncollectable: int) -> None:
    log.warning("long garbage collection pause", generation=generation, wall_ms=round(pause * 1e3, 1),
                cpu_ms=round(cpu * 1e3, 1), collected=collected, uncollectable=uncollectable)


_gc_pauses: GcPauses | None = None


def watch_gc() -> GcPauses:
    """Starts timing the collector's pauses; once per process, however many managers it runs."""
    global _gc_pauses
    if _gc_pauses is None:
        _gc_pauses = GcPauses()
        _gc_pauses.install()
    return _gc_pauses
