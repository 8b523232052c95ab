"""`swarm discovery`: run the discovery daemon (cluster tokens and membership over etcd); flags ->
discovery.config.DiscoveryConfig -> discovery.daemon."""
from __future__ import annotations

from swarmd.common.config import add_flag, parse_duration
from swarmd.common.etcd_tls import add_etcd_tls_flags
from swarmd.common.tls import add_tls_flags


def add_parser(sub) -> None:
    p = sub.add_parser("discovery", help="run the discovery daemon (gRPC, backed by etcd)")
    add_flag(p, "--listen", default="0.0.0.0:4000", help="HOST:PORT to serve gRPC on")
    add_flag(p, "--etcd", default="http://127.0.0.1:2379",
             help="etcd endpoints, comma-separated (http://HOST:PORT, https://HOST:PORT for TLS, or HOST:PORT)")
    add_flag(p, "--ttl", type=parse_duration, default=6.0,
             help="lease TTL for agents that do not ask for one")
    add_flag(p, "--metrics-addr", default=None, help="HOST:PORT to serve Prometheus metrics on (/metrics)")
    add_flag(p, "--ca-dir", default=None,
             help="be the clusters' certificate authority with the CA in this directory (`swarm ca init`): "
                  "serve TLS with a certificate issued to itself and issue certificates against join tokens")
    add_flag(p, "--cert-expiry", default="90d",
             help="lifetime of the certificates it issues with --ca-dir (e.g. 40s, 2h, 90d)")
    add_tls_flags(p)
    add_etcd_tls_flags(p)

    p.set_defaults(configure=configure, func=run)


def configure(args):
    from swarmd.discovery.config import DiscoveryConfig
    return DiscoveryConfig.from_args(args)


def run(cfg) -> int:
    from swarmd.discovery.daemon import run as run_daemon
    return run_daemon(cfg)
