"""TLS for every swarmd listener and channel, built in one place from classic swarm's flags.

`--tls` serves TLS with `--tlscert`/`--tlskey`; `--tlsverify` (which implies `--tls`) also
requires peers to present a certificate signed by `--tlscacert`: the Docker API then refuses a
client without one at the handshake, and gRPC runs with mutual TLS. A daemon's one key pair is
used both for what it serves and for what it calls (node certificates carry serverAuth and
clientAuth), and outbound channels always verify the server against `--tlscacert`.

Bootstrap mode (a join token, no certificate flags) builds the same TLSConfig over `LiveCredentials`:
the certificate issued to the node, which it renews. What is built from it after a renewal uses the
new certificate and bundle: a gRPC server fetches them at each handshake, an SSL context hands each
new connection to a context built from the current files, and a channel (`RenewingChannel`) opens a new connection for the calls made after it, while the
calls and streams already open go on over the old one.
"""
from __future__ import annotations

import inspect
import ssl
import threading
from dataclasses import dataclass, field
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


class FollowingClientContext(ssl.SSLContext):
    """A client SSLContext that hands each new connection to the context `build()` returns (the
    current credentials'); asyncio and the ssl module call wrap_bio/wrap_socket once per connection."""

    def __new__(cls, build):
        return super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)

    def __init__(self, build):
        self._build = build

    def wrap_bio(self, *args, **kwargs):
        return self._build().wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args, **kwargs):
        return self._build().wrap_socket(*args, **kwargs)


