"""A node's certificate in bootstrap mode: obtained with a join token, kept in the state directory,
renewed before it expires.

Joining (`obtain`): the private key is made here and never sent. The discovery daemon's TLS
handshake carries its CA roots; the one whose SHA-256 the token names becomes the only root the
node trusts, so the token's secret goes only to a daemon that proves it holds a certificate from
the token's CA. Then a CSR and the token buy a certificate (IssueCertificate); cert.pem, key.pem
(0600) and ca.pem go to the state directory, and a restart reuses them.

Renewal (`keep_renewed`): at a random point between 50 % and 80 % of the certificate's life
(`renewal_delay`, pure), a new key and CSR, authenticated by the current certificate
(RenewCertificate); the new set is written and swapped into the LiveCredentials.
"""
from __future__ import annotations

import asyncio
import datetime
import os
import random
import socket
import ssl
import tempfile
from pathlib import Path

from swarmd.common import logs, pki
from swarmd.common.join_tokens import JoinToken
from swarmd.common.tls import LiveCredentials, TLSConfig

log = logs.get("certs")

CALL_TIMEOUT = 10.0
RENEW_RETRY = (1.0, 30.0)      # first and longest wait between failed renewals
RENEW_SPAN = (0.5, 0.8)
PROMPT_JITTER = 1.0            # seconds: prompted renewals spread over this much


class BootstrapError(Exception):
    """Joining cannot go on; the message is one line, without the token's secret."""


class DiscoveryUnreachable(BootstrapError):
    """The discovery daemon did not answer: worth trying again."""


def renewal_delay(not_before: datetime.datetime, not_after: datetime.datetime, now: datetime.datetime,
                  fraction: float) -> float:
    """Seconds from `now` to the point `fraction` (0.5–0.8, drawn by the caller) of the certificate's
    life; 0 when that point is past."""
    life = (not_after - not_before).total_seconds()
    due = not_before + datetime.timedelta(seconds=life * fraction)
    return max(0.0, (due - now).total_seconds())


def first_address(addr: str) -> tuple[str, int]:
    first = addr.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    return host.strip("[]"), int(port)


def served_roots(addr: str, client: pki.Issued, timeout: float = CALL_TIMEOUT) -> list[bytes]:
    """The certificates (DER) the daemon at `addr` presents in its handshake, unverified: which of
    them to trust is the token's to say."""
    host, port = first_address(addr)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    with tempfile.TemporaryDirectory() as tmp:       # ssl loads a client pair from files only
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert.write_bytes(client.cert_pem)
        key.write_bytes(client.key_pem)
        ctx.load_cert_chain(str(cert), str(key))
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            # Python 3.13 names it get_unverified_chain(); 3.11 has it on the SSL object only
            chain = tls.get_unverified_chain() if hasattr(tls, "get_unverified_chain") \
                else tls._sslobj.get_unverified_chain()
            return [ssl.PEM_cert_to_DER_cert(c.public_bytes()) for c in chain or []]


def root_for(token: JoinToken, chain_der: list[bytes]) -> bytes:
    """The PEM of the presented certificate whose digest the token names; BootstrapError otherwise."""
    import hashlib
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    for der in chain_der:
        if hashlib.sha256(der).hexdigest() == token.ca_digest:
            return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    served = ", ".join(f"sha256:{hashlib.sha256(d).hexdigest()[:12]}…" for d in chain_der[1:]) or "none"
    raise BootstrapError(f"the discovery daemon does not hold the token's CA (the token names "
                         f"sha256:{token.ca_digest[:12]}…, it serves {served}): refusing to send the token")


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)          # a reader never sees half a file


def store(directory: Path, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / "key.pem", key_pem, 0o600)
    _write(directory / "cert.pem", cert_pem, 0o644)
    _write(directory / "ca.pem", ca_pem, 0o644)


def load(directory: Path, role: str) -> LiveCredentials | None:
    """The stored set when it is whole, for `role`, signed by its CA and not yet expired; else None."""
    try:
        ca, cert, key = ((directory / n).read_bytes() for n in ("ca.pem", "cert.pem", "key.pem"))
        ident = pki.identity(cert)
        pki.load_pair(pki.Issued(cert, key))
        if ident.role != role or not pki.issued_by(cert, ca):
            return None
    except (OSError, pki.PKIError, ValueError):
        return None
    if ident.not_after <= datetime.datetime.now(datetime.timezone.utc):
        return None
    return LiveCredentials(directory, ca, cert, key)


