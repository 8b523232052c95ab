"""The HTTP/1.1 server: keep-alive, chunked streams flushed per write, and 101 hijacks.

Every response carries the engine's identity headers (Api-Version, Ostype, Server,
Docker-Experimental, Date). Routes answer with and without the `/vX.Y` prefix; versions outside
[min, max] get the engine's 400. A handler that raises ApiError answers `{"message": …}`;
anything else is logged and answered 500 without a traceback on the wire. A client that leaves
while its stream is open cancels the handler, so upstream calls end with it.

The hot path costs what it must and no more: ordinary requests are read by `wire.parse_head` and
answered with one write of pre-rendered bytes (`framing.LeanFraming`); everything else goes through
h11 (`framing.H11Framing`). Handlers run in the connection's own task, and read timeouts are
deadlines swept once a second rather than a timer per read.
"""
from __future__ import annotations

import asyncio
import os
import re
import ssl as ssl_module
import time
import urllib.parse
from collections.abc import Callable

from swarmd.common import logs
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.framing import BadRequest, H11Framing, LeanFraming
from swarmd.manager.httpd.rate_limit import RateLimiter, client_of
from swarmd.manager.httpd.request import Headers, Request
from swarmd.manager.httpd.response import ClientGone, HijackedConnection, StreamWriter, error_response
from swarmd.manager.httpd.router import Router
from swarmd.manager.httpd.tls_stream import TLSStream
from swarmd.manager.httpd.wire import FALLBACK, DateHeader, header_bytes

log = logs.get("manager.httpd")

_VERSIONED = re.compile(r"^/v(\d+(?:\.\d+)?)(/.*)?$")
MAX_HEADER_BYTES = 64 << 10
IDLE_TIMEOUT = 300.0
HEAD_TIMEOUT = 60.0
MAX_HIJACKS = 512
READ_SIZE = 65536
SWEEP_PERIOD = 1.0         # how often read deadlines are checked: timeouts are this precise
_KNOWN_VERSIONS_MAX = 64   # accepted `/vX.Y` strings remembered (bounded: clients choose them)


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


class _Hijacked(Exception):
    """Internal: the connection now belongs to the handler."""


class _Exchange:
    """One request's response state, and the `start_stream` / `hijack` its Request hands to handlers."""

    __slots__ = ("server", "framing", "reader", "writer", "streaming", "hijacked", "status", "counted",
                 "client_gone", "task", "watcher")

    def __init__(self, server: HttpServer, framing, reader, writer):
        self.server = server
        self.framing = framing
        self.reader = reader
        self.writer = writer
        self.streaming = self.hijacked = self.counted = self.client_gone = False
        self.status = 500
        self.task: asyncio.Task | None = None
        self.watcher: asyncio.Task | None = None

    async def start_stream(self, status: int, content_type: str, headers: dict[str, str]) -> StreamWriter:
        if self.streaming or self.hijacked:
            raise RuntimeError("the response has already started")
        await self.framing.start_stream(status, content_type, headers)
        self.streaming = True
        self.status = status
        framing = self.framing

        async def send(data: bytes | None) -> None:
            try:
                if data is None:
                    await framing.end_stream()
                else:
                    await framing.send_data(data)
            except (ConnectionError, OSError) as exc:
                raise ClientGone(str(exc)) from None

        self.watcher = asyncio.create_task(self._watch_client())
        return StreamWriter(send)

    async def _watch_client(self) -> None:
        """While a stream is open, the client only ever closes: cancel the handler when it does."""
        try:
            while True:
                data = await self.reader.read(READ_SIZE)
                if not data:
                    break
        except (ConnectionError, OSError):
            pass
        self.client_gone = True
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def hijack(self, content_type: str) -> HijackedConnection:
        if self.streaming or self.hijacked:
            raise RuntimeError("the response has already started")
        self.server._check_hijack_capacity()
        self.server._hijacks += 1
        self.counted = True
        leftover = await self.framing.hijack(content_type)
        self.hijacked = True
        return HijackedConnection(self.reader, self.writer, leftover)


