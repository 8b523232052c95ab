"""`swarm manage`'s configuration: every flag checked once, before anything starts.

`ManagerConfig.from_args` raises ConfigError (printed by swarmd.cli as `swarm manage: error: …`,
exit 2) for any value that cannot work; the daemon (manager.daemon) takes only the result.
"""
from __future__ import annotations

import ipaddress
import math
import urllib.parse
from dataclasses import dataclass, replace

from swarmd.manager.election import default_advertise
from swarmd.manager.scheduler import FILTERS, STRATEGIES
from swarmd.common.cluster_access import Bootstrap, ClusterAccess
from swarmd.common.config import ConfigError, host_port, positive
from swarmd.common.tls import TLSConfig

DEFAULT_LISTEN = "unix:///var/run/swarmd.sock"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        if not _is_loopback(u.hostname) and not insecure_tcp:
            raise ConfigError(
                f"refusing to serve the Docker API on {h} without TLS: anyone who can reach it is root on "
                "every node. Use --tlsverify, a loopback or unix address, or --insecure-tcp to insist.")
        out.append(h)
    return out


def check_ui_addr(value: str | None, authenticated: bool) -> str | None:
    """--ui-addr HOST:PORT; beyond loopback only when clients are authenticated (--tlsverify) or
    --insecure-tcp insists, as for -H: the page shows every container, its logs and environment."""
    if not value:
        return None
    host, _ = host_port("--ui-addr", value, listen=True)
    if not _is_loopback(host) and not authenticated:
        raise ConfigError(f"refusing to serve the web view on {value} without TLS: it shows every container "
                          "and its logs. Use --tlsverify, a loopback address, or --insecure-tcp to insist.")
    return value


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


# --cluster-opt keys (classic swarm's cluster/swarm/cluster.go); values are checked as classic did
OVERCOMMIT = "swarm.overcommit"
CREATE_RETRY = "swarm.createretry"
CLUSTER_OPTS = (OVERCOMMIT, CREATE_RETRY)


@dataclass(frozen=True)
class ClusterOpts:
    overcommit: float = 0.0     # classic's default was 0.05; swarmd keeps reservations within the node
    create_retry: int = 0


def check_cluster_opts(values: list[str] | None) -> ClusterOpts:
    """`--cluster-opt KEY=VALUE` values (repeatable; a later key wins) as ClusterOpts."""
    found: dict[str, str] = {}
    for raw in values or []:
        key, sep, value = str(raw).partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ConfigError(f"--cluster-opt {raw!r}: use KEY=VALUE, e.g. {OVERCOMMIT}=0.05")
        if key not in CLUSTER_OPTS:
            raise ConfigError(f"--cluster-opt {raw!r}: unknown option {key!r}: valid options are {', '.join(CLUSTER_OPTS)}")
        found[key] = value
    opts = ClusterOpts()
    if OVERCOMMIT in found:
        try:
            ratio = float(found[OVERCOMMIT])
        except ValueError:
            ratio = math.nan
        # classic: "swarm.overcommit should be larger than -1"
        if not math.isfinite(ratio) or ratio <= -1:
            raise ConfigError(f"--cluster-opt {OVERCOMMIT}={found[OVERCOMMIT]}: expected a ratio larger than -1, "
                              "e.g. 0.05 for 5% more than the node has")
        opts = ClusterOpts(overcommit=ratio, create_retry=opts.create_retry)
    if CREATE_RETRY in found:
        text = found[CREATE_RETRY]
        if not text.isdigit():
            # classic: "swarm.createretry can not be negative"
            raise ConfigError(f"--cluster-opt {CREATE_RETRY}={text}: expected a whole number, 0 or more")
        opts = ClusterOpts(overcommit=opts.overcommit, create_retry=int(text))
    return opts


