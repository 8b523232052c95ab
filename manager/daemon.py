"""`swarm manage`: the membership watch, the cluster view and the HTTP frontend, as one process.

The daemon takes a validated `ManagerConfig` (manager.config) and runs in named steps: build the
parts (`build_manager`), serve until stopped or refused (`serve`), close every part (`close`).
"""
from __future__ import annotations

import asyncio
import secrets
import signal
from dataclasses import dataclass, replace

from swarmd.manager.agents import AgentClient
from swarmd.manager.api import build_router
from swarmd.manager.api.context import API_VERSION, MIN_API_VERSION, VERSION, ManagerContext
from swarmd.manager.cluster import ClusterView
from swarmd.manager.config import ManagerConfig
from swarmd.manager.drain import Drainer
from swarmd.manager.election import LeaderState, Roles, follow_leadership, open_election
from swarmd.manager.forwarding import Forwarder, RoleRouter
from swarmd.manager.rescheduler import Rescheduler
from swarmd.manager.httpd.rate_limit import RateLimiter
from swarmd.manager.httpd.server import HttpServer
from swarmd.manager import metrics
from swarmd.manager.gc_policy import GcPolicy
from swarmd.manager.intent import open_intent_store
from swarmd.manager.scheduler import Scheduler
from swarmd.manager.ui import build_ui_server
from swarmd.common import logs, reload
from swarmd.common.config import describe
from swarmd.common.membership import MembershipError
from swarmd.common.metrics_endpoint import MetricsEndpoint
from swarmd.common.node_certs import BootstrapError, keep_renewed
from swarmd.common.pki import ROLE_MANAGER

log = logs.get("manager")


@dataclass
class Manager:
    """The running parts of one manager, built from its configuration by `build_manager`."""

    cfg: ManagerConfig
    membership: object
    cluster: ClusterView
    ctx: ManagerContext
    scheduler: Scheduler
    election: object | None
    roles: Roles
    server: HttpServer
    metrics_endpoint: MetricsEndpoint
    ui_server: HttpServer | None = None     # the web view (--ui-addr), when asked for

    async def close(self) -> None:
        await self.roles.close()
        await self.server.close()
        if self.ui_server is not None:
            await self.ui_server.close()
        if self.election is not None:
            await self.election.close()
        await self.metrics_endpoint.close()
        await self.cluster.close()
        await self.membership.close()


async def build_manager(cfg: ManagerConfig) -> Manager:
    """Every part, nothing started yet; MembershipError when the cluster cannot be opened."""
    tls = cfg.api_tls()                 # the Docker API's; the agents' channels take the cluster's
    agent_tls = cfg.cluster.agent_tls
    scheduler = Scheduler(cfg.strategy, list(cfg.filters) if cfg.filters is not None else None,
                          overcommit=cfg.cluster_opts.overcommit, create_retry=cfg.cluster_opts.create_retry)
    membership = cfg.cluster.open_membership()
    cluster = ClusterView(client_factory=lambda n: AgentClient(n.info.addr, n.info.name, tls=agent_tls))
    ctx = ManagerContext(cluster=cluster, scheduler=scheduler, advertise=cfg.advertise)
    router = build_router(ctx)
    election = None
    if cfg.replication:
        try:
            election = open_election(membership, ctx.advertise, cfg.replication_ttl)
        except MembershipError:
            await membership.close()
            raise
        ctx.role = "replica"     # until elected
        router = RoleRouter(router, lambda: ctx.role == "primary",
                            Forwarder(ctx, tls.client_ssl_context() if tls is not None else None))
    cluster.intent_store = open_intent_store(membership)
    roles = Roles(ctx, primary_work(Rescheduler(cluster, ctx.placement), Drainer(cluster, ctx.placement)))
    server = HttpServer(router, api_version=API_VERSION, min_api_version=MIN_API_VERSION,
                        server_header=f"Docker/{API_VERSION} (linux) swarmd/{VERSION}",
                        observer=metrics.observe_request,
                        ssl_context=tls.server_ssl_context() if tls is not None else None,
                        rate_limiter=RateLimiter(cfg.api_rate_limit) if cfg.api_rate_limit > 0 else None)
    ui_server = build_ui_server(ctx, server.ssl_context) if cfg.ui_addr else None
    return Manager(cfg, membership, cluster, ctx, scheduler, election, roles, server,
                   MetricsEndpoint(metrics.REGISTRY), ui_server)


