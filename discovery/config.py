"""`swarm discovery`'s configuration: every flag checked once, before anything starts.

`DiscoveryConfig.from_args` raises ConfigError (printed by swarmd.cli as `swarm discovery:
error: …`, exit 2) for any value that cannot work; the daemon (discovery.daemon) takes only the
result.
"""
from __future__ import annotations

from dataclasses import dataclass

from swarmd.common import etcd_tls
from swarmd.common.config import ConfigError, host_port, positive
from swarmd.common.tls import TLSConfig


@dataclass(frozen=True)
class DiscoveryConfig:
    listen: str
    etcd: str                                   # the --etcd list as given (logged)
    endpoints: tuple[tuple[str, int], ...]      # its parsed endpoints
    ttl: float                                  # lease TTL for agents that do not ask for one
    metrics_addr: str | None
    tls: TLSConfig | None
    etcd_tls: etcd_tls.EtcdTLS | None
    env_file: str | None

    @classmethod
    def from_args(cls, args) -> "DiscoveryConfig":
        from swarmd.common.membership.urls import URLError, parse_endpoints
        host_port("--listen", args.listen, listen=True)
        try:
            endpoints = parse_endpoints(args.etcd)
        except URLError as exc:
            raise ConfigError(f"--etcd {args.etcd!r}: {exc}") from None
        store_tls = etcd_tls.for_endpoints(args.etcd, etcd_tls.from_args(args))
        tls = TLSConfig.from_args(args)
        if tls is not None:
            tls.grpc_server_credentials()      # it serves gRPC: it needs its key pair
        if args.metrics_addr:
            host_port("--metrics-addr", args.metrics_addr, listen=True)
        return cls(listen=args.listen, etcd=args.etcd, endpoints=tuple(endpoints),
                   ttl=positive("--ttl", args.ttl), metrics_addr=args.metrics_addr or None, tls=tls,
                   etcd_tls=store_tls, env_file=getattr(args, "env_file", None))
