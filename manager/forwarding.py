"""Replica -> primary: a replica answers every API call by passing it to the primary manager.

`RoleRouter` sits in front of the manager's routes: while this manager is primary it resolves as
usual; otherwise every request except the replica's own `/_ping` and `/info` goes to `forward`,
which opens one connection to the primary per request, sends the request as received (body
included), and relays the answer: whole bodies as a response, chunked or close-delimited bodies
as a stream flushed as it arrives (logs, events, stats), and `101 UPGRADED` answers (attach, exec
start) as a hijack piping bytes both ways until either side closes. The client may therefore talk
to any manager, streams and interactive sessions included.

A GET or HEAD whose primary fails before answering (unreachable, connection broken, or no longer
the primary while the request waits for its answer, e.g. a frozen process that lost leadership)
is tried once more as soon as a new primary is known: forwarded to it, or served here when this
manager is the new primary. Other methods are never repeated: the failed primary may have acted.
"""
from __future__ import annotations

import asyncio
import ssl
import time
import urllib.parse
from collections.abc import Callable

import h11

from swarmd.manager.api.context import ManagerContext
from swarmd.manager.api.relay import wants_hijack
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.request import Request
from swarmd.manager.httpd.response import ClientGone, Response
from swarmd.manager.httpd.router import Router
from swarmd.common import logs

log = logs.get("manager.forwarding")

CONNECT_TIMEOUT = 5.0
READ_SIZE = 65536
RETRY_WAIT = 10.0        # how long a failed GET/HEAD waits for a new primary before giving up
WATCH_EVERY = 0.1        # how often a waiting GET/HEAD checks the primary is still the one it asked
IDEMPOTENT = {"GET", "HEAD"}
# answered by the replica itself: liveness, and `docker info` showing its role and the primary
LOCAL_ROUTES = {("GET", "/_ping"), ("HEAD", "/_ping"), ("GET", "/info")}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "te", "trailer",
               "proxy-connection", "proxy-authorization", "host"}
# response headers the replica's own server sets (or that describe the upstream connection)
_NOT_PASSED = {"content-type", "content-length", "transfer-encoding", "connection", "upgrade", "keep-alive",
               "server", "api-version", "ostype", "docker-experimental", "date"}


class RoleRouter:
    """The router a replicated manager serves: its own routes while primary, `forward` otherwise."""

    def __init__(self, router: Router, is_primary: Callable[[], bool], forward):
        self.router = router
        self.is_primary = is_primary
        self.forward = forward
        if isinstance(forward, Forwarder):
            forward.local = router    # serves a retried request when this manager became the primary

    def resolve(self, method: str, path: str):
        if self.is_primary() or (method.upper(), path) in LOCAL_ROUTES:
            return self.router.resolve(method, path)
        return self.forward, {}, "forwarded"

    def patterns(self) -> list[tuple[str, str]]:
        return self.router.patterns()


def upstream_target(req: Request) -> str:
    """The request's target as the primary should see it (versioned path, same query)."""
    path = urllib.parse.quote(req.path, safe="/:@!$&'()*+,;=~")
    target = f"/v{req.version}{path}" if req.version else path
    query = urllib.parse.urlencode([(k, v) for k, vs in req.query.items() for v in vs])
    return f"{target}?{query}" if query else target


def upstream_headers(req: Request, primary: str, upgrade: bool) -> list[tuple[str, str]]:
    headers = [(k, v) for k, v in req.headers.items() if k.lower() not in _HOP_BY_HOP]
    headers.append(("Host", req.headers.get("host") or primary))
    headers.append(("Content-Length", str(len(req.body))))
    if upgrade:
        headers += [("Connection", "Upgrade"), ("Upgrade", req.headers.get("upgrade") or "tcp")]
    else:
        headers.append(("Connection", "close"))
    if req.peer:
        headers.append(("X-Forwarded-For", req.peer.rsplit(":", 1)[0]))
    return headers


class PrimaryFailed(ApiError):
    """The primary failed before any of its answer reached the client: safe to retry a GET/HEAD."""


