"""How `swarm manage`, `swarm join` and `swarm list` reach their cluster: the discovery URL, the
discovery daemon's address and the TLS of both, validated together from the flags.

Validation never connects: a bad URL, a token without `--discovery-addr`, a token that names
another CA than `--tlscacert`, or an unreadable `file://` node list is a ConfigError at start-up.

Bootstrap mode: a join token of `swarm create --ca-dir` (swarmd.common.join_tokens) with no
certificate files. The daemon then calls `ready` once it starts: it obtains (or reuses) the node's
certificate in `--state-dir` (swarmd.common.node_certs), and from then on reaches its cluster by
the cluster ID the certificate names, with mutual TLS over the issued certificate.
"""
from __future__ import annotations

import functools

from dataclasses import dataclass, field, replace

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
    bootstrap: "Bootstrap | None" = None

    @classmethod
    def from_args(cls, args, *, reads_members: bool = True, tls: TLSConfig | None = None) -> "ClusterAccess":
        """Raises ConfigError. `reads_members`: the verb lists the nodes (manage, list), so a
        `file://` node list must be readable now; an agent only registers and never reads it.
        `tls`: the TLS the verb has already built from the same flags."""
        from swarmd.common.membership import MembershipError, check_ca_digest, urls
        bootstrap = Bootstrap.from_args(args)
        if bootstrap is not None:
            return cls(args.discovery_url, bootstrap.discovery_addr, None, None, "token", bootstrap)
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

    async def ready(self, role: str, common_name: str, hosts: list[str] | tuple[str, ...] = (),
                    callers: tuple[str, ...] = ()) -> "ClusterAccess":
        """Itself, or in bootstrap mode the access through the node's certificate (obtained now, or
        the one stored); raises node_certs.BootstrapError when it cannot be had. `callers`: the
        roles whose certificates (of this cluster) the daemon's own gRPC server accepts."""
        if self.bootstrap is None:
            return self
        from swarmd.common import node_certs
        from swarmd.common.pki import identity
        live = await node_certs.obtain_patiently(self.bootstrap.discovery_addr, self.bootstrap.token,
                                       self.bootstrap.state_dir, role, common_name, hosts)
        cluster = identity(live.pems()[1]).cluster
        tls = replace(TLSConfig.from_live(live), peer_check=callers_check(cluster, callers)) if callers else \
            TLSConfig.from_live(live)
        return replace(self, url=f"token://{cluster}", tls=tls)

    @property
    def agent_tls(self) -> TLSConfig | None:
        """What a manager dials agents with: in bootstrap mode, an agent's certificate must name the
        manager's own cluster (`swarm-worker.<cluster ID>`), whatever address it is dialed at."""
        if self.live is None:
            return self.tls
        from swarmd.common.pki import ROLE_WORKER, identity, role_name
        return replace(self.tls, server_name=role_name(ROLE_WORKER, identity(self.live.pems()[1]).cluster),
                       peer_check=None)

    @property
    def live(self):
        """The renewing credentials in bootstrap mode (after `ready`), else None."""
        return self.tls.live if self.tls is not None else None

    def open_membership(self):
        from swarmd.common.membership import open_membership
        return open_membership(self.url, discovery_addr=self.discovery_addr, tls=self.tls, etcd_tls=self.etcd_tls)

    def open_registrar(self):
        from swarmd.common.membership import open_registrar
        return open_registrar(self.url, discovery_addr=self.discovery_addr, tls=self.tls, etcd_tls=self.etcd_tls)

    @property
    def masked_url(self) -> str:
        if self.bootstrap is not None and self.tls is None:
            return f"token://{self.bootstrap.token.masked}"
        return mask_token_url(self.url)

    def describe(self) -> str:
        """For start-up logs: the URL with its token masked, and which TLS is used."""
        parts = [self.masked_url]
        if self.discovery_addr:
            parts.append(f"via {self.discovery_addr}")
        if self.bootstrap is not None:
            parts.append(f"tls=(bootstrap state-dir={self.bootstrap.state_dir})")
        else:
            parts.append(f"tls=({self.tls.describe()})" if self.tls else "tls=off")
        if self.etcd_tls:
            parts.append(f"etcd-tls=({self.etcd_tls.describe()})")
        return " ".join(parts)


@dataclass(frozen=True)
class Bootstrap:
    """Bootstrap mode's inputs: the join token (its repr hides the secret), where it is spent, and
    where the certificate is kept."""
    token: object                       # swarmd.common.join_tokens.JoinToken
    discovery_addr: str
    state_dir: str

    @classmethod
    def from_args(cls, args) -> "Bootstrap | None":
        """None unless the URL is a bootstrap join token and no certificate file is given."""
        from swarmd.common import join_tokens
        url = getattr(args, "discovery_url", "") or ""
        if not join_tokens.is_bootstrap(url):
            return None
        verb = getattr(args, "verb", None)
        if verb not in (None, "join", "manage"):
            raise ConfigError(f"a join token of `swarm create --ca-dir` is for `swarm join` and `swarm manage`; "
                              f"`swarm {verb}` is not available for such a cluster yet: use the manager "
                              "(`docker node ls`, `docker node rm`)")
        files = [getattr(args, f, None) for f in ("tlscacert", "tlscert", "tlskey")]
        if any(files):
            raise ConfigError("this join token is for a cluster whose discovery daemon issues certificates "
                              "(--ca-dir): leave out --tlscacert/--tlscert/--tlskey")
        if not args.discovery_addr:
            raise ConfigError("token:// needs the discovery daemon's address: pass --discovery-addr HOST:PORT")
        address_list("--discovery-addr", args.discovery_addr)
        state_dir = getattr(args, "state_dir", None)
        if not state_dir:
            raise ConfigError("a join token needs --state-dir: where the node's certificate is kept")
        return cls(join_tokens.parse(url), args.discovery_addr, str(state_dir))


def callers_check(cluster: str, roles: tuple[str, ...]):
    """check(cert_pem) for swarmd.common.tls.PeerCheck: why a client certificate may not call, or None."""
    from swarmd.common import pki

    @functools.lru_cache(maxsize=64)          # a caller presents the same certificate on every call
    def identity(cert_pem: bytes) -> pki.Identity | None:
        try:
            return pki.identity(cert_pem)
        except pki.PKIError:
            return None

    def check(cert_pem: bytes | None) -> str | None:
        return pki.peer_refusal(identity(cert_pem) if cert_pem else None, cluster, roles)
    return check
