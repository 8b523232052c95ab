"""TLS for every swarmd listener and channel, built in one place from classic swarm's flags.

`--tls` serves TLS with `--tlscert`/`--tlskey`; `--tlsverify` (which implies `--tls`) also
requires peers to present a certificate signed by `--tlscacert`: the Docker API then refuses a
client without one at the handshake, and gRPC runs with mutual TLS. A daemon's one key pair is
used both for what it serves and for what it calls (node certificates carry serverAuth and
clientAuth), and outbound channels always verify the server against `--tlscacert`.
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from swarmd.common.config import ConfigError, add_flag


class TLSConfigError(ConfigError):
    """TLS flags that cannot work together, or files that cannot be read."""


def add_tls_flags(parser) -> None:
    add_flag(parser, "--tls", action="store_true", default=False,
             help="use TLS (implied by --tlsverify)")
    add_flag(parser, "--tlsverify", action="store_true", default=False,
             help="use TLS and require peers to present a certificate signed by --tlscacert")
    add_flag(parser, "--tlscacert", default=None, help="the cluster CA certificate (PEM)")
    add_flag(parser, "--tlscert", default=None, help="this daemon's certificate (PEM)")
    add_flag(parser, "--tlskey", default=None, help="this daemon's private key (PEM)")


def read_pem(path: str, flag: str) -> bytes:
    """The file's bytes, or TLSConfigError naming `flag` and the file."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"{flag} {path}: {exc.strerror or exc}") from None


def check_pem_files(cacert: str | None, cert: str | None, key: str | None,
                    flags: tuple[str, str, str] = ("--tlscacert", "--tlscert", "--tlskey")) -> None:
    """Loads the files as TLS would, so that a bad one stops the daemon at start-up, naming the
    flag and the file, rather than at the first handshake. Raises TLSConfigError."""
    if cert:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as exc:
            raise TLSConfigError(f"{flags[1]} {cert} / {flags[2]} {key}: {exc}") from None
    if cacert:
        try:
            ssl.create_default_context(cafile=cacert)
        except (ssl.SSLError, OSError) as exc:
            raise TLSConfigError(f"{flags[0]} {cacert}: {exc}") from None


@dataclass(frozen=True)
class TLSConfig:
    ca_pem: bytes | None
    cert_pem: bytes | None
    key_pem: bytes | None
    verify: bool                      # require and verify the peer's certificate
    cacert_path: str | None = None
    cert_path: str | None = None
    key_path: str | None = None

    @classmethod
    def from_files(cls, cacert: str | None, cert: str | None, key: str | None, verify: bool = True) -> "TLSConfig":
        if verify and not cacert:
            raise TLSConfigError("--tlsverify needs --tlscacert (the CA that signs peers' certificates)")
        if bool(cert) != bool(key):
            raise TLSConfigError("--tlscert and --tlskey go together")
        cfg = cls(ca_pem=read_pem(cacert, "--tlscacert") if cacert else None,
                  cert_pem=read_pem(cert, "--tlscert") if cert else None,
                  key_pem=read_pem(key, "--tlskey") if key else None,
                  verify=verify, cacert_path=cacert, cert_path=cert, key_path=key)
        check_pem_files(cacert, cert, key)
        return cfg

    @classmethod
    def from_args(cls, args) -> "TLSConfig | None":
        """None when neither --tls nor --tlsverify is given (plain mode)."""
        if not (getattr(args, "tls", False) or getattr(args, "tlsverify", False)):
            return None
        return cls.from_files(args.tlscacert, args.tlscert, args.tlskey, verify=bool(args.tlsverify))

    def describe(self) -> str:
        """For start-up logs: the mode and the files (never their contents)."""
        mode = "verify" if self.verify else "tls"
        return f"{mode} ca={self.cacert_path or 'none'} cert={self.cert_path or 'none'}"

    def _need_pair(self, what: str) -> None:
        if not self.cert_pem:
            raise TLSConfigError(f"{what} with TLS needs --tlscert and --tlskey")

    # -- HTTP (the Docker API) -------------------------------------------------------------

    def server_ssl_context(self) -> ssl.SSLContext:
        self._need_pair("serving")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_path, self.key_path)
        if self.verify:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=self.cacert_path)
        return ctx

    def client_ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.cacert_path)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_path:
            ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx

    # -- gRPC ------------------------------------------------------------------------------

    def grpc_server_credentials(self):
        import grpc
        self._need_pair("serving gRPC")
        return grpc.ssl_server_credentials([(self.key_pem, self.cert_pem)],
                                           root_certificates=self.ca_pem if self.verify else None,
                                           require_client_auth=self.verify)

    def grpc_channel_credentials(self):
        import grpc
        return grpc.ssl_channel_credentials(root_certificates=self.ca_pem, private_key=self.key_pem,
                                            certificate_chain=self.cert_pem)

    def ca_digest(self) -> str | None:
        if not self.ca_pem:
            return None
        from swarmd.common.pki import PKIError, ca_digest
        try:
            return ca_digest(self.ca_pem)
        except PKIError as exc:
            raise TLSConfigError(f"--tlscacert {self.cacert_path}: {exc}") from None


