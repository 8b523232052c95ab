"""`swarm discovery`: the discovery gRPC daemon (plus grpc.health.v1), in front of etcd.

The daemon takes a validated `DiscoveryConfig` (discovery.config); flags never reach it.
"""
from __future__ import annotations

import asyncio
import signal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from swarmd.discovery import metrics
from swarmd.discovery.ca import Authority
from swarmd.discovery.config import DiscoveryConfig
from swarmd.discovery.service import DiscoveryService
from swarmd.proto.swarm.v1 import discovery_pb2_grpc
from swarmd.common import logs, reload
from swarmd.common.config import describe
from swarmd.common.membership.etcd_store import EtcdStore, StoreUnavailable
from swarmd.common.membership.watch import Backoff
from swarmd.common.metrics_endpoint import MetricsEndpoint
from swarmd.common.tls import add_server_port

log = logs.get("discovery")

SERVICE_NAME = "swarm.v1.Discovery"
ETCD_CHECK_INTERVAL = 2.0
SERVER_OPTIONS = (
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
)


async def check_etcd(store: EtcdStore, pending: asyncio.Task | None) -> tuple[asyncio.Task, str]:
    """One check of etcd: ("", the check) when it answered, else why not. A check that has not
    ended after the store's own deadline and a second counts as unreachable: the health is never
    held by a read that does not end (one was seen waiting past its deadline while etcd was down,
    and the daemon kept saying SERVING). Such a check is left to end; it is `pending`, and the
    next check waits on it rather than starting another."""
    check = pending if pending is not None and not pending.done() else asyncio.ensure_future(store.ping())
    done, _ = await asyncio.wait({check}, timeout=store.timeout + 1.0)
    if not done:
        return check, f"etcd at {store.endpoint} did not answer a check within {store.timeout + 1.0:g}s"
    if check.cancelled():
        return check, "the etcd check was cut off"
    exc = check.exception()
    if exc is None:
        return check, ""
    if not isinstance(exc, StoreUnavailable):    # never let the health of the daemon stop being watched
        log.error("etcd check failed", exc_info=exc)
        return check, f"{type(exc).__name__}: {exc}"
    return check, str(exc)


async def watch_etcd(store: EtcdStore, health: health_aio.HealthServicer) -> None:
    """Runs until cancelled: checks etcd, logs each change of reachability once, sets health."""
    backoff = Backoff()
    reachable: bool | None = None
    check: asyncio.Task | None = None
    try:
        while True:
            check, error = await check_etcd(store, check)
            ok = not error
            if ok != reachable:
                status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
                for service in ("", SERVICE_NAME):
                    await health.set(service, status)
                if ok:
                    log.info("etcd reachable", endpoint=store.endpoint)
                else:
                    log.warning("etcd unreachable; retrying with backoff", error=error)
                reachable = ok
            if ok:
                backoff.reset()
                await asyncio.sleep(ETCD_CHECK_INTERVAL)
            else:
                await asyncio.sleep(backoff.next())
    finally:
        if check is not None and not check.done():
            check.cancel()


async def serve(cfg: DiscoveryConfig) -> int:
    store = metrics.MeteredEtcdStore(list(cfg.endpoints), tls=cfg.etcd_tls)
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=[metrics.interceptor()])
    authority = Authority.from_dir(cfg.ca_dir, cfg.cert_expiry, cfg.listen) if cfg.ca_dir else None
    service = DiscoveryService(store, default_ttl=cfg.ttl, authority=authority)
    metrics.RENEWALS_IN_FLIGHT.set_function(lambda: store.renewals_in_flight)
    discovery_pb2_grpc.add_DiscoveryServicer_to_server(service, server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    try:
        if authority is not None:
            port = server.add_secure_port(cfg.listen, authority.server_credentials())
        else:
            port = add_server_port(server, cfg.listen, cfg.tls)
    except RuntimeError as exc:
        port, error = 0, str(exc)
    else:
        error = ""
    if not port:
        log.error("cannot listen", listen=cfg.listen, error=error or "address unavailable")
        await store.close()
        return 1
    await server.start()
    metrics_endpoint = MetricsEndpoint(metrics.REGISTRY)
    if not await metrics_endpoint.start_if_asked(cfg.metrics_addr):
        await server.stop(0)
        await store.close()
        return 1
    tls = cfg.tls
    log.info("discovery serving", listen=cfg.listen, etcd=",".join(f"{h}:{p}" for h, p in cfg.endpoints),
             ttl=f"{cfg.ttl}s",
             tls=("certificate authority" if authority else "mutual" if tls and tls.verify else ("on" if tls else "off")),
             ca=f"sha256:{authority.digest[:12]}…" if authority else "none",
             ca_phase=authority.phase if authority else "none",
             etcd_tls=cfg.etcd_tls.describe() if cfg.etcd_tls else "off")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reload.install(loop, cfg.env_file)
    try:
        async with asyncio.TaskGroup() as tg:
            monitor = tg.create_task(watch_etcd(store, health), name="etcd-health")
            sampler = tg.create_task(metrics.sample_nodes(store, ETCD_CHECK_INTERVAL), name="metrics-sampler")
            rotating = tg.create_task(service.rotation.run(), name="ca-rotation") if service.rotation else None
            await stop.wait()
            log.info("discovery shutting down")
            monitor.cancel()
            sampler.cancel()
            if rotating is not None:
                rotating.cancel()
    finally:
        reload.uninstall(loop)
        await metrics_endpoint.close()
        await health.enter_graceful_shutdown()
        await server.stop(grace=2)
        await store.close()
    return 0


def run(cfg: DiscoveryConfig) -> int:
    log.info("configuration", **describe(cfg))
    return asyncio.run(serve(cfg))
