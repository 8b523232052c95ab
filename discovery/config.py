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
    ca_dir: str | None = None                   # bootstrap mode: the CA this daemon signs with
    cert_expiry: float = 90 * 86400.0           # seconds

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
        ca_dir, cert_expiry = check_ca(args, tls)
        if args.metrics_addr:
            host_port("--metrics-addr", args.metrics_addr, listen=True)
        return cls(listen=args.listen, etcd=args.etcd, endpoints=tuple(endpoints),
                   ttl=positive("--ttl", args.ttl), metrics_addr=args.metrics_addr or None, tls=tls,
                   etcd_tls=store_tls, env_file=getattr(args, "env_file", None), ca_dir=ca_dir,
                   cert_expiry=cert_expiry)


def check_ca(args, tls) -> tuple[str | None, float]:
    """--ca-dir (a CA that can sign) and --cert-expiry; the explicit TLS flags serve otherwise."""
    from swarmd.common import pki
    try:
        expiry = pki.parse_lifetime(getattr(args, "cert_expiry", "90d") or "90d")
    except ValueError as exc:
        raise ConfigError(f"--cert-expiry: {exc}") from None
    ca_dir = getattr(args, "ca_dir", None) or None
    if ca_dir is None:
        return None, expiry
    if tls is not None:
        raise ConfigError("--ca-dir serves TLS with a certificate of its own: leave out --tls/--tlsverify and their files")
    from swarmd.common import ca_rotation
    try:
        ca_rotation.read(ca_dir)            # the CA, and the rotation under way if any
    except (pki.PKIError, ca_rotation.RotationError) as exc:
        raise ConfigError(f"--ca-dir: {exc}") from None
    return ca_dir, expiry
