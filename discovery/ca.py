"""The discovery daemon as the clusters' certificate authority (`swarm discovery --ca-dir D`).

It serves gRPC with a certificate it issues itself (re-issued at each handshake past 50–80 % of its
life, so it never expires under a running daemon), trusts the CA bundle in D for clients, and signs
certificate requests: against a join token (IssueCertificate) or against the caller's current
certificate (RenewCertificate). `refusal` is the one policy every other call passes through: the
caller's certificate must come from this CA, name the cluster the call acts on (O) and hold a role
(OU) the call allows.
"""
from __future__ import annotations

import ipaddress
import random
import socket
import threading
from pathlib import Path

from swarmd.common import pki
from swarmd.common.pki import NODE_ROLES, Identity

_NODE_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def valid_common_name(name: str) -> bool:
    """A node or manager ID as the CN of a certificate request: 8 to 64 of [A-Za-z0-9_.-]."""
    return 8 <= len(name) <= 64 and name[0].isalnum() and set(name) <= _NODE_ID_CHARS


refusal = pki.peer_refusal      # the one policy, shared with the agent's check of its callers


def server_hosts(listen: str) -> list[str]:
    """The names a client may dial the daemon by: the --listen host, or for a wildcard this host's
    names and addresses; always loopback."""
    host = listen.rpartition(":")[0].strip("[]")
    names = ["localhost", "127.0.0.1", "::1"]
    wildcard = host in ("", "0.0.0.0", "::")
    if not wildcard:
        names.insert(0, host)
    else:
        hostname = socket.gethostname()
        names += [hostname, socket.getfqdn()]
        try:
            names += [info[4][0] for info in socket.getaddrinfo(hostname, None)]
        except OSError:         # a host without a resolvable name still serves loopback and its name
            pass
    out = []
    for name in names:
        try:
            name = str(ipaddress.ip_address(name.split("%")[0]))
        except ValueError:
            pass
        if name and name not in out:
            out.append(name)
    return out


def peer_identity(auth_context: dict, bundle_pem: bytes) -> Identity | None:
    """The identity of a gRPC peer whose certificate this CA issued; None for none (or for the
    bootstrap CA's certificates, which a joining node presents)."""
    pems = auth_context.get("x509_pem_cert") or []
    if not pems:
        return None
    try:
        if not pki.issued_by(pems[0], bundle_pem):
            return None
        return pki.identity(pems[0])
    except (pki.PKIError, ValueError):
        return None


class Authority:
    """The CA of D (ca.pem may hold several roots: the first signs), its lifetime for what it
    issues, and the daemon's own serving certificate."""

    def __init__(self, ca: pki.Issued, bundle_pem: bytes, lifetime: float, hosts: list[str]):
        self.ca = ca
        self.bundle_pem = bundle_pem
        self.lifetime = lifetime
        self.hosts = hosts
        self.digest = pki.ca_digest(ca.cert_pem)
        self.digests = tuple(pki.der_digest(c) for c in pki.bundle(bundle_pem))
        self._lock = threading.Lock()        # the certificate fetcher runs on gRPC's threads
        self._serving: tuple[bytes, bytes] | None = None
        self._renew_at = 0.0

    @classmethod
    def from_dir(cls, directory: str, lifetime: float, listen: str) -> "Authority":
        ca = pki.read_ca(Path(directory))
        return cls(ca, ca.cert_pem, lifetime, server_hosts(listen))

    def sign(self, csr_pem: bytes, cluster: str, role: str, common_name: str) -> bytes:
        return pki.sign_csr(self.ca, csr_pem, cluster=cluster, role=role, common_name=common_name,
                            lifetime=self.lifetime)

    def peer(self, context) -> Identity | None:
        return peer_identity(context.auth_context(), self.bundle_pem)

    def serving_pair(self) -> tuple[bytes, bytes]:
        """(key, certificate chain) to serve with: issued anew past a random 50–80 % of its life."""
        import time
        with self._lock:
            if self._serving is None or time.time() >= self._renew_at:
                csr, key = pki.make_csr("swarm-discovery", self.hosts)
                cert = pki.sign_csr(self.ca, csr, cluster="", role="swarm-discovery",
                                    common_name="swarm-discovery", lifetime=self.lifetime, hosts=self.hosts)
                ident = pki.identity(cert)
                life = (ident.not_after - ident.not_before).total_seconds()
                self._renew_at = ident.not_before.timestamp() + life * random.uniform(0.5, 0.8)
                # the roots go with the chain: a joining node reads them from the handshake
                self._serving = (key, cert + self.bundle_pem)
            return self._serving

    def client_roots(self) -> bytes:
        """Whom the daemon accepts at the handshake: this CA's certificates, and the bootstrap CA of
        each of its roots (see swarmd.common.pki: a joining node has no certificate yet)."""
        return self.bundle_pem + b"".join(pki.bootstrap_ca_pem(d) for d in self.digests)

    def server_credentials(self):
        import grpc

        def config(key_chain):
            return grpc.ssl_server_certificate_configuration([key_chain], root_certificates=self.client_roots())
        current = [self.serving_pair()]

        def fetch():
            pair = self.serving_pair()
            if pair is current[0]:
                return None          # unchanged: gRPC keeps the configuration it has
            current[0] = pair
            return config(pair)
        return grpc.dynamic_ssl_server_credentials(config(current[0]), fetch,
                                                   require_client_authentication=True)


__all__ = ["Authority", "NODE_ROLES", "peer_identity", "refusal", "server_hosts", "valid_common_name"]
