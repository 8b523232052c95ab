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
from dataclasses import dataclass

from swarmd.common import pki
from swarmd.common import ca_rotation as rotation
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


@dataclass(frozen=True)
class _View:
    state: rotation.CAState
    ca: pki.Issued
    bundle_pem: bytes
    digest: str
    digests: tuple[str, ...]
    roots: dict


class Authority:
    """The CA of D, as its rotation phase has it (discovery.rotation): who signs the nodes'
    certificates, who signs the daemon's own serving certificate, which roots are trusted. D is
    read again by `refresh` (the daemon calls it every second or so); a snapshot swaps whole, so
    gRPC's threads never see half of one."""

    def __init__(self, state: rotation.CAState, lifetime: float, hosts: list[str], directory: str | None = None):
        self.lifetime = lifetime
        self.hosts = hosts
        self.directory = directory
        self._lock = threading.Lock()        # the certificate fetcher runs on gRPC's threads
        self._serving: tuple[bytes, bytes] | None = None
        self._serving_for: tuple[str, bytes] = ("", b"")
        self._renew_at = 0.0
        self._set(state)

    def _set(self, state: rotation.CAState) -> None:
        # one assignment: gRPC's threads and the handlers read a whole view, old or new
        self._view = _View(state, state.leaf_signer, state.bundle_pem, pki.ca_digest(state.serving_signer.cert_pem),
                           tuple(pki.der_digest(c) for c in pki.bundle(state.bundle_pem)), state.digests)

    state = property(lambda self: self._view.state)
    phase = property(lambda self: self._view.state.phase)
    ca = property(lambda self: self._view.ca, doc="who signs the nodes' certificates")
    bundle_pem = property(lambda self: self._view.bundle_pem, doc="the roots nodes trust")
    digest = property(lambda self: self._view.digest, doc="the serving CA's digest: what join tokens name")
    digests = property(lambda self: self._view.digests, doc="the digests of the bundle's roots")
    roots = property(lambda self: self._view.roots, doc='"old"/"new" -> digest')

    @classmethod
    def from_dir(cls, directory: str, lifetime: float, listen: str) -> "Authority":
        return cls(rotation.read(directory), lifetime, server_hosts(listen), directory)

    def refresh(self) -> bool:
        """Reads D again; True when what it holds changed. A D caught mid-change (another daemon
        finishing a rotation) is read again next time."""
        if self.directory is None:
            return False
        try:
            state = rotation.read(self.directory)
        except (rotation.RotationError, pki.PKIError):
            return False
        if state == self.state:
            return False
        self._set(state)
        return True

    def sign(self, csr_pem: bytes, cluster: str, role: str, common_name: str) -> bytes:
        return pki.sign_csr(self.ca, csr_pem, cluster=cluster, role=role, common_name=common_name,
                            lifetime=self.lifetime)

    def peer(self, context) -> Identity | None:
        return peer_identity(context.auth_context(), self.bundle_pem)

    def signer_of(self, cert_pem: bytes) -> str:
        """The digest of whichever of D's CAs (old or new) signed `cert_pem`; "" for neither."""
        view = self._view
        for which, digest in view.roots.items():
            try:
                if pki.issued_by(cert_pem, view.state.ca(which).cert_pem):
                    return digest
            except (pki.PKIError, ValueError):
                return ""
        return ""

    def serving_pair(self) -> tuple[bytes, bytes]:
        """(key, certificate chain) to serve with: issued anew past a random 50–80 % of its life,
        or when the rotation changes its signer or the bundle."""
        import time
        with self._lock:
            view = self._view
            signer, bundle_pem = view.state.serving_signer, view.bundle_pem
            wanted = (pki.ca_digest(signer.cert_pem), bundle_pem)
            if self._serving is None or time.time() >= self._renew_at or self._serving_for != wanted:
                csr, key = pki.make_csr("swarm-discovery", self.hosts)
                cert = pki.sign_csr(signer, csr, cluster="", role="swarm-discovery",
                                    common_name="swarm-discovery", lifetime=self.lifetime, hosts=self.hosts)
                ident = pki.identity(cert)
                life = (ident.not_after - ident.not_before).total_seconds()
                self._renew_at = ident.not_before.timestamp() + life * random.uniform(0.5, 0.8)
                # the roots go with the chain: a joining node reads them from the handshake
                self._serving = (key, cert + bundle_pem)
                self._serving_for = wanted
            return self._serving

    def client_roots(self) -> bytes:
        """Whom the daemon accepts at the handshake: this CA's certificates, and the bootstrap CA of
        each of its roots (see swarmd.common.pki: a joining node has no certificate yet)."""
        view = self._view
        return view.bundle_pem + b"".join(pki.bootstrap_ca_pem(d) for d in view.digests)

    def server_credentials(self):
        import grpc

        def config(key_chain, roots):
            return grpc.ssl_server_certificate_configuration([key_chain], root_certificates=roots)
        current = [(self.serving_pair(), self.client_roots())]

        def fetch():
            now = (self.serving_pair(), self.client_roots())
            if now[0] is current[0][0] and now[1] == current[0][1]:
                return None          # unchanged: gRPC keeps the configuration it has
            current[0] = now
            return config(*now)
        return grpc.dynamic_ssl_server_credentials(config(*current[0]), fetch,
                                                   require_client_authentication=True)


__all__ = ["Authority", "NODE_ROLES", "peer_identity", "refusal", "server_hosts", "valid_common_name"]