def check_classic_polling(args) -> tuple[str, ...]:
    """The classic engine-polling flags given, checked as classic checked them (they have no effect)."""
    given = tuple(flag for flag, value in (
        ("--engine-refresh-min-interval", args.engine_refresh_min_interval),
        ("--engine-refresh-max-interval", args.engine_refresh_max_interval),
        ("--engine-failure-retry", args.engine_failure_retry),
        ("--heartbeat", args.heartbeat)) if value is not None)
    low, high = args.engine_refresh_min_interval, args.engine_refresh_max_interval
    for flag, value in (("--engine-refresh-min-interval", low), ("--engine-refresh-max-interval", high),
                        ("--heartbeat", args.heartbeat)):
        if value is not None and value <= 0:
            raise ConfigError(f"{flag} {value:g}s: must be more than 0")
    if low is not None and high is not None and high < low:
        raise ConfigError(f"--engine-refresh-max-interval {high:g}s: must be at least --engine-refresh-min-interval ({low:g}s)")
    if args.engine_failure_retry is not None and args.engine_failure_retry <= 0:
        raise ConfigError(f"--engine-failure-retry {args.engine_failure_retry}: must be more than 0")
    return given


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
    cluster_opts: ClusterOpts = ClusterOpts()
    classic_flags: tuple[str, ...] = ()   # classic's engine-polling flags given: logged, no effect
    ui_addr: str | None = None            # HOST:PORT of the web view (manager.ui); None: not served
    # bootstrap mode: how the Docker API is served with the issued certificate ("verify": clients
    # need a certificate from the cluster CA; "tls": server side only; None: plain, loopback)
    bootstrap_api: str | None = None

    def api_tls(self) -> TLSConfig | None:
        """The TLS the Docker API (and the web view, and forwarding to the primary) is served with."""
        if self.cluster.bootstrap is None:
            return self.cluster.tls
        if self.bootstrap_api is None or self.cluster.tls is None:
            return None
        return replace(self.cluster.tls, verify=self.bootstrap_api == "verify", peer_check=None)

    def api_hosts(self) -> list[str]:
        """The hosts the Docker API is reached at, for the issued certificate to name."""
        hosts = [urllib.parse.urlsplit(h).hostname for h in self.listen if h.startswith("tcp://")]
        if self.advertise:
            hosts.append(host_port("--advertise", self.advertise)[0])
        return [h for h in dict.fromkeys([*hosts, "localhost", "127.0.0.1"]) if h and h not in ("0.0.0.0", "::")]

    @classmethod
    def from_args(cls, args) -> "ManagerConfig":
        bootstrap_api = None
        if Bootstrap.from_args(args) is not None:
            tls = None          # the certificate comes when the manager starts (ClusterAccess.ready)
            bootstrap_api = "verify" if args.tlsverify else ("tls" if args.tls else None)
        else:
            tls = TLSConfig.from_args(args)
            if tls is not None:
                tls.server_ssl_context()            # the Docker API is served with TLS: it needs a key pair
        # with --tlsverify every client is authenticated, so any address may be served
        authenticated = (tls is not None and tls.verify) or bootstrap_api == "verify"
        listen = check_listen(args.host or [DEFAULT_LISTEN], args.insecure_tcp or authenticated)
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
                   cluster=cluster, env_file=getattr(args, "env_file", None),
                   cluster_opts=check_cluster_opts(args.cluster_opt), classic_flags=check_classic_polling(args),
                   ui_addr=check_ui_addr(getattr(args, "ui_addr", None), args.insecure_tcp or authenticated),
                   bootstrap_api=bootstrap_api)


def check_replication(advertise: str, scheme: str) -> None:
    """What manager.election.open_election needs, said before anything is opened."""
    if not advertise:
        raise ConfigError("--replication needs --advertise HOST:PORT: the address other managers forward to")
    if scheme not in ("token", "etcd"):
        raise ConfigError("--replication needs a token:// or etcd:// discovery URL (leader election is kept in etcd)")