def channel_credentials(tls: TLSConfig | None):
    """gRPC channel credentials for `tls`, or None for a plain channel."""
    return tls.grpc_channel_credentials() if tls is not None else None


def grpc_target(addr: str) -> str:
    """`HOST:PORT`, or several as `HOST:PORT,HOST:PORT` (e.g. redundant discovery daemons), as a
    gRPC target. Several addresses become one channel that uses the first that answers and moves
    on when it fails; names in a list are resolved once, here."""
    parts = [p.strip() for p in addr.split(",") if p.strip()]
    if len(parts) <= 1:
        return addr
    import ipaddress
    import socket
    v4, v6 = [], []
    for part in parts:
        host, sep, port = part.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"invalid address {part!r} in {addr!r}: use HOST:PORT")
        host = host.strip("[]")
        try:
            ips = [ipaddress.ip_address(host)]
        except ValueError:
            found = [ipaddress.ip_address(info[4][0])
                     for info in socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)]
            ips = [ip for ip in found if ip.version == 4] or found     # a name: its IPv4 addresses first
        for ip in ips:
            (v4 if ip.version == 4 else v6).append(f"{ip}:{port}" if ip.version == 4 else f"[{ip}]:{port}")
    if v4 and v6:
        raise ValueError(f"{addr!r} mixes IPv4 and IPv6 addresses: use one family")
    return ("ipv4:" + ",".join(dict.fromkeys(v4))) if v4 else ("ipv6:" + ",".join(dict.fromkeys(v6)))


def open_channel(addr: str, tls: TLSConfig | None = None, options=(), verify_as: str = ""):
    """A grpc.aio channel to `addr` (one address or a comma-separated list, see grpc_target):
    secure (verifying the server) with `tls`, plain without. `verify_as`: the list as the user
    wrote it, when `addr` is that list reordered (the name to verify against stays its first host)."""
    import grpc
    target = grpc_target(addr)
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    if target != addr:
        # one name to verify every server of the list against: the first address's host, so each
        # server's certificate must name it too (`swarm ca issue --host A --host B` for each)
        first = (verify_as or addr).split(",")[0].strip().rpartition(":")[0].strip("[]")
        options = (*options, ("grpc.ssl_target_name_override", first))
    return grpc.aio.secure_channel(target, tls.grpc_channel_credentials(), options=options)


def add_server_port(server, listen: str, tls: TLSConfig | None) -> int:
    """Adds a secure (with `tls`) or plain port to a grpc.aio server; returns the bound port."""
    if tls is None:
        return server.add_insecure_port(listen)
    return server.add_secure_port(listen, tls.grpc_server_credentials())
