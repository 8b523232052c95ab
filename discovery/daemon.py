"""`swarm discovery`: the discovery gRPC daemon (plus grpc.health.v1), in front of etcd."""
from __future__ import annotations

import asyncio
import signal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from discovery import metrics
from discovery.service import DiscoveryService
from swarm.v1 import discovery_pb2_grpc
from swarmd import etcd_tls, logs, reload
from swarmd.config import describe
from swarmd.membership.etcd_store import EtcdStore, StoreUnavailable
from swarmd.membership.urls import URLError, parse_endpoints
from swarmd.membership.watch import Backoff
from swarmd.metrics_endpoint import MetricsEndpoint
from swarmd.tls import TLSConfig, TLSConfigError, add_server_port

log = logs.get("discovery")

SERVICE_NAME = "swarm.v1.Discovery"
ETCD_CHECK_INTERVAL = 2.0
SERVER_OPTIONS = (
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
)


async def watch_etcd(store: EtcdStore, health: health_aio.HealthServicer) -> None:
    """Runs until cancelled: checks etcd, logs each change of reachability once, sets health."""
    backoff = Backoff()
    reachable: bool | None = None
    while True:
        try:
            await store.ping()
            ok, error = True, ""
        except StoreUnavailable as exc:
            ok, error = False, str(exc)
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


async def serve(listen: str, endpoints: list[tuple[str, int]], ttl: float, tls: TLSConfig | None = None,
                metrics_addr: str | None = None, env_file: str | None = None,
                etcd_tls_config: etcd_tls.EtcdTLS | None = None) -> int:
    store = metrics.MeteredEtcdStore(endpoints, tls=etcd_tls_config)
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=[metrics.interceptor()])
    discovery_pb2_grpc.add_DiscoveryServicer_to_server(DiscoveryService(store, default_ttl=ttl), server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    try:
        port = add_server_port(server, listen, tls)
    except RuntimeError as exc:
        port, error = 0, str(exc)
    else:
        error = ""
    if not port:
        log.error("cannot listen", listen=listen, error=error or "address unavailable")
        await store.close()
        return 1
    await server.start()
    metrics_endpoint = MetricsEndpoint(metrics.REGISTRY)
    if not await metrics_endpoint.start_if_asked(metrics_addr):
        await server.stop(0)
        await store.close()
        return 1
    log.info("discovery serving", listen=listen, etcd=",".join(f"{h}:{p}" for h, p in endpoints),
             ttl=f"{ttl}s", tls="mutual" if tls and tls.verify else ("on" if tls else "off"),
             etcd_tls=etcd_tls_config.describe() if etcd_tls_config else "off")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reload.install(loop, env_file)
    try:
        async with asyncio.TaskGroup() as tg:
            monitor = tg.create_task(watch_etcd(store, health), name="etcd-health")
            sampler = tg.create_task(metrics.sample_nodes(store, ETCD_CHECK_INTERVAL), name="metrics-sampler")
            await stop.wait()
            log.info("discovery shutting down")
            monitor.cancel()
            sampler.cancel()
    finally:
        reload.uninstall(loop)
        await metrics_endpoint.close()
        await health.enter_graceful_shutdown()
        await server.stop(grace=2)
        await store.close()
    return 0


def run(args) -> int:
    try:
        endpoints = parse_endpoints(args.etcd)
    except URLError as exc:
        log.error("invalid --etcd", error=str(exc))
        return 2
    try:
        store_tls = etcd_tls.for_endpoints(args.etcd, etcd_tls.from_args(args))
    except etcd_tls.EtcdTLSError as exc:
        log.error("invalid etcd TLS configuration", error=str(exc))
        return 2
    try:
        tls = TLSConfig.from_args(args)
        if tls is not None:
            tls.grpc_server_credentials()
    except TLSConfigError as exc:
        log.error("invalid TLS configuration", error=str(exc))
        return 2
    log.info("configuration", **describe(args))
    return asyncio.run(serve(args.listen, endpoints, args.ttl, tls, metrics_addr=getattr(args, "metrics_addr", None),
                             env_file=getattr(args, "env_file", None), etcd_tls_config=store_tls))