def _check_issued(cert_pem: bytes, key_pem: bytes, bundle_pem: bytes) -> None:
    try:
        pki.load_pair(pki.Issued(cert_pem, key_pem))
        ok = pki.issued_by(cert_pem, bundle_pem)
    except (pki.PKIError, ValueError):
        ok = False
    if not ok:
        raise BootstrapError("the discovery daemon answered with a certificate that is not for this key or not from its CA")


async def obtain(addr: str, token: JoinToken, directory: str | Path, role: str, common_name: str,
                 hosts: list[str] | tuple[str, ...] = ()) -> LiveCredentials:
    """The stored credentials, or new ones bought with `token` (see the module docstring)."""
    import grpc
    from swarmd.proto.swarm.v1 import discovery_pb2, discovery_pb2_grpc
    directory = Path(directory)
    found = load(directory, role)
    if found is not None:
        log.info("reusing the stored certificate", dir=str(directory), expires=pki.identity(found.pems()[1]).not_after.isoformat())
        return found
    client = pki.bootstrap_client(token.ca_digest)
    try:
        chain = await asyncio.to_thread(served_roots, addr, client)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise DiscoveryUnreachable(f"cannot reach the discovery daemon at {addr}: {exc}") from None
    root = root_for(token, chain)
    host, _ = first_address(addr)
    creds = grpc.ssl_channel_credentials(root_certificates=root, private_key=client.key_pem,
                                         certificate_chain=client.cert_pem)
    csr, key = pki.make_csr(common_name, list(hosts))
    try:
        async with grpc.aio.secure_channel(addr.split(",")[0].strip(), creds) as channel:
            stub = discovery_pb2_grpc.DiscoveryStub(channel)
            bundle = (await stub.GetCACertificate(discovery_pb2.GetCACertificateRequest(), timeout=CALL_TIMEOUT)).bundle_pem
            if token.ca_digest not in {pki.der_digest(c) for c in pki.bundle(bundle)}:
                raise BootstrapError("the discovery daemon's CA bundle does not hold the token's CA")
            reply = await stub.IssueCertificate(
                discovery_pb2.IssueCertificateRequest(csr_pem=csr, token=str(token), role=role), timeout=CALL_TIMEOUT)
    except grpc.RpcError as err:
        kind = DiscoveryUnreachable if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
            else BootstrapError
        raise kind(f"discovery at {host}: {err.details() or err.code().name.lower()}") from None
    except pki.PKIError as exc:
        raise BootstrapError(f"discovery at {host}: {exc}") from None
    _check_issued(reply.cert_pem, key, reply.bundle_pem)
    store(directory, reply.bundle_pem, reply.cert_pem, key)
    ident = pki.identity(reply.cert_pem)
    log.info("certificate issued", dir=str(directory), role=ident.role, cluster=ident.cluster[:12],
             expires=ident.not_after.isoformat())
    return LiveCredentials(directory, reply.bundle_pem, reply.cert_pem, key)


async def obtain_patiently(addr: str, token: JoinToken, directory: str | Path, role: str, common_name: str,
                           hosts: list[str] | tuple[str, ...] = ()) -> LiveCredentials:
    """`obtain`, trying again with backoff while the discovery daemon does not answer (a host that
    boots before it); a refusal ends at once."""
    wait = RENEW_RETRY[0]
    while True:
        try:
            return await obtain(addr, token, directory, role, common_name, hosts)
        except DiscoveryUnreachable as exc:
            log.warning("cannot get a certificate yet; retrying", error=str(exc), retry_in=wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, RENEW_RETRY[1])


async def renew_once(addr: str, live: LiveCredentials) -> None:
    """A new key and certificate for the same identity, authenticated by the current one."""
    import grpc
    from swarmd.proto.swarm.v1 import discovery_pb2, discovery_pb2_grpc
    from swarmd.common.tls import open_channel
    ident = pki.identity(live.pems()[1])
    csr, key = pki.make_csr(ident.common_name, [h for h in _hosts_of(live.pems()[1]) if not h.startswith("swarm-")])
    async with open_channel(addr, TLSConfig.from_live(live)) as channel:
        try:
            reply = await discovery_pb2_grpc.DiscoveryStub(channel).RenewCertificate(
                discovery_pb2.RenewCertificateRequest(csr_pem=csr), timeout=CALL_TIMEOUT)
        except grpc.RpcError as err:
            raise BootstrapError(err.details() or err.code().name.lower()) from None
    _check_issued(reply.cert_pem, key, reply.bundle_pem)
    store(live.directory, reply.bundle_pem, reply.cert_pem, key)
    live.swap(reply.bundle_pem, reply.cert_pem, key)


