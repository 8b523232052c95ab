"""TLS to etcd: the `--etcd-cacert`, `--etcd-cert` and `--etcd-key` flags and what they make
(the secure channel itself is opened by swarmd.common.membership.etcd_secure_client).

Production etcd usually runs with `--client-cert-auth`: give `--etcd-cert`/`--etcd-key` (a
certificate with clientAuth signed by etcd's `--trusted-ca-file`) and `--etcd-cacert` (the CA
that signed etcd's server certificate; without it the system roots are used).

Which connections use TLS:
- `swarm discovery --etcd`: an `https://` endpoint means TLS, an `http://` one plain; a bare
  `HOST:PORT` uses TLS exactly when one of the flags is given.
- the `etcd://` discovery scheme (`swarm manage`, `swarm join`, `swarm list`): the flags decide.
"""
from __future__ import annotations

from dataclasses import dataclass

from swarmd.common.config import add_flag
from swarmd.common.tls import TLSConfigError, check_pem_files, read_pem

FLAGS = ("--etcd-cacert", "--etcd-cert", "--etcd-key")


class EtcdTLSError(TLSConfigError):
    """etcd TLS flags that cannot work together, or files that cannot be read."""


def add_etcd_tls_flags(parser, scope: str = "") -> None:
    """Adds the three flags; `scope` (e.g. "etcd:// discovery URLs") is appended to their help."""
    note = f" ({scope})" if scope else ""
    add_flag(parser, "--etcd-cacert", default=None,
             help=f"CA certificate (PEM) that signed etcd's server certificate; default: system roots{note}")
    add_flag(parser, "--etcd-cert", default=None,
             help=f"client certificate (PEM) presented to etcd (with --etcd-client-cert-auth){note}")
    add_flag(parser, "--etcd-key", default=None, help=f"private key (PEM) of --etcd-cert{note}")


@dataclass(frozen=True)
class EtcdTLS:
    """What a secure channel to etcd is made of; None fields: system roots, no client certificate."""

    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    cacert_path: str | None = None
    cert_path: str | None = None

    @classmethod
    def from_files(cls, cacert: str | None, cert: str | None, key: str | None) -> "EtcdTLS":
        if bool(cert) != bool(key):
            raise EtcdTLSError("--etcd-cert and --etcd-key go together")
        try:
            ca_pem = read_pem(cacert, "--etcd-cacert") if cacert else None
            cert_pem = read_pem(cert, "--etcd-cert") if cert else None
            key_pem = read_pem(key, "--etcd-key") if key else None
        except TLSConfigError as exc:
            raise EtcdTLSError(str(exc)) from None
        try:
            check_pem_files(cacert, cert, key, ("--etcd-cacert", "--etcd-cert", "--etcd-key"))
        except TLSConfigError as exc:
            raise EtcdTLSError(str(exc)) from None
        return cls(ca_pem, cert_pem, key_pem, cacert_path=cacert, cert_path=cert)

    def channel_credentials(self):
        import grpc
        return grpc.ssl_channel_credentials(root_certificates=self.ca_pem, private_key=self.key_pem,
                                            certificate_chain=self.cert_pem)

    def describe(self) -> str:
        """For start-up logs: which CA, and whether a client certificate is presented."""
        ca = self.cacert_path or "system roots"
        return f"ca={ca} client-cert={self.cert_path or 'none'}"


def from_args(args) -> EtcdTLS | None:
    """The TLS the flags ask for, or None when none of them is given."""
    cacert = getattr(args, "etcd_cacert", None)
    cert = getattr(args, "etcd_cert", None)
    key = getattr(args, "etcd_key", None)
    if not (cacert or cert or key):
        return None
    return EtcdTLS.from_files(cacert, cert, key)


def for_endpoints(etcd: str, flags: EtcdTLS | None) -> EtcdTLS | None:
    """The TLS for a `--etcd` endpoint list: https:// means TLS (with the flags' files, or the
    system roots), http:// plain, a bare HOST:PORT follows the flags."""
    schemes = {p.strip().lower().split("://", 1)[0] for p in etcd.split(",") if "://" in p}
    if {"http", "https"} <= schemes:
        raise EtcdTLSError(f"--etcd {etcd}: mixes http:// and https:// endpoints")
    if "https" in schemes:
        return flags or EtcdTLS()
    if "http" in schemes and flags is not None:
        raise EtcdTLSError(f"--etcd {etcd} is plain http:// but etcd TLS files are given "
                           f"({', '.join(FLAGS)}): use https:// endpoints")
    return flags