class Forwarder:
    """The handler every replica request resolves to."""

    def __init__(self, ctx: ManagerContext, ssl_context: ssl.SSLContext | None = None):
        self.ctx = ctx
        self.ssl_context = ssl_context     # managers serving TLS reach each other over TLS
        self.local: Router | None = None   # this manager's own routes (set by RoleRouter)

    def _primary(self) -> str:
        primary = self.ctx.primary_addr
        if not primary or primary == self.ctx.advertise:
            raise ApiError(503, "no primary manager is available right now (election in progress or etcd "
                                "unreachable): retry shortly")
        return primary

    async def __call__(self, req: Request):
        primary = self._primary()
        try:
            return await self._forward(req, primary)
        except PrimaryFailed as failed:
            if req.method.upper() not in IDEMPOTENT or wants_hijack(req):
                raise ApiError(failed.status, failed.message) from None
            first = failed
        log.info("primary failed a read: retrying on the next primary", method=req.method, path=req.path,
                 primary=primary, error=first.message)
        if not await self._next_primary(primary):
            raise ApiError(first.status, first.message)
        if self.ctx.role == "primary" and self.local is not None:
            return await self._serve_locally(req)
        try:
            return await self._forward(req, self._primary())
        except PrimaryFailed as failed:
            raise ApiError(failed.status, failed.message) from None

    async def _next_primary(self, failed: str) -> bool:
        """Waits until another manager (or this one) is known as primary; False after RETRY_WAIT."""
        deadline = time.monotonic() + RETRY_WAIT
        while time.monotonic() < deadline:
            if self.ctx.role == "primary" or self.ctx.primary_addr not in ("", failed, self.ctx.advertise):
                return True
            await asyncio.sleep(WATCH_EVERY / 2)
        return False

    async def _serve_locally(self, req: Request):
        try:
            handler, params, route = self.local.resolve(req.method, req.path)
        except ApiError:
            if req.method.upper() != "HEAD":
                raise
            handler, params, route = self.local.resolve("GET", req.path)
        req.params, req.route = params, route
        return await handler(req)

    async def _forward(self, req: Request, primary: str):
        host, _, port = primary.rpartition(":")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port), limit=READ_SIZE, ssl=self.ssl_context,
                                        server_hostname=host.strip("[]") if self.ssl_context else None),
                CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError, ValueError) as exc:
            raise PrimaryFailed(503, f"primary manager at {primary} is unreachable: {exc or 'timed out'}") from None
        try:
            return await self._exchange(req, primary, reader, writer)
        finally:
            writer.close()

    async def _head(self, req: Request, primary: str, conn: h11.Connection, reader: asyncio.StreamReader):
        """The primary's answer head. A GET/HEAD gives up (PrimaryFailed) once another manager
        is known as primary: the one asked may be frozen and never answer."""
        if req.method.upper() not in IDEMPOTENT or wants_hijack(req):
            return await _next_event(conn, reader)
        task = asyncio.ensure_future(_next_event(conn, reader))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=WATCH_EVERY)
                if done:
                    return task.result()
                if self.ctx.role == "primary" or self.ctx.primary_addr not in ("", primary):
                    raise PrimaryFailed(502, f"primary manager at {primary} lost leadership before answering")
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _exchange(self, req: Request, primary: str, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter):
        conn = h11.Connection(h11.CLIENT)
        upgrade = wants_hijack(req)
        try:
            writer.write(conn.send(h11.Request(method=req.method, target=upstream_target(req),
                                               headers=upstream_headers(req, primary, upgrade))))
            if req.body:
                writer.write(conn.send(h11.Data(data=req.body)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
            head = await self._head(req, primary, conn, reader)
        except (ConnectionError, OSError, h11.RemoteProtocolError) as exc:
            raise PrimaryFailed(502, f"primary manager at {primary} failed to answer: {exc}") from None
        if isinstance(head, h11.InformationalResponse) and head.status_code == 101:
            await self._pump_hijack(req, conn, reader, writer, head)
            return None
        if not isinstance(head, h11.Response):
            raise PrimaryFailed(502, f"primary manager at {primary} closed the connection without an answer")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers]
        lower = {k.lower(): v for k, v in headers}
        ctype = lower.get("content-type")
        passed = {k: v for k, v in headers if k.lower() not in _NOT_PASSED}
        whole = ("content-length" in lower or req.method == "HEAD" or head.status_code in (204, 304)
                 or head.status_code >= 400)
        if whole:
            body = await self._read_whole(conn, reader, primary)
            return Response(head.status_code, body, content_type=ctype, headers=passed)
        await self._pump_stream(req, conn, reader, head.status_code, ctype or "application/octet-stream", passed)
        return None

    async def _read_whole(self, conn: h11.Connection, reader: asyncio.StreamReader, primary: str) -> bytes:
        parts = []
        try:
            while True:
                event = await _next_event(conn, reader)
                if isinstance(event, h11.Data):
                    parts.append(bytes(event.data))
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    return b"".join(parts)
        except (ConnectionError, OSError, h11.RemoteProtocolError) as exc:
            raise PrimaryFailed(502, f"primary manager at {primary} broke off its answer: {exc}") from None

    async def _pump_stream(self, req: Request, conn: h11.Connection, reader: asyncio.StreamReader, status: int,
                           ctype: str, headers: dict[str, str]) -> None:
        out = await req.start_stream(status, ctype, headers)
        try:
            while True:
                try:
                    event = await _next_event(conn, reader)
                except (ConnectionError, OSError, h11.RemoteProtocolError) as exc:
                    log.warning("primary broke off a stream", path=req.path, error=str(exc))
                    break
                if isinstance(event, h11.Data):
                    await out.write(bytes(event.data))
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    break
            await out.close()
        except ClientGone:
            pass   # the client left; closing the upstream connection ends the primary's side

    async def _pump_hijack(self, req: Request, conn: h11.Connection, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter, head: h11.InformationalResponse) -> None:
        ctype = "application/vnd.docker.raw-stream"
        for k, v in head.headers:
            if k.lower() == b"content-type":
                ctype = v.decode("latin-1")
        early, _ = conn.trailing_data
        client = await req.hijack(ctype)

        async def client_to_primary() -> None:
            while True:
                data = await client.reader.read(READ_SIZE)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        upstream = asyncio.create_task(client_to_primary())
        try:
            if early:
                await client.write(bytes(early))
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                await client.write(data)
        except (ClientGone, ConnectionError, OSError):
            pass
        finally:
            upstream.cancel()
            await asyncio.gather(upstream, return_exceptions=True)
            await client.close()


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader):
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(READ_SIZE))
            continue
        if event is h11.PAUSED:
            return None
        return event