def primary_work(rescheduler: Rescheduler, drainer: Drainer):
    """What only the primary runs: rescheduling off lost nodes and moving containers off drained ones."""
    async def run() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(rescheduler.run(), name="rescheduler")
            tg.create_task(drainer.run(), name="drainer")
    return run


async def serve(m: Manager, stop: asyncio.Event) -> int:
    """Follows membership (and leadership), serves the API until `stop`; the exit code."""
    exit_code = 0

    async def until_refused(what: str, work) -> None:
        nonlocal exit_code
        try:
            await work
        except MembershipError as exc:   # refused token, unknown cluster: nothing to serve
            log.error(what, error=str(exc))
            exit_code = 1
            stop.set()

    async with asyncio.TaskGroup() as tg:
        follower = tg.create_task(until_refused("membership refused", m.cluster.follow_membership(m.membership)),
                                  name="membership")
        intents = tg.create_task(m.cluster.follow_intents(m.cluster.intent_store), name="intents")
        leader = None
        if m.election is not None:
            leader = tg.create_task(until_refused("replication refused", follow_leadership(
                m.election.states(), m.cfg.replication_ttl, m.roles.apply)), name="election")
        else:
            m.roles.apply(LeaderState(m.ctx.advertise, True))   # the only manager: always primary
        if await start_listening(m):
            log.info("manager serving", listen=",".join(m.server.addresses), strategy=m.scheduler.strategy_name,
                     filters=",".join(m.scheduler.filter_names), discovery=m.cfg.cluster.masked_url)
        else:
            exit_code = 1
            stop.set()
        live = m.cfg.cluster.live
        renewal = tg.create_task(keep_renewed(m.cfg.cluster.discovery_addr, live), name="renewal") \
            if live is not None else None
        await stop.wait()
        log.info("manager shutting down")
        if renewal is not None:
            renewal.cancel()
        follower.cancel()
        intents.cancel()
        if leader is not None:
            leader.cancel()
    return exit_code


async def start_listening(m: Manager) -> bool:
    """The API, the web view, then the metrics endpoint; False (said in the log) when one cannot listen."""
    try:
        await m.server.start(list(m.cfg.listen))
        if m.ui_server is not None:
            await m.ui_server.start([f"tcp://{m.cfg.ui_addr}"])
            log.info("web view serving", addr=",".join(m.ui_server.addresses))
    except OSError as exc:
        log.error("cannot listen", error=str(exc))
        return False
    return await m.metrics_endpoint.start_if_asked(m.cfg.metrics_addr)


def install_stop_signals(stop: asyncio.Event, env_file: str | None) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reload.install(loop, env_file)


async def run(cfg: ManagerConfig) -> int:
    log.info("manager starting", **describe(cfg))
    try:
        # bootstrap mode: the manager's certificate (a new manager gets an ID of its own; a restarted
        # one reuses the stored certificate, ID included)
        cfg = replace(cfg, cluster=await cfg.cluster.ready(ROLE_MANAGER, "m" + secrets.token_hex(8), cfg.api_hosts()))
    except BootstrapError as exc:
        log.error("cannot join", error=str(exc))
        return 1
    try:
        m = await build_manager(cfg)
    except MembershipError as exc:
        log.error("invalid discovery", error=str(exc))
        return 2
    metrics.watch_cluster(m.cluster)
    # full collections walk only what came after the last one (see gc_policy); its own first one
    # walks every object of the modules loaded (~70 ms) before anything is served, so the pause
    # metrics start after it
    GcPolicy().install()
    metrics.watch_gc()
    metrics.LEADER.set(0 if m.election else 1)
    stop = asyncio.Event()
    install_stop_signals(stop, cfg.env_file)
    try:
        exit_code = await serve(m, stop)
    finally:
        await m.close()
    log.info("manager stopped", exit_code=exit_code)
    return exit_code


def main(cfg: ManagerConfig) -> int:
    return asyncio.run(run(cfg))
