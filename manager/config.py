"""`swarm manage`'s configuration: every flag checked once, before anything starts.

`ManagerConfig.from_args` raises ConfigError (printed by swarmd.cli as `swarm manage: error: …`,
exit 2) for any value that cannot work; the daemon (manager.daemon) takes only the result.
"""
from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass

from swarmd.manager.election import default_advertise
from swarmd.manager.scheduler import FILTERS, STRATEGIES
from swarmd.common.cluster_access import ClusterAccess
from swarmd.common.config import ConfigError, host_port, positive
from swarmd.common.tls import TLSConfig

DEFAULT_LISTEN = "unix:///var/run/swarmd.sock"


def check_listen(hosts: list[str], insecure_tcp: bool) -> list[str]:
    """Normalizes -H values; plain TCP beyond loopback needs --insecure-tcp (this API is root)."""
    out = []
    for h in hosts:
        if "://" not in h:
            h = f"tcp://{h}"
        u = urllib.parse.urlsplit(h)
        if u.scheme == "unix":
            if not (u.netloc + u.path):
                raise ConfigError(f"invalid -H address {h!r}: use unix:///path")
            out.append(h)
            continue
        try:
            port = u.port
        except ValueError:      # out of range or not a number
            port = None
        if u.scheme != "tcp" or not u.hostname or port is None:
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


def check_filters(names: list[str] | None) -> tuple[str, ...] | None:
    """--filter values (repeated or comma-separated) as known filter names; None: every filter."""
    if not names:
        return None
    out: list[str] = []
    for raw in names:
        for name in str(raw).split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name not in FILTERS:
                raise ConfigError(f'--filter: unknown scheduler filter "{name}": valid filters are {", ".join(FILTERS)}')
            if name not in out:
                out.append(name)
    return tuple(out)


@dataclass(frozen=True)
class ManagerConfig:
    listen: tuple[str, ...]             # normalized -H addresses
    advertise: str                      # "" when it cannot be told (only --replication needs it)
    strategy: str
    filters: tuple[str, ...] | None     # None: every filter, in classic swarm's order
    api_rate_limit: float               # requests a second per client address; 0: no limit
    metrics_addr: str | None
    replication: bool
    replication_ttl: float
    cluster: ClusterAccess
    env_file: str | None

    @classmethod
    def from_args(cls, args) -> "ManagerConfig":
        tls = TLSConfig.from_args(args)
        if tls is not None:
            tls.server_ssl_context()            # the Docker API is served with TLS: it needs a key pair
        # with --tlsverify every client is authenticated, so any address may be served
        listen = check_listen(args.host or [DEFAULT_LISTEN], args.insecure_tcp or (tls is not None and tls.verify))
        cluster = ClusterAccess.from_args(args, tls=tls)
        if args.strategy not in STRATEGIES:
            raise ConfigError(f"--strategy {args.strategy!r}: valid strategies are {', '.join(STRATEGIES)}")
        if args.metrics_addr:
            host_port("--metrics-addr", args.metrics_addr, listen=True)
        if args.advertise:
            host_port("--advertise", args.advertise)
        advertise = args.advertise or default_advertise(listen)
        if args.replication:
            check_replication(advertise, cluster.scheme)
        return cls(listen=tuple(listen), advertise=advertise, strategy=args.strategy,
                   filters=check_filters(args.filter),
                   api_rate_limit=positive("--api-rate-limit", args.api_rate_limit, zero=True),
                   metrics_addr=args.metrics_addr or None, replication=bool(args.replication),
                   replication_ttl=positive("--replication-ttl", args.replication_ttl),
                   cluster=cluster, env_file=getattr(args, "env_file", None))


def check_replication(advertise: str, scheme: str) -> None:
    """What manager.election.open_election needs, said before anything is opened."""
    if not advertise:
        raise ConfigError("--replication needs --advertise HOST:PORT: the address other managers forward to")
    if scheme not in ("token", "etcd"):
        raise ConfigError("--replication needs a token:// or etcd:// discovery URL (leader election is kept in etcd)")
