"""A small certificate authority for a swarmd cluster, with the `cryptography` package.

`swarm ca init` makes a CA (ca.pem, ca-key.pem); `swarm ca issue` signs a key pair for a node,
a manager or a client and writes it in the layout the docker CLI reads from DOCKER_CERT_PATH
(ca.pem, cert.pem, key.pem). Keys are ECDSA P-256. Node and manager certificates serve and
call (serverAuth + clientAuth), so one pair secures a daemon's listener and its outbound gRPC;
client certificates only call. The CA's digest (SHA-256 of its DER form) is what a
digest-carrying join token names.
"""
from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KINDS = ("node", "manager", "client")
CA_DAYS = 3650
CERT_DAYS = 825
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


class PKIError(Exception):
    """A CA or certificate that cannot be made or read; the message says which file and why."""


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, PEM-encoded."""
    cert_pem: bytes
    key_pem: bytes


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def create_ca(common_name: str = "swarmd CA", days: int = CA_DAYS) -> Issued:
    """A self-signed CA certificate that may sign leaf certificates only (path length 0)."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "swarmd")])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _san(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for h in hosts:
        h = h.strip()
        if not h:
            continue
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h.strip("[]"))))
        except ValueError:
            names.append(x509.DNSName(h))
    return names


def issue(ca: Issued, common_name: str, kind: str = "node", hosts: list[str] | None = None,
          days: int = CERT_DAYS) -> Issued:
    """A certificate signed by `ca` for `kind` (node, manager or client).

    Node and manager certificates name `hosts` (DNS names or IP addresses; default: loopback and
    localhost) as subject alternative names, which clients check against the address they dial.
    """
    if kind not in KINDS:
        raise PKIError(f"unknown certificate kind {kind!r}: expected one of {', '.join(KINDS)}")
    if not common_name:
        raise PKIError("a certificate needs a name (--name)")
    ca_cert, ca_key = load_pair(ca)
    key = _key()
    now = _now()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if kind != "client":
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, kind)]))
               .issuer_name(ca_cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                            content_commitment=False, data_encipherment=False,
                                            key_agreement=True, key_cert_sign=False, crl_sign=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if kind != "client":
        names = _san(list(hosts) if hosts else list(DEFAULT_HOSTS))
        if not names:
            raise PKIError("a node or manager certificate needs at least one host name or address")
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def load_pair(ca: Issued):
    """(certificate, private key) objects of a PEM pair; PKIError if they do not parse or match."""
    try:
        cert = x509.load_pem_x509_certificate(ca.cert_pem)
        key = serialization.load_pem_private_key(ca.key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PKIError(f"unreadable certificate or key: {exc}") from None
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise PKIError("the private key does not belong to the certificate")
    return cert, key


def ca_digest(ca_cert_pem: bytes) -> str:
    """SHA-256 of the (first) certificate's DER form, 64 lowercase hex characters."""
    try:
        cert = x509.load_pem_x509_certificate(ca_cert_pem)
    except ValueError as exc:
        raise PKIError(f"unreadable CA certificate: {exc}") from None
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


# -- files ------------------------------------------------------------------------------------

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def write_ca(directory: Path, ca: Issued, force: bool = False) -> None:
    """ca.pem (0644) and ca-key.pem (0600) in `directory`; refuses to overwrite unless `force`."""
    directory = Path(directory)
    if not force and (directory / CA_KEY).exists():
        raise PKIError(f"{directory / CA_KEY} exists: a CA is already there (use --force to replace it)")
    _write(directory / CA_CERT, ca.cert_pem, 0o644)
    _write(directory / CA_KEY, ca.key_pem, 0o600)


def read_ca(directory: Path) -> Issued:
    directory = Path(directory)
    try:
        ca = Issued((directory / CA_CERT).read_bytes(), (directory / CA_KEY).read_bytes())
    except OSError as exc:
        raise PKIError(f"cannot read the CA in {directory}: {exc.strerror or exc} ({exc.filename})") from None
    load_pair(ca)
    return ca


def write_issued(directory: Path, ca_cert_pem: bytes, issued: Issued) -> None:
    """ca.pem, cert.pem and key.pem (0600) in `directory`: what DOCKER_CERT_PATH and --tls* expect."""
    directory = Path(directory)
    _write(directory / "ca.pem", ca_cert_pem, 0o644)
    _write(directory / "cert.pem", issued.cert_pem, 0o644)
    _write(directory / "key.pem", issued.key_pem, 0o600)