class LiveCredentials:
    """A node's issued key pair and CA bundle, kept in files (cert.pem, key.pem, ca.pem in one
    directory) and swapped whole on renewal; `generation` counts the swaps. Contexts built from it
    are reloaded on each swap."""

    def __init__(self, directory: str | Path, ca_pem: bytes, cert_pem: bytes, key_pem: bytes):
        self.directory = Path(directory)
        self._lock = threading.Lock()         # gRPC's certificate fetcher reads from its own threads
        self._pems = (ca_pem, cert_pem, key_pem)
        self.generation = 0

    @property
    def ca_path(self) -> str:
        return str(self.directory / "ca.pem")

    @property
    def cert_path(self) -> str:
        return str(self.directory / "cert.pem")

    @property
    def key_path(self) -> str:
        return str(self.directory / "key.pem")

    def pems(self) -> tuple[bytes, bytes, bytes]:
        """(CA bundle, certificate, key), one consistent set."""
        with self._lock:
            return self._pems

    def swap(self, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> None:
        """Takes a renewed set (already written to the files by the caller) for what is built next."""
        with self._lock:
            self._pems = (ca_pem, cert_pem, key_pem)
            self.generation += 1


@dataclass(frozen=True)
class TLSConfig:
    ca_pem: bytes | None
    cert_pem: bytes | None
    key_pem: bytes | None
    verify: bool                      # require and verify the peer's certificate
    cacert_path: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    live: LiveCredentials | None = field(default=None, compare=False, repr=False)
    # the name a server's certificate must carry, instead of the host dialed (bootstrap mode: a
    # manager dials agents as `swarm-worker.<cluster ID>`, so only its own cluster's agents answer)
    server_name: str | None = None
    # bootstrap mode: gRPC servers also refuse a verified client whose certificate does not pass this
    peer_check: object = field(default=None, compare=False, repr=False)

    @classmethod
    def from_live(cls, live: LiveCredentials, verify: bool = True) -> "TLSConfig":
        ca, cert, key = live.pems()
        return cls(ca, cert, key, verify, live.ca_path, live.cert_path, live.key_path, live=live)

    def pems(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        return self.live.pems() if self.live is not None else (self.ca_pem, self.cert_pem, self.key_pem)

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

    def _server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_path, self.key_path)
        if self.verify:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=self.cacert_path)
        return ctx

    def server_ssl_context(self) -> ssl.SSLContext:
        """With live credentials, each handshake uses a context built from the current files: a
        context reloaded in place only ever adds roots, and a CA rotation must drop the old one.
        (The server-name callback runs at every handshake, with or without SNI.)"""
        self._need_pair("serving")
        ctx = self._server_context()
        if self.live is None:
            return ctx
        live = self.live
        current = [live.generation, ctx]

        def follow(sslobj, _server_name, _ctx):
            if current[0] != live.generation:
                current[:] = [live.generation, self._server_context()]
            if current[1] is not ctx:
                sslobj.context = current[1]
        ctx.sni_callback = follow
        return ctx

    def _client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.cacert_path)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_path:
            ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx

    def client_ssl_context(self) -> ssl.SSLContext:
        """With live credentials, each new connection is made with a context of the current files
        (as for the server: a context reloaded in place would keep a dropped root)."""
        if self.live is None:
            return self._client_context()
        live, current = self.live, [-1, None]

        def build() -> ssl.SSLContext:
            if current[0] != live.generation:
                current[:] = [live.generation, self._client_context()]
            return current[1]
        return FollowingClientContext(build)

    # -- gRPC ------------------------------------------------------------------------------

    def grpc_server_credentials(self):
        import grpc
        self._need_pair("serving gRPC")
        if self.live is None:
            return grpc.ssl_server_credentials([(self.key_pem, self.cert_pem)],
                                               root_certificates=self.ca_pem if self.verify else None,
                                               require_client_auth=self.verify)
        live = self.live

        def config():
            ca, cert, key = live.pems()
            return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)
        seen = [live.generation]

        def fetch():                    # at each handshake, on a gRPC thread: None keeps what it has
            if live.generation == seen[0]:
                return None
            seen[0] = live.generation
            return config()
        return grpc.dynamic_ssl_server_credentials(config(), fetch, require_client_authentication=True)

    def grpc_channel_credentials(self):
        import grpc
        ca, cert, key = self.pems()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    def ca_digest(self) -> str | None:
        if self.live is not None:
            return None             # bootstrap mode: the token's digest was checked when the node joined
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
    secure (verifying the server) with `tls`, plain without; with live credentials, a
    RenewingChannel. `verify_as`: the list as the user wrote it, when `addr` is that list
    reordered (the name to verify against stays its first host)."""
    import grpc
    target = grpc_target(addr)
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    if tls.server_name:
        options = (*options, ("grpc.ssl_target_name_override", tls.server_name))
    elif target != addr:
        # one name to verify every server of the list against: the first address's host, so each
        # server's certificate must name it too (`swarm ca issue --host A --host B` for each)
        first = (verify_as or addr).split(",")[0].strip().rpartition(":")[0].strip("[]")
        options = (*options, ("grpc.ssl_target_name_override", first))
    if tls.live is not None:
        return RenewingChannel(lambda: grpc.aio.secure_channel(target, tls.grpc_channel_credentials(), options=options),
                               tls.live)
    return grpc.aio.secure_channel(target, tls.grpc_channel_credentials(), options=options)


def add_server_port(server, listen: str, tls: TLSConfig | None) -> int:
    """Adds a secure (with `tls`) or plain port to a grpc.aio server; returns the bound port."""
    if tls is None:
        return server.add_insecure_port(listen)
    return server.add_secure_port(listen, tls.grpc_server_credentials())


def server_interceptors(tls: TLSConfig | None) -> list:
    """What a gRPC server adds for `tls`: the peer check of bootstrap mode, or nothing."""
    if tls is None or tls.peer_check is None:
        return []
    import grpc
    # grpc.aio takes only its own interceptor type; grpc is imported here, not by every CLI verb
    interceptor = type("PeerCheckInterceptor", (PeerCheck, grpc.aio.ServerInterceptor), {})
    return [interceptor(tls.peer_check)]


class RenewingChannel:
    """A grpc.aio channel stand-in over live credentials: each call goes to the channel opened with
    the credentials current at the call; a renewal opens a new one and leaves the old one to the
    calls and streams still open on it (they are closed with this channel)."""

    def __init__(self, open_fn, live: LiveCredentials):
        self._open = open_fn
        self._live = live
        self._generation = live.generation
        self._channel = open_fn()
        self._previous: list = []

    def current(self):
        if self._live.generation != self._generation:
            self._previous.append(self._channel)
            self._generation = self._live.generation
            self._channel = self._open()
        return self._channel

    def unary_unary(self, method, *args, **kwargs):
        return _RenewingCallable(self, "unary_unary", method, args, kwargs)

    def unary_stream(self, method, *args, **kwargs):
        return _RenewingCallable(self, "unary_stream", method, args, kwargs)

    def stream_unary(self, method, *args, **kwargs):
        return _RenewingCallable(self, "stream_unary", method, args, kwargs)

    def stream_stream(self, method, *args, **kwargs):
        return _RenewingCallable(self, "stream_stream", method, args, kwargs)

    def get_state(self, try_to_connect: bool = False):
        return self.current().get_state(try_to_connect)

    async def channel_ready(self) -> None:
        await self.current().channel_ready()

    async def wait_for_state_change(self, last_observed_state) -> None:
        await self.current().wait_for_state_change(last_observed_state)

    async def close(self, grace=None) -> None:
        for channel in [*self._previous, self._channel]:
            await channel.close(grace)
        self._previous = []

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class _RenewingCallable:
    """A stub's method on a RenewingChannel: the real multicallable of the current channel."""

    def __init__(self, owner: RenewingChannel, kind: str, method, args, kwargs):
        self._owner, self._kind, self._method, self._args, self._kwargs = owner, kind, method, args, kwargs
        self._bound = None          # (channel, multicallable)

    def __call__(self, *args, **kwargs):
        channel = self._owner.current()
        if self._bound is None or self._bound[0] is not channel:
            self._bound = (channel, getattr(channel, self._kind)(self._method, *self._args, **self._kwargs))
        return self._bound[1](*args, **kwargs)


class PeerCheck:
    """A grpc.aio server interceptor: refuses (PERMISSION_DENIED) a call whose client certificate
    `check(cert_pem or None)` finds fault with (it returns why, or None)."""

    def __init__(self, check):
        self.check = check

    async def _refuse_unless_allowed(self, context) -> None:
        import grpc
        pems = context.auth_context().get("x509_pem_cert") or [None]
        problem = self.check(pems[0])
        if problem:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, problem)

    def _wrap(self, behavior):
        if behavior is None:
            return None
        if inspect.isasyncgenfunction(behavior):
            async def streaming(request, context):
                await self._refuse_unless_allowed(context)
                async for item in behavior(request, context):
                    yield item
            return streaming

        async def call(request, context):
            await self._refuse_unless_allowed(context)
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result
        return call

    # grpc.aio.ServerInterceptor's one method (duck-typed: grpc is imported lazily here)
    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return handler._replace(unary_unary=self._wrap(handler.unary_unary),
                                unary_stream=self._wrap(handler.unary_stream),
                                stream_unary=self._wrap(handler.stream_unary),
                                stream_stream=self._wrap(handler.stream_stream))
