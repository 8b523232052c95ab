"""How `swarm manage`, `swarm join` and `swarm list` reach their cluster: the discovery URL, the
discovery daemon's address and the TLS of both, validated together from the flags.

Validation never connects: a bad URL, a token without `--discovery-addr`, a token that names
another CA than `--tlscacert`, or an unreadable `file://` node list is a ConfigError at start-up.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from swarmd.common import etcd_tls as etcd_tls_module
from swarmd.common.config import ConfigError, address_list, mask_token_url
from swarmd.common.tls import TLSConfig


@dataclass(frozen=True)
class ClusterAccess:
    url: str = field(repr=False)          # may hold the cluster token: a secret
    discovery_addr: str | None
    tls: TLSConfig | None
    etcd_tls: etcd_tls_module.EtcdTLS | None
    scheme: str

    @classmethod
    def from_args(cls, args, *, reads_members: bool = True, tls: TLSConfig | None = None) -> "ClusterAccess":
        """Raises ConfigError. `reads_members`: the verb lists the nodes (manage, list), so a
        `file://` node list must be readable now; an agent only registers and never reads it.
        `tls`: the TLS the verb has already built from the same flags."""
        from swarmd.common.membership import MembershipError, check_ca_digest, urls
        if tls is None:
            tls = TLSConfig.from_args(args)
        store_tls = etcd_tls_module.from_args(args)
        discovery_addr = args.discovery_addr or None
        if discovery_addr is not None:
            address_list("--discovery-addr", discovery_addr)
        try:
            parsed = urls.parse(args.discovery_url)
            if isinstance(parsed, urls.FileURL) and reads_members:
                urls.read_address_file(parsed.path)
        except urls.URLError as exc:
            raise ConfigError(str(exc)) from None
        if isinstance(parsed, urls.TokenURL):
            if discovery_addr is None:
                raise ConfigError("token:// needs the discovery daemon's address: pass --discovery-addr HOST:PORT")
            try:
                check_ca_digest(parsed, tls)
            except MembershipError as exc:
                raise ConfigError(str(exc)) from None
        scheme = args.discovery_url.split("://", 1)[0].lower()
        return cls(args.discovery_url, discovery_addr, tls, store_tls, scheme)

    def open_membership(self):
        from swarmd.common.membership import open_membership
        return open_membership(self.url, discovery_addr=self.discovery_addr, tls=self.tls, etcd_tls=self.etcd_tls)

    def open_registrar(self):
        from swarmd.common.membership import open_registrar
        return open_registrar(self.url, discovery_addr=self.discovery_addr, tls=self.tls, etcd_tls=self.etcd_tls)

    @property
    def masked_url(self) -> str:
        return mask_token_url(self.url)

    def describe(self) -> str:
        """For start-up logs: the URL with its token masked, and which TLS is used."""
        parts = [self.masked_url]
        if self.discovery_addr:
            parts.append(f"via {self.discovery_addr}")
        parts.append(f"tls=({self.tls.describe()})" if self.tls else "tls=off")
        if self.etcd_tls:
            parts.append(f"etcd-tls=({self.etcd_tls.describe()})")
        return " ".join(parts)
