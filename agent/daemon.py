"""`swarm join`: serve the Agent service for one engine and keep the node registered.

Start-up: read (or create) the node id, serve gRPC (Agent + health), wait for the engine to
answer, then keep the node registered with the discovery service until told to stop. Health is
SERVING only while the engine answers its ping. SIGTERM/SIGINT: stop heartbeating, stop the
server with a short grace, exit 0 — without deregistering: a stopped agent (a restart, an upgrade)
stays a member until its lease runs out, and one back within its lease resumes with nothing
moved. Leaving for good is `swarm leave` (swarmd.cli.leave), after the agent is stopped.
SIGHUP re-reads the log level (swarmd.common.reload).
The daemon takes a validated `AgentConfig` (agent.config); flags never reach it.
"""
from __future__ import annotations

import asyncio
import dataclasses
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from swarmd.agent import metrics
from swarmd.agent.config import AgentConfig
from swarmd.agent.engine import EngineError
from swarmd.agent.local_engine import LocalEngine
from swarmd.agent.node_info import NodeInfoSource
from swarmd.agent.service import AgentService
from swarmd.proto.swarm.v1 import agent_pb2, agent_pb2_grpc
from swarmd.common import logs, reload
from swarmd.common.config import describe
from swarmd.common.metrics_endpoint import MetricsEndpoint
from swarmd.common.pki import ROLE_MANAGER, ROLE_WORKER
from swarmd.common.tls import add_server_port, server_interceptors

log = logs.get("agent")

SERVICE_NAME = agent_pb2.DESCRIPTOR.services_by_name["Agent"].full_name
SHUTDOWN_GRACE = 2.0     # seconds in-flight RPCs get when the agent stops
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", 256 << 20),
    ("grpc.max_send_message_length", 256 << 20),
    # the manager pings every minute on long, often idle streams (Events; swarmd.manager.agent_channel,
    # and older managers every 10 s): allow that, and never
    # answer a ping that comes early (gRPC's own probes add some) with a too_many_pings GOAWAY,
    # which would cut every stream and show the node as unreachable for a moment
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
]


async def watch_engine(engine: LocalEngine, health_servicer, interval: float, engine_up: asyncio.Event) -> None:
    """Pings the engine every `interval`; health follows (SERVING only while it answers)."""
    up: bool | None = None
    while True:
        problem = await engine.check()
        ok = not problem
        if ok != up:
            up = ok
            metrics.ENGINE_UP.set(1 if ok else 0)
            status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
            for service in ("", SERVICE_NAME):
                await health_servicer.set(service, status)
            if ok:
                engine_up.set()
                log.info("engine reachable", engine=engine.url)
            else:
                engine_up.clear()
                log.warning("engine unreachable", engine=engine.url, error=problem)
        await asyncio.sleep(interval)


async def keep_registered(registrar, source: NodeInfoSource, cfg: AgentConfig, engine_up: asyncio.Event,
                          membership_error: type[Exception]) -> int:
    """Waits for the engine's first answer, then heartbeats until cancelled; returns 1 on failure."""
    try:
        while True:
            await engine_up.wait()
            try:
                first = await source.read()
                break
            except EngineError as exc:
                log.warning("engine info unreadable; retrying", error=exc.message)
                await asyncio.sleep(cfg.engine_check)
        log.info("registering", node=first.node.name, id=first.node.id, addr=first.node.addr)
        await registrar.keep_alive(source.for_registration, cfg.heartbeat, cfg.ttl)
        log.error("registration ended unexpectedly")
    except membership_error as exc:
        log.error("registration refused", error=str(exc))
    except Exception as exc:  # any other failure also ends the agent: it cannot stay a member
        log.error("registration failed", error=f"{type(exc).__name__}: {exc}")
    return 1


