"""`swarm manage`: the membership watch, the cluster view and the HTTP frontend, as one process."""
from __future__ import annotations

import asyncio
import ipaddress
import signal
import urllib.parse

from manager.agents import AgentClient
from manager.api import build_router
from manager.api.context import API_VERSION, MIN_API_VERSION, VERSION, ManagerContext
from manager.cluster import ClusterView
from manager.election import LeaderState, Roles, default_advertise, follow_leadership, open_election
from manager.forwarding import Forwarder, RoleRouter
from manager.rescheduler import Rescheduler
from manager.httpd.rate_limit import RateLimiter
from manager.httpd.server import HttpServer
from manager import metrics
from manager.gc_policy import GcPolicy
from manager.scheduler import Scheduler
from swarmd import etcd_tls, logs, reload
from swarmd.config import describe, mask_token_url
from swarmd.membership import MembershipError, open_membership
from swarmd.metrics_endpoint import MetricsEndpoint
from swarmd.tls import TLSConfig

log = logs.get("manager")


class ConfigError(Exception):
    pass


def check_listen(hosts: list[str], insecure_tcp: bool) -> list[str]:
    """Normalizes -H values; plain TCP beyond loopback needs --insecure-tcp (this API is root)."""
    out = []
    for h in hosts:
        if "://" not in h:
            h = f"tcp://{h}"
        u = urllib.parse.urlsplit(h)
        if u.scheme == "unix":
            out.append(h)
            continue
        if u.scheme != "tcp" or not u.hostname or u.port is None:
            raise ConfigError(f"invalid -H address {h!r}: use tcp://HOST:PORT or unix:///path")
        host = u.hostname
        loopback = host == "localhost"
        try:
            loopback = loopback or ipaddress.ip_address(host).is_loopback
        except ValueError:
            pass
        if not loopback and not insecure_tcp:
            raise ConfigError(
                f"refusing to serve the Docker API on {h} without TLS: anyone who can reach it is root on "
                "every node. Use --tlsverify, a loopback or unix address, or --insecure-tcp to insist.")
        out.append(h)
    return out


async def run(args) -> int:
    try:
        tls = TLSConfig.from_args(args)
        ssl_context = tls.server_ssl_context() if tls is not None else None
        # with --tlsverify every client is authenticated, so any address may be served
        listen = check_listen(args.host or ["unix:///var/run/swarmd.sock"],
                              args.insecure_tcp or (tls is not None and tls.verify))
        scheduler = Scheduler(args.strategy, args.filter or None)
        store_tls = etcd_tls.from_args(args)
    except Exception as exc:  # bad flags: say so and stop
        log.error("invalid configuration", error=str(exc))
        return 2
    log.info("manager starting", **describe(args))
    try:
        membership = open_membership(args.discovery_url, discovery_addr=args.discovery_addr, tls=tls,
                                     etcd_tls=store_tls)
    except MembershipError as exc:
        log.error("invalid discovery", error=str(exc))
        return 2
    cluster = ClusterView(client_factory=lambda n: AgentClient(n.info.addr, n.info.name, tls=tls))
    ctx = ManagerContext(cluster=cluster, scheduler=scheduler, advertise=args.advertise or default_advertise(listen))
    router = build_router(ctx)
    election = None
    if args.replication:
        try:
            election = open_election(membership, ctx.advertise, args.replication_ttl)
        except MembershipError as exc:
            log.error("invalid replication settings", error=str(exc))
            await membership.close()
            return 2
        ctx.role = "replica"     # until elected
        router = RoleRouter(router, lambda: ctx.role == "primary",
                            Forwarder(ctx, tls.client_ssl_context() if tls is not None else None))
    roles = Roles(ctx, Rescheduler(cluster, ctx.placement).run)
    server = HttpServer(router, api_version=API_VERSION, min_api_version=MIN_API_VERSION,
                        server_header=f"Docker/{API_VERSION} (linux) swarmd/{VERSION}",
                        observer=metrics.observe_request, ssl_context=ssl_context,
                        rate_limiter=RateLimiter(args.api_rate_limit) if args.api_rate_limit > 0 else None)
    metrics.watch_cluster(cluster)
    GcPolicy().install()    # full collections walk only what came after the last one (see gc_policy)
    metrics.LEADER.set(0 if election else 1)
    metrics_endpoint = MetricsEndpoint(metrics.REGISTRY)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reload.install(loop, getattr(args, "env_file", None))
    exit_code = 0

    async def follow() -> None:
        nonlocal exit_code
        try:
            await cluster.follow_membership(membership)
        except MembershipError as exc:   # refused token, unknown cluster: nothing to serve
            log.error("membership refused", error=str(exc))
            exit_code = 1
            stop.set()

    async def lead() -> None:
        nonlocal exit_code
        try:
            await follow_leadership(election.states(), args.replication_ttl, roles.apply)
        except MembershipError as exc:
            log.error("replication refused", error=str(exc))
            exit_code = 1
            stop.set()

    try:
        async with asyncio.TaskGroup() as tg:
            follower = tg.create_task(follow(), name="membership")
            leader = tg.create_task(lead(), name="election") if election else None
            if election is None:
                roles.apply(LeaderState(ctx.advertise, True))   # the only manager: always primary
            try:
                await server.start(listen)
                if args.metrics_addr:
                    await metrics_endpoint.start(args.metrics_addr)
            except OSError as exc:
                log.error("cannot listen", error=str(exc))
                exit_code = 1
                stop.set()
            else:
                log.info("manager serving", listen=",".join(server.addresses), strategy=scheduler.strategy_name,
                         filters=",".join(scheduler.filter_names), discovery=mask_token_url(args.discovery_url))
            await stop.wait()
            log.info("manager shutting down")
            follower.cancel()
            if leader is not None:
                leader.cancel()
    finally:
        await roles.close()
        await server.close()
        if election is not None:
            await election.close()
        await metrics_endpoint.close()
        await cluster.close()
        await membership.close()
    log.info("manager stopped", exit_code=exit_code)
    return exit_code


def main(args) -> int:
    return asyncio.run(run(args))
