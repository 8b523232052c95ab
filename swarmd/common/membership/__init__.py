"""Cluster membership, whatever the discovery URL: who is in the cluster, and how to join it.

A manager opens a `Membership` (list the nodes, watch joins/updates/leaves); an agent opens a
`Registrar` (register its node under a lease and keep it alive). Both are chosen by the URL's
scheme: `token://` through the discovery daemon, `etcd://` straight to etcd, `nodes://` and
`file://` static lists checked through each agent's own gRPC health service.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

from swarmd.common.tls import grpc_target
from typing import AsyncIterator, Awaitable, Callable

from swarmd.proto.swarm.v1 import types_pb2


@dataclass(frozen=True)
class MemberEvent:
    kind: str                      # "joined" | "updated" | "left" | "synced"
    node: types_pb2.Node | None    # None for "synced"


class MembershipError(Exception):
    """Registration refused, a bad discovery URL or an unknown/malformed token (clear message)."""


class MembershipUnavailable(ConnectionError):
    """The discovery daemon or etcd cannot be reached right now: worth retrying."""


NodeSource = Callable[[], Awaitable[types_pb2.NodeInfo]] | types_pb2.NodeInfo


class Membership(abc.ABC):
    """What a manager uses: the current nodes, and a stream of changes."""

    @abc.abstractmethod
    async def list_nodes(self) -> list[types_pb2.Node]:
        ...

    @abc.abstractmethod
    def watch(self) -> AsyncIterator[MemberEvent]:
        """Runs forever: every current node as "joined", "synced", then changes.

        On failure it logs, backs off, reconnects, re-lists and emits the difference so the
        consumer's view converges, then "synced" again.
        """

    async def close(self) -> None:
        return None


class Registrar(abc.ABC):
    """What an agent uses: register its node and keep the registration alive."""

    @abc.abstractmethod
    async def register(self, node: types_pb2.NodeInfo, ttl: float) -> None:
        ...

    @abc.abstractmethod
    async def keep_alive(self, node: NodeSource, heartbeat: float, ttl: float) -> None:
        ...

    async def deregister(self) -> None:
        return None

    async def renew_once(self) -> None:
        """Renews the registration's lease now, best effort (a stopping agent's last act)."""
        return None

    async def leave(self, node_id: str) -> bool:
        """Removes the node's registration at once (`swarm leave`, the agent stopped); False when
        the scheme keeps none (a static node list). Raises MembershipError/MembershipUnavailable."""
        return False

    async def close(self) -> None:
        return None


def _parse(url: str):
    from swarmd.common.membership import urls
    try:
        return urls.parse(url)
    except urls.URLError as exc:
        raise MembershipError(str(exc)) from None


def _need_addr(discovery_addr: str | None) -> str:
    if not discovery_addr:
        raise MembershipError("token:// needs the discovery daemon's address: pass --discovery-addr HOST:PORT")
    try:
        grpc_target(discovery_addr)       # one address, or several redundant daemons
    except (ValueError, OSError) as exc:
        raise MembershipError(f"invalid --discovery-addr: {exc}") from None
    return discovery_addr


def check_ca_digest(parsed, tls) -> None:
    """A token that names a CA is only used with TLS whose --tlscacert is that very CA."""
    if not getattr(parsed, "ca_digest", ""):
        return
    want = parsed.ca_digest
    if tls is None or not tls.ca_pem:
        raise MembershipError(f"this token belongs to a TLS cluster (CA sha256:{want[:12]}…): "
                              "pass --tlsverify --tlscacert/--tlscert/--tlskey")
    have = tls.ca_digest()
    if have != want:
        raise MembershipError(f"--tlscacert is not the cluster's CA: the token names sha256:{want[:12]}…, "
                              f"the file is sha256:{have[:12]}…")


def open_membership(url: str, discovery_addr: str | None = None, tls=None, etcd_tls=None) -> Membership:
    """The Membership for a discovery URL; raises MembershipError for a bad URL.

    `tls` (swarmd.common.tls.TLSConfig) secures the gRPC channels to the discovery daemon or agents;
    `etcd_tls` (swarmd.common.etcd_tls.EtcdTLS) the channels to etcd for `etcd://` (other schemes ignore it).
    """
    from swarmd.common.membership import urls
    parsed = _parse(url)
    if isinstance(parsed, urls.TokenURL):
        from swarmd.common.membership.token_client import TokenMembership
        check_ca_digest(parsed, tls)
        return TokenMembership(parsed.token, _need_addr(discovery_addr), tls=tls)
    if isinstance(parsed, urls.EtcdURL):
        from swarmd.common.membership.etcd_client import EtcdMembership
        return EtcdMembership(parsed.endpoints, parsed.prefix, etcd_tls=etcd_tls)
    from swarmd.common.membership.static import StaticMembership
    return StaticMembership(parsed, tls=tls)


def open_registrar(url: str, discovery_addr: str | None = None, tls=None, etcd_tls=None) -> Registrar:
    """The Registrar for a discovery URL; raises MembershipError for a bad URL (`tls`, `etcd_tls`:
    as for open_membership)."""
    from swarmd.common.membership import urls
    parsed = _parse(url)
    if isinstance(parsed, urls.TokenURL):
        from swarmd.common.membership.token_client import TokenRegistrar
        check_ca_digest(parsed, tls)
        return TokenRegistrar(parsed.token, _need_addr(discovery_addr), tls=tls)
    if isinstance(parsed, urls.EtcdURL):
        from swarmd.common.membership.etcd_client import EtcdRegistrar
        return EtcdRegistrar(parsed.endpoints, parsed.prefix, etcd_tls=etcd_tls)
    from swarmd.common.membership.static import StaticRegistrar
    return StaticRegistrar()


__all__ = [
    "MemberEvent", "MembershipError", "MembershipUnavailable", "Membership", "Registrar",
    "open_membership", "open_registrar",
]
