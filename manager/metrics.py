"""The manager's Prometheus metrics: cluster state on scrape, counters and histograms as it works."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

REGISTRY = CollectorRegistry(auto_describe=True)

API_REQUESTS = Counter("swarmd_manager_api_requests_total", "Docker API requests served",
                       ["method", "route", "status"], registry=REGISTRY)
API_LATENCY = Histogram("swarmd_manager_api_request_seconds", "Docker API request latency (to the end of the "
                        "response; streams count their whole life)", ["method", "route"], registry=REGISTRY,
                        buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
SCHEDULING = Counter("swarmd_manager_scheduling_decisions_total", "Placement decisions", ["result"],
                     registry=REGISTRY)
SCHEDULING_LATENCY = Histogram("swarmd_manager_scheduling_seconds", "Time to choose a node for a container",
                               registry=REGISTRY,
                               buckets=(.00005, .0001, .00025, .0005, .00075, .001, .0015, .002, .003, .004,
                                        .005, .0075, .01, .025, .1))
AGENT_RPC_ERRORS = Counter("swarmd_manager_agent_rpc_errors_total", "Failed calls to agents", ["node", "status"],
                           registry=REGISTRY)
LEADER = Gauge("swarmd_manager_leader", "1 when this manager is the primary", registry=REGISTRY)


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