class HttpServer:
    def __init__(self, router: Router, api_version: str = "1.41", min_api_version: str = "1.12",
                 server_header: str = "swarmd", max_body: int = 256 << 20,
                 observer: Callable[[str, str, int, float], None] | None = None,
                 ssl_context: ssl_module.SSLContext | None = None, max_hijacks: int = MAX_HIJACKS,
                 rate_limiter: RateLimiter | None = None):
        self.router = router
        self.rate_limiter = rate_limiter   # per-client requests a second; None: unlimited
        self.max_hijacks = max_hijacks     # attached/exec streams open at once; more get a 503
        self._hijacks = 0
        self.api_version = api_version
        self.min_api_version = min_api_version
        self.server_header = server_header
        self.max_body = max_body
        self.observer = observer
        self.ssl_context = ssl_context
        self.addresses: list[str] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: set[asyncio.Task] = set()
        self._unix_paths: list[str] = []
        self._identity = [("Api-Version", api_version), ("Ostype", "linux"), ("Server", server_header),
                          ("Docker-Experimental", "false")]
        self._identity_bytes = header_bytes(self._identity)
        self._date = DateHeader()
        self._known_versions: set[str] = set()
        self._deadlines: dict[asyncio.Task, float] = {}    # connection task -> when its read times out
        self._expired: set[asyncio.Task] = set()
        self._sweeper: asyncio.Task | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, listen: list[str]) -> None:
        for addr in listen:
            if "://" not in addr:
                addr = f"tcp://{addr}"
            u = urllib.parse.urlsplit(addr)
            if u.scheme == "unix":
                path = u.path
                if os.path.exists(path):
                    os.unlink(path)
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                server = await asyncio.start_unix_server(self._accept, path, limit=MAX_HEADER_BYTES)
                os.chmod(path, 0o660)
                self._unix_paths.append(path)
                self.addresses.append(f"unix://{path}")
            elif u.scheme == "tcp":
                server = await asyncio.start_server(self._accept, u.hostname, u.port,
                                                    reuse_address=True, limit=MAX_HEADER_BYTES)
                for sock in server.sockets:
                    host, port = sock.getsockname()[:2]
                    self.addresses.append(f"{host}:{port}")
            else:
                raise ValueError(f"cannot listen on {addr!r}: use tcp://HOST:PORT or unix:///path")
            self._servers.append(server)
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_deadlines())

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        tasks = [t for t in self._connections if not t.done()]
        if self._sweeper is not None:
            tasks.append(self._sweeper)
            self._sweeper = None
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in self._servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 2)
            except (asyncio.TimeoutError, Exception):
                pass
        for path in self._unix_paths:
            try:
                os.unlink(path)
            except OSError:
                pass
        self._servers.clear()

    # -- read deadlines -----------------------------------------------------------------------

    async def _read(self, reader, timeout: float) -> bytes:
        """`reader.read` that raises asyncio.TimeoutError after `timeout` seconds, as wait_for did,
        at the cost of a dict entry instead of a timer and a task per read."""
        task = asyncio.current_task()
        self._deadlines[task] = time.monotonic() + timeout
        try:
            return await reader.read(READ_SIZE)
        except asyncio.CancelledError:
            if task in self._expired:
                self._expired.discard(task)
                task.uncancel()
                raise asyncio.TimeoutError() from None
            raise
        finally:
            self._deadlines.pop(task, None)

    async def _sweep_deadlines(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_PERIOD)
            now = time.monotonic()
            for task, deadline in list(self._deadlines.items()):
                if deadline <= now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()

    # -- connections --------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Plain connections go straight to `_serve`; with TLS, the handshake comes first (a client
        without an acceptable certificate is refused here) on a stream that can half-close."""
        if self.ssl_context is None:
            await self._serve(reader, writer)
            return
        task = asyncio.current_task()
        self._connections.add(task)
        stream = TLSStream(self.ssl_context, reader, writer)
        try:
            await stream.handshake()
        except (ssl_module.SSLError, ConnectionError, OSError, TimeoutError) as exc:
            peer = writer.get_extra_info("peername")
            log.info("TLS handshake refused", peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix",
                     error=getattr(exc, "reason", None) or str(exc) or type(exc).__name__)
            self._connections.discard(task)
            writer.close()
            return
        await self._serve(stream, stream)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix"
        framing = LeanFraming(reader, writer, self._read, self._identity_bytes, self._date, MAX_HEADER_BYTES)
        hijacked = False
        try:
            while True:
                try:
                    head = await framing.next_request(IDLE_TIMEOUT, HEAD_TIMEOUT)
                    if head is FALLBACK:       # not the common case: h11 reads it, and the rest
                        framing = H11Framing(reader, writer, self._read, self._identity, self._date,
                                             MAX_HEADER_BYTES, bytes(framing.buf))
                        head = await framing.next_request(IDLE_TIMEOUT, HEAD_TIMEOUT)
                except BadRequest as exc:
                    await framing.send_error(exc.status, exc.message)
                    return
                except (asyncio.TimeoutError, ConnectionError, OSError):
                    return
                if head is None:
                    return
                try:
                    await self._handle(framing, reader, writer, head, peer)
                except _Hijacked:
                    hijacked = True
                    return
                except (ClientGone, ConnectionError, OSError):
                    return
                if not framing.next_cycle():
                    return
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a bug in the connection handling: log, never crash the server
            log.error("connection failed", exc_info=exc, peer=peer)
        finally:
            self._connections.discard(task)
            self._expired.discard(task)
            if not hijacked:
                writer.close()
                try:
                    await asyncio.wait_for(writer.wait_closed(), 2)
                except (asyncio.TimeoutError, ConnectionError, OSError, asyncio.CancelledError):
                    pass

    # -- one request --------------------------------------------------------------------------

    def _request(self, exchange: _Exchange, head, body: bytes, peer: str) -> tuple[Callable, Request]:
        """The handler and Request for a head whose body has been read (404/405/400 as ApiError)."""
        method = head.method
        raw_path, _, raw_query = head.target.partition("?")
        path = urllib.parse.unquote(raw_path) if "%" in raw_path else raw_path
        version = self.api_version
        m = _VERSIONED.match(path)
        if m:
            version, path = m.group(1), m.group(2) or "/"
            if version not in self._known_versions:
                self._check_version(version)
                if len(self._known_versions) < _KNOWN_VERSIONS_MAX:
                    self._known_versions.add(version)
        try:
            handler, params, route = self.router.resolve(method, path)
        except ApiError:
            if method != "HEAD":
                raise
            handler, params, route = self.router.resolve("GET", path)
        query = urllib.parse.parse_qs(raw_query, keep_blank_values=True) if raw_query else {}
        req = Request(method, path, query, Headers(head.headers), body, version, params, route, peer=peer,
                      start_stream=exchange.start_stream, hijack=exchange.hijack)
        return handler, req

    async def _handle(self, framing, reader, writer, head, peer: str) -> None:
        started = time.perf_counter_ns()
        method = head.method
        route = "unmatched"
        exchange = _Exchange(self, framing, reader, writer)
        try:
            try:
                body = await framing.read_body(self.max_body, HEAD_TIMEOUT)
                if self.rate_limiter is not None and not self.rate_limiter.allow(client_of(peer)):
                    raise ApiError(429, f"too many requests from {client_of(peer)}: the limit is "
                                        f"{self.rate_limiter.rate:g} a second")
                if framing.switch_requested:
                    self._check_hijack_capacity()
                handler, req = self._request(exchange, head, body, peer)
                req.received_ns = started
                route = req.route
                result = await self._run_handler(handler, req, exchange)
            except ApiError as err:
                if exchange.streaming or exchange.hijacked:
                    raise ClientGone(f"error after the response started: {err.message}") from None
                result = error_response(err.status, err.message)
            except (ClientGone, _Hijacked, asyncio.CancelledError):
                raise
            except (ConnectionError, OSError) as exc:
                if exchange.streaming or exchange.hijacked:
                    raise ClientGone(str(exc)) from None
                log.error("request failed", exc_info=exc, method=method, path=head.target.partition("?")[0])
                result = error_response(500, f"internal error: {type(exc).__name__}: {exc}")
            except Exception as exc:
                if exchange.streaming or exchange.hijacked:
                    log.error("stream failed", exc_info=exc, method=method, path=head.target.partition("?")[0])
                    raise ClientGone(str(exc)) from None
                log.error("request failed", exc_info=exc, method=method, path=head.target.partition("?")[0])
                result = error_response(500, f"internal error: {type(exc).__name__}: {exc}")
            if exchange.hijacked:
                exchange.status = 101
                raise _Hijacked()
            if exchange.streaming:
                await framing.end_stream()
                return
            if result is None:
                result = error_response(500, "internal error: the handler sent no response")
            exchange.status = result.status
            await framing.send_response(result.status, result.content_type, result.headers, result.body,
                                        head_only=(method == "HEAD"))
        finally:
            if exchange.counted:
                self._hijacks -= 1
            if self.observer is not None:
                try:
                    self.observer(method, route, exchange.status, (time.perf_counter_ns() - started) / 1e9)
                except Exception:   # metrics must never fail a request
                    pass

    def _check_hijack_capacity(self) -> None:
        if self._hijacks >= self.max_hijacks:
            raise ApiError(503, f"too many attached streams open on this manager (limit {self.max_hijacks}): "
                                "try again when some have ended")

    def _check_version(self, version: str) -> None:
        try:
            v = _version_tuple(version)
        except ValueError:
            raise ApiError(400, f"invalid API version {version!r}") from None
        if v > _version_tuple(self.api_version):
            raise ApiError(400, f"client version {version} is too new. Maximum supported API version is "
                                f"{self.api_version}")
        if v < _version_tuple(self.min_api_version):
            raise ApiError(400, f"client version {version} is too old. Minimum supported API version is "
                                f"{self.min_api_version}, please upgrade your client to a newer version")

    async def _run_handler(self, handler, req: Request, exchange: _Exchange):
        """Runs the handler in this connection's task (no task per request); a client leaving its
        stream cancels this task, and that cancellation comes out as ClientGone."""
        task = exchange.task = asyncio.current_task()
        try:
            return await handler(req)
        except asyncio.CancelledError:
            if exchange.client_gone and task.cancelling():
                task.uncancel()                # the watcher's cancel, not the server's
                if not task.cancelling():
                    raise ClientGone("client left during the stream") from None
            raise
        finally:
            # a cancelled handler's traceback holds its request: neither task stays referenced, so no
            # cycle is left for the collector (the manager never walks frozen objects again)
            exchange.task = None
            watcher, exchange.watcher = exchange.watcher, None
            if watcher is not None:
                watcher.cancel()
                # the reader serves the next request only once the watcher has stopped reading it
                await asyncio.wait((watcher,))
