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
from cryptography.exceptions import InvalidSignature
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



def with_leaf_extensions(builder: x509.CertificateBuilder, usages: list, ca_key) -> x509.CertificateBuilder:
    """A leaf certificate's extensions: no CA, signing and key agreement, `usages`, its issuer's key."""
    return (builder
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=True, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False))

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
               .not_valid_after(min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)))
    builder = with_leaf_extensions(builder, usages, ca_key)
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


# -- bootstrap mode: certificates issued against join tokens ----------------------------------
#
# As SwarmKit's, a bootstrap certificate names its cluster in O and its role in OU; CN is the
# node's ID (or the manager's). Its subject alternative names hold `<role>.<cluster ID>`, the name
# a peer dials it by (a manager checks that an agent's certificate names the manager's own cluster
# that way), plus the hosts its CSR asks for (a manager's Docker API addresses).

ROLE_WORKER = "swarm-worker"
ROLE_MANAGER = "swarm-manager"
ROLE_ADMIN = "swarm-admin"
NODE_ROLES = (ROLE_WORKER, ROLE_MANAGER)
DEFAULT_CERT_EXPIRY = 90 * 86400.0
MIN_CERT_EXPIRY = 10.0
MAX_REQUESTED_HOSTS = 16
_LIFETIME_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class Identity:
    """Who a bootstrap certificate says its holder is."""
    common_name: str
    cluster: str
    role: str
    serial: int
    not_before: datetime.datetime
    not_after: datetime.datetime


def parse_lifetime(text: str) -> float:
    """'40s', '2h', '90d', '30m' or plain seconds -> seconds; ValueError for anything else or for
    less than MIN_CERT_EXPIRY (a certificate must live long enough to be renewed)."""
    text = str(text).strip().lower()
    unit = text[-1:] if text[-1:] in _LIFETIME_UNITS else "s"
    number = text[:-1] if text[-1:] in _LIFETIME_UNITS else text
    try:
        seconds = float(number) * _LIFETIME_UNITS[unit]
    except ValueError:
        raise ValueError(f"invalid certificate lifetime {text!r}: use e.g. 40s, 2h, 90d") from None
    if not seconds >= MIN_CERT_EXPIRY:
        raise ValueError(f"certificate lifetime {text!r} is too short: at least {MIN_CERT_EXPIRY:g}s")
    return seconds


def role_name(role: str, cluster: str) -> str:
    """The DNS name a bootstrap certificate carries for its role in its cluster."""
    return f"{role}.{cluster}"


def make_csr(common_name: str, hosts: list[str] | tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    """(CSR PEM, private key PEM): a new key that stays with the caller, and the request for it."""
    key = _key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
    names = _san(list(hosts))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def requested_hosts(csr) -> list[x509.GeneralName]:
    """The host names and addresses a CSR asks for; the role names are the CA's to give, never asked."""
    try:
        names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out = [n for n in names if isinstance(n, (x509.DNSName, x509.IPAddress))
           and not (isinstance(n, x509.DNSName) and n.value.lower().startswith("swarm-"))]
    if len(out) > MAX_REQUESTED_HOSTS:
        raise PKIError(f"a certificate request may name at most {MAX_REQUESTED_HOSTS} hosts")
    return out


def load_csr(csr_pem: bytes):
    """A CSR whose signature holds (its holder has the key); PKIError otherwise."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise PKIError(f"unreadable certificate request: {exc}") from None
    if not csr.is_signature_valid:
        raise PKIError("the certificate request's signature does not verify")
    return csr


def csr_common_name(csr) -> str:
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def sign_csr(ca: Issued, csr_pem: bytes, *, cluster: str, role: str, common_name: str,
             lifetime: float, hosts: list[str] | None = None) -> bytes:
    """A certificate for the CSR's key: CN `common_name`, O `cluster`, OU `role`, living `lifetime`
    seconds (never past the CA). `hosts` are added to what the CSR asks for (the CA's own names)."""
    csr = load_csr(csr_pem)
    ca_cert, ca_key = load_pair(ca)
    now = _now()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    names: list[x509.GeneralName] = []
    if role != ROLE_ADMIN:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
        names = (([x509.DNSName(role_name(role, cluster))] if cluster else [])
                 + requested_hosts(csr) + _san(list(hosts or [])))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role)])
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(ca_cert.subject)
               .public_key(csr.public_key())
               .serial_number(x509.random_serial_number())
               # a little earlier than now, for clocks a little behind; in proportion, so that a short
               # lifetime (tests) still leaves the renewal window (50-80 %) ahead
               .not_valid_before(now - datetime.timedelta(seconds=min(60.0, lifetime / 10)))
               .not_valid_after(min(now + datetime.timedelta(seconds=lifetime), ca_cert.not_valid_after_utc)))
    builder = with_leaf_extensions(builder, usages, ca_key)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(dict.fromkeys(names))), critical=False)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def identity(cert_pem: bytes) -> Identity:
    """The identity a (bootstrap) certificate carries; PKIError when it does not parse."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise PKIError(f"unreadable certificate: {exc}") from None

    def one(oid) -> str:
        values = cert.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""
    return Identity(one(NameOID.COMMON_NAME), one(NameOID.ORGANIZATION_NAME),
                    one(NameOID.ORGANIZATIONAL_UNIT_NAME), cert.serial_number,
                    cert.not_valid_before_utc, cert.not_valid_after_utc)


def bundle(pem: bytes) -> list:
    """Every certificate of a PEM bundle, in order; PKIError when none parses."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise PKIError(f"unreadable certificate bundle: {exc}") from None
    return certs