def _hosts_of(cert_pem: bytes) -> list[str]:
    from cryptography import x509
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n.value) for n in names if isinstance(n, (x509.DNSName, x509.IPAddress))]


async def keep_renewed(addr: str, live: LiveCredentials, rand: random.Random | None = None) -> None:
    """Runs until cancelled: renews at a random 50–80 % of each certificate's life, or at once when
    the discovery daemon asks (a CA rotation, see `watch_prompts`); a failed renewal is retried with
    backoff (and logged) while the certificate lasts."""
    from swarmd.common.tls import open_channel
    rand = rand or random.Random()
    async with open_channel(addr, TLSConfig.from_live(live)) as channel:
        while True:
            ident = pki.identity(live.pems()[1])
            now = datetime.datetime.now(datetime.timezone.utc)
            delay = renewal_delay(ident.not_before, ident.not_after, now, rand.uniform(*RENEW_SPAN))
            log.info("certificate renewal scheduled", in_seconds=round(delay, 1), expires=ident.not_after.isoformat())
            prompt = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                # a stream per certificate: the daemon sees the current one on it
                watcher = tg.create_task(watch_prompts(channel, live, prompt), name="renewal-prompts")
                try:
                    await asyncio.wait_for(prompt.wait(), delay)
                    log.info("certificate renewal asked by the discovery daemon (CA rotation)")
                    await asyncio.sleep(rand.uniform(0, PROMPT_JITTER))     # not every node in the same instant
                except TimeoutError:
                    pass
                watcher.cancel()
            await renew_until_done(addr, live)


async def renew_until_done(addr: str, live: LiveCredentials) -> None:
    wait = RENEW_RETRY[0]
    while True:
        try:
            await renew_once(addr, live)
            new = pki.identity(live.pems()[1])
            log.info("certificate renewed", serial=f"{new.serial:x}"[:16], expires=new.not_after.isoformat())
            return
        except (BootstrapError, OSError, pki.PKIError) as exc:
            log.warning("certificate renewal failed; retrying", error=str(exc), retry_in=wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, RENEW_RETRY[1])


def bundle_digests(bundle_pem: bytes) -> list[str]:
    return [pki.der_digest(c) for c in pki.bundle(bundle_pem)]


async def watch_prompts(channel, live: LiveCredentials, prompt: asyncio.Event) -> None:
    """Sets `prompt` when the discovery daemon says this certificate or bundle is behind its CA
    rotation. The stream is kept open (it is how the daemon knows this node holds a certificate),
    opened again after failures; a daemon without the call (older) leaves renewal to the schedule."""
    import grpc
    from swarmd.proto.swarm.v1 import discovery_pb2, discovery_pb2_grpc
    stub = discovery_pb2_grpc.DiscoveryStub(channel)
    wait = RENEW_RETRY[0]
    while True:
        call = stub.WatchCertificate(discovery_pb2.WatchCertificateRequest(
            bundle_digests=bundle_digests(live.pems()[0])))
        try:
            async for status in call:
                wait = RENEW_RETRY[0]
                if status.renew:
                    prompt.set()
        except grpc.RpcError as err:
            if err.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.FAILED_PRECONDITION):
                return
            log.info("renewal prompts interrupted; watching again", error=err.details() or err.code().name.lower(),
                     retry_in=wait)
        finally:
            call.cancel()
        await asyncio.sleep(wait)
        wait = min(wait * 2, RENEW_RETRY[1])


ADMIN_LIFETIME = 300.0


def admin_tls(ca_dir: str | Path) -> TLSConfig:
    """TLS for an administrator's call (`swarm create --ca-dir`, `swarm token rotate`): a client
    certificate with OU swarm-admin, signed here with the key of the CA that signs in D's rotation
    phase and good for five minutes; the daemon is verified against every root of that phase.
    Holding the CA directory is the credential; nothing is written."""
    from swarmd.common import ca_rotation
    try:
        state = ca_rotation.read(Path(ca_dir))
    except ca_rotation.RotationError as exc:
        raise pki.PKIError(str(exc)) from None
    csr, key = pki.make_csr("swarm-admin")
    cert = pki.sign_csr(state.leaf_signer, csr, cluster="", role=pki.ROLE_ADMIN, common_name="swarm-admin",
                        lifetime=ADMIN_LIFETIME)
    return TLSConfig(ca_pem=state.bundle_pem, cert_pem=cert, key_pem=key, verify=True)