async def start_server(cfg: AgentConfig, engine: LocalEngine, source: NodeInfoSource):
    """The gRPC server (Agent + health, NOT_SERVING until the engine answers) and its health
    servicer; None for the server when it cannot listen (said in the log)."""
    server = grpc.aio.server(options=SERVER_OPTIONS,
                             interceptors=[*server_interceptors(cfg.cluster.tls), metrics.interceptor()])
    agent_pb2_grpc.add_AgentServicer_to_server(AgentService(engine, source), server)
    health_servicer = health.aio.HealthServicer()
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        add_server_port(server, cfg.listen, cfg.cluster.tls)
    except RuntimeError as exc:
        log.error("cannot listen", listen=cfg.listen, error=str(exc))
        return None, health_servicer
    await server.start()
    return server, health_servicer


async def bootstrapped(cfg: AgentConfig) -> AgentConfig | None:
    """The config with the node's certificate in bootstrap mode (see swarmd.common.cluster_access);
    None when it cannot be had (said in the log). The agent serves managers of its cluster only."""
    from swarmd.agent.config import host_of
    from swarmd.common.node_certs import BootstrapError
    try:
        cluster = await cfg.cluster.ready(ROLE_WORKER, cfg.node_id, [host_of(cfg.advertise)], callers=(ROLE_MANAGER,))
    except BootstrapError as exc:
        log.error("cannot join", error=str(exc))
        return None
    return dataclasses.replace(cfg, cluster=cluster)


async def run(cfg: AgentConfig) -> int:
    log.info("starting agent", **describe(cfg))
    from swarmd.common.membership import MembershipError
    from swarmd.common.node_certs import keep_renewed
    if (cfg := await bootstrapped(cfg)) is None:
        return 1

    # imported here: the docker SDK is a quarter of a second of CPU to import, paid for nothing by
    # each hollow-node process (swarmd.agent.hollow takes this module's server options)
    from swarmd.agent.sdk_engine import SdkEngine
    engine = SdkEngine(cfg.engine_url)
    try:
        registrar = cfg.cluster.open_registrar()
    except MembershipError as exc:
        log.error("invalid configuration", error=str(exc))
        return 2
    source = NodeInfoSource(engine, cfg.settings)
    metrics.watch_registrar(registrar)
    server, health_servicer = await start_server(cfg, engine, source)
    if server is None:
        await registrar.close()
        return 1
    metrics_endpoint = MetricsEndpoint(metrics.REGISTRY)
    if not await metrics_endpoint.start_if_asked(cfg.metrics_addr):
        await server.stop(0)
        await registrar.close()
        return 1
    log.info("agent serving", listen=cfg.listen, advertise=cfg.advertise, engine=engine.url, node_id=cfg.node_id)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reload.install(loop, cfg.env_file)
    engine_up = asyncio.Event()
    code = 0
    try:
        async with asyncio.TaskGroup() as tg:
            watcher = tg.create_task(watch_engine(engine, health_servicer, cfg.engine_check, engine_up),
                                     name="engine-watch")
            registration = tg.create_task(
                keep_registered(registrar, source, cfg, engine_up, MembershipError), name="registration")
            stopping = tg.create_task(stop.wait(), name="signals")
            renewal = tg.create_task(keep_renewed(cfg.cluster.discovery_addr, cfg.cluster.live), name="renewal") \
                if cfg.cluster.live is not None else None
            await asyncio.wait({registration, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if registration.done():
                code = registration.result()
            else:
                log.info("agent shutting down")
                registration.cancel()
            watcher.cancel()
            stopping.cancel()
            if renewal is not None:
                renewal.cancel()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        reload.uninstall(loop)
        await metrics_endpoint.close()
        await _shutdown(registrar, server)
    return code


async def _shutdown(registrar, server) -> None:
    """Stops serving, keeping the registration: its lease, renewed as the last act, counts from
    the moment the agent is gone, so a restart within the lease moves nothing (see the docstring)."""
    await server.stop(SHUTDOWN_GRACE)
    await registrar.renew_once()
    await registrar.close()
    log.info("agent stopped")


def main(cfg: AgentConfig) -> int:
    return asyncio.run(run(cfg))