def der_digest(cert) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def issued_by(cert_pem: bytes, bundle_pem: bytes) -> bool:
    """Whether one of the bundle's CA certificates signed `cert_pem` (which must parse)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    for ca_cert in bundle(bundle_pem):
        try:
            cert.verify_directly_issued_by(ca_cert)
            return True
        except (InvalidSignature, ValueError, TypeError):      # another CA's, or another key type
            continue
    return False


# A joining node has no certificate yet, and grpcio can only require a client certificate or not
# ask for one at all (it cannot ask and accept none). So the discovery daemon also trusts a
# "bootstrap CA" whose key anyone holding the token can derive from the cluster CA's digest, and a
# joining node presents a certificate from it: it proves nothing but that the node read a token's
# digest, and the daemon lets it call nothing but GetCACertificate and IssueCertificate.

BOOTSTRAP_OU = "swarm-bootstrap"


def _bootstrap_key(digest: str) -> ec.EllipticCurvePrivateKey:
    seed = int.from_bytes(hashlib.sha256(b"swarmd bootstrap CA\0" + digest.encode()).digest(), "big")
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551     # P-256's group order
    return ec.derive_private_key(seed % (order - 1) + 1, ec.SECP256R1())


def _bootstrap_name(digest: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"swarmd bootstrap {digest[:16]}"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, BOOTSTRAP_OU)])


def bootstrap_ca_pem(digest: str) -> bytes:
    """The bootstrap CA's certificate for the cluster CA of `digest` (what the daemon trusts)."""
    key = _bootstrap_key(digest)
    name = _bootstrap_name(digest)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(int(digest[:30], 16) or 1)
            .not_valid_before(datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
            .not_valid_after(datetime.datetime(2099, 12, 31, tzinfo=datetime.timezone.utc))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=False,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def bootstrap_client(digest: str) -> Issued:
    """A throwaway client certificate from the bootstrap CA of `digest` (valid for an hour)."""
    ca_key = _bootstrap_key(digest)
    key = _key()
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "joining node"),
                                     x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, BOOTSTRAP_OU)]))
            .issuer_name(_bootstrap_name(digest)).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def peer_refusal(peer: Identity | None, cluster: str, roles: tuple[str, ...]) -> str | None:
    """Why a caller may not act on `cluster` with a call open to `roles`, or None when it may.
    An administrator certificate (OU swarm-admin) acts on any cluster, where the call allows it."""
    if peer is None:
        if roles == (ROLE_ADMIN,):
            return "creating clusters and join tokens needs an administrator certificate (`swarm create --ca-dir`)"
        return "this call needs a certificate issued by the cluster CA (join with a token first)"
    if peer.role == ROLE_ADMIN:
        return None if ROLE_ADMIN in roles else "an administrator certificate cannot make this call"
    if peer.role not in roles:
        return f"a {peer.role} certificate cannot make this call (it needs {' or '.join(roles)})"
    if not cluster or peer.cluster != cluster:
        return "this certificate belongs to another cluster"
    return None
