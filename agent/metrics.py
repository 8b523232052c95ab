"""The agent's Prometheus metrics: engine reachability, RPC latency, registration heartbeats."""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from swarmd.common.grpc_metrics import RpcMetrics

REGISTRY = CollectorRegistry(auto_describe=True)

ENGINE_UP = Gauge("swarmd_agent_engine_up", "1 while the local engine answers its ping", registry=REGISTRY)
RPC_LATENCY = Histogram("swarmd_agent_rpc_seconds", "Agent gRPC calls served, by method and status code "
                        "(streams count their whole life)", ["method", "code"], registry=REGISTRY,
                        buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
HEARTBEATS = Counter("swarmd_agent_heartbeats_total", "Registrations and heartbeats sent to discovery",
                     ["kind", "result"], registry=REGISTRY)
HEARTBEAT_LATENCY = Histogram("swarmd_agent_heartbeat_seconds", "Time discovery took to renew the lease",
                              registry=REGISTRY,
                              buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))


def interceptor() -> RpcMetrics:
    return RpcMetrics(RPC_LATENCY)


class RenewalClock:
    """When the lease was last renewed; scraped as the heartbeat lag."""

    def __init__(self) -> None:
        self.last: float | None = None     # time.monotonic() of the last successful renewal

    def renewed(self) -> None:
        self.last = time.monotonic()

    def describe(self):
        return []

    def collect(self):
        lag = GaugeMetricFamily("swarmd_agent_heartbeat_lag_seconds",
                                "Seconds since the lease was last renewed (absent before the first "
                                "registration); above the TTL the node has left the cluster")
        if self.last is not None:
            lag.add_metric([], time.monotonic() - self.last)
        yield lag


CLOCK = RenewalClock()
REGISTRY.register(CLOCK)


def watch_registrar(registrar) -> None:
    """Times the registrar's register and heartbeat calls (lease-based schemes only)."""
    from swarmd.common.membership.registrar import LeaseRegistrar

    if not isinstance(registrar, LeaseRegistrar):
        return
    register, heartbeat = registrar._register, registrar._heartbeat

    async def timed_register(info, ttl):
        try:
            result = await register(info, ttl)
        except Exception:
            HEARTBEATS.labels("register", "error").inc()
            raise
        HEARTBEATS.labels("register", "ok").inc()
        CLOCK.renewed()
        return result

    async def timed_heartbeat():
        started = time.perf_counter()
        try:
            result = await heartbeat()
        except Exception:
            HEARTBEATS.labels("heartbeat", "error").inc()
            raise
        HEARTBEAT_LATENCY.observe(time.perf_counter() - started)
        HEARTBEATS.labels("heartbeat", "ok").inc()
        CLOCK.renewed()
        return result

    registrar._register = timed_register
    registrar._heartbeat = timed_heartbeat
