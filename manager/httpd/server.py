"""The HTTP/1.1 server: keep-alive, chunked streams flushed per write, and 101 hijacks.

Every response carries the engine's identity headers (Api-Version, Ostype, Server,
Docker-Experimental). Routes answer with and without the `/vX.Y` prefix; versions outside
[min, max] get the engine's 400. A handler that raises ApiError answers `{"message": …}`;
anything else is logged and answered 500 without a traceback on the wire. A client that leaves
while its stream is open cancels the handler, so upstream calls end with it.
"""
from __future__ import annotations

import asyncio
import os
import re
import ssl as ssl_module
import time
import urllib.parse
from collections.abc import Callable

import h11

from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.rate_limit import RateLimiter, client_of
from swarmd.manager.httpd.request import Headers, Request
from swarmd.manager.httpd.response import JSON, ClientGone, HijackedConnection, Response, StreamWriter, error_response
from swarmd.manager.httpd.router import Router
from swarmd.manager.httpd.tls_stream import TLSStream
from swarmd.common import logs

log = logs.get("manager.httpd")

_VERSIONED = re.compile(r"^/v(\d+(?:\.\d+)?)(/.*)?$")
MAX_HEADER_BYTES = 64 << 10
IDLE_TIMEOUT = 300.0
HEAD_TIMEOUT = 60.0
MAX_HIJACKS = 512


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


class _Hijacked(Exception):
    """Internal: the connection now belongs to the handler."""


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

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        tasks = [t for t in self._connections if not t.done()]
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
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        hijacked = False
        try:
            while True:
                try:
                    event = await self._next_event(conn, reader, IDLE_TIMEOUT)
                except h11.RemoteProtocolError as exc:
                    await self._send_plain_error(conn, writer, exc.error_status_hint, f"bad request: {exc}")
                    return
                except (asyncio.TimeoutError, ConnectionError, OSError):
                    return
                if isinstance(event, h11.ConnectionClosed) or event is None:
                    return
                if not isinstance(event, h11.Request):
                    return
                try:
                    await self._handle(conn, reader, writer, event, peer)
                except _Hijacked:
                    hijacked = True
                    return
                except (ClientGone, ConnectionError, OSError):
                    return
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a bug in the connection handling: log, never crash the server
            log.error("connection failed", exc_info=exc, peer=peer)
        finally:
            self._connections.discard(task)
            if not hijacked:
                writer.close()
                try:
                    await asyncio.wait_for(writer.wait_closed(), 2)
                except (asyncio.TimeoutError, ConnectionError, OSError, asyncio.CancelledError):
                    pass

    async def _next_event(self, conn: h11.Connection, reader: asyncio.StreamReader, timeout: float):
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(reader.read(65536), timeout)
                conn.receive_data(data)
                continue
            if event is h11.PAUSED:
                return None
            return event

    async def _read_body(self, conn: h11.Connection, reader: asyncio.StreamReader) -> bytes:
        parts, size = [], 0
        while True:
            event = await self._next_event(conn, reader, HEAD_TIMEOUT)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.max_body:
                    raise ApiError(413, f"request body exceeds the limit of {self.max_body} bytes")
                parts.append(event.data)
            elif isinstance(event, h11.EndOfMessage) or event is None:
                return b"".join(parts)
            else:
                raise ApiError(400, "incomplete request body")

    def _base_headers(self) -> list[tuple[str, str]]:
        return [("Api-Version", self.api_version), ("Ostype", "linux"), ("Server", self.server_header),
                ("Docker-Experimental", "false")]

    async def _write(self, conn: h11.Connection, writer: asyncio.StreamWriter, event) -> None:
        data = conn.send(event)
        if data:
            if writer.is_closing():
                raise ClientGone("client closed the connection")
            writer.write(data)
            await writer.drain()

    async def _send_plain_error(self, conn, writer, status: int, message: str) -> None:
        try:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                resp = error_response(status, message)
                await self._send_response(conn, writer, resp, head_only=False)
        except Exception:
            pass

    async def _send_response(self, conn, writer, resp: Response, head_only: bool) -> None:
        headers = self._base_headers()
        if resp.content_type:
            headers.append(("Content-Type", resp.content_type))
        headers += [(k, str(v)) for k, v in resp.headers.items()]
        no_body = resp.status in (204, 304) or resp.status < 200
        if not no_body:
            headers.append(("Content-Length", str(len(resp.body))))
        # head, body and end in one write: one send per unary response
        data = conn.send(h11.Response(status_code=resp.status, headers=headers)) or b""
        if resp.body and not head_only and not no_body:
            data += conn.send(h11.Data(data=resp.body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        if writer.is_closing():
            raise ClientGone("client closed the connection")
        writer.write(data)
        await writer.drain()

    async def _handle(self, conn, reader, writer, event: h11.Request, peer: str) -> None:
        started = time.monotonic()
        method = event.method.decode("latin-1").upper()
        target = event.target.decode("latin-1")
        raw_path, _, raw_query = target.partition("?")
        route = "unmatched"
        status = 500
        state = {"streaming": False, "hijacked": False}
        try:
            try:
                body = await self._read_body(conn, reader)
                if self.rate_limiter is not None and not self.rate_limiter.allow(client_of(peer)):
                    raise ApiError(429, f"too many requests from {client_of(peer)}: the limit is "
                                        f"{self.rate_limiter.rate:g} a second")
                if conn.their_state is h11.MIGHT_SWITCH_PROTOCOL:
                    self._check_hijack_capacity()
                path = urllib.parse.unquote(raw_path)
                version = self.api_version
                m = _VERSIONED.match(path)
                if m:
                    version, path = m.group(1), m.group(2) or "/"
                    self._check_version(version)
                try:
                    handler, params, route = self.router.resolve(method, path)
                except ApiError:
                    if method != "HEAD":
                        raise
                    handler, params, route = self.router.resolve("GET", path)
                headers = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers])
                req = Request(method, path, urllib.parse.parse_qs(raw_query, keep_blank_values=True), headers,
                              body, version, params, route, peer=peer,
                              start_stream=lambda s, ct, h: self._start_stream(conn, reader, writer, state, s, ct, h),
                              hijack=lambda ct: self._hijack(conn, reader, writer, state, ct))
                result = await self._run_handler(handler, req, state)
            except ApiError as err:
                if state["streaming"] or state["hijacked"]:
                    raise ClientGone(f"error after the response started: {err.message}") from None
                result = error_response(err.status, err.message)
            except (ClientGone, _Hijacked, asyncio.CancelledError):
                raise
            except (ConnectionError, OSError) as exc:
                if state["streaming"] or state["hijacked"]:
                    raise ClientGone(str(exc)) from None
                log.error("request failed", exc_info=exc, method=method, path=raw_path)
                result = error_response(500, f"internal error: {type(exc).__name__}: {exc}")
            except Exception as exc:
                if state["streaming"] or state["hijacked"]:
                    log.error("stream failed", exc_info=exc, method=method, path=raw_path)
                    raise ClientGone(str(exc)) from None
                log.error("request failed", exc_info=exc, method=method, path=raw_path)
                result = error_response(500, f"internal error: {type(exc).__name__}: {exc}")
            if state["hijacked"]:
                status = 101
                raise _Hijacked()
            if state["streaming"]:
                status = state["status"]
                if conn.our_state is h11.SEND_BODY:
                    await self._write(conn, writer, h11.EndOfMessage())
                return
            if result is None:
                result = error_response(500, "internal error: the handler sent no response")
            status = result.status
            await self._send_response(conn, writer, result, head_only=(method == "HEAD"))
        finally:
            if state.get("counted"):
                self._hijacks -= 1
            if self.observer is not None:
                try:
                    self.observer(method, route, status, time.monotonic() - started)
                except Exception:
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

    async def _run_handler(self, handler, req: Request, state: dict):
        """Runs the handler as its own task so a client leaving a stream can cancel it."""
        task = asyncio.create_task(handler(req))
        state["task"] = task
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled() and state.get("client_gone") and not asyncio.current_task().cancelling():
                raise ClientGone("client left during the stream") from None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        finally:
            # a cancelled handler's traceback holds its request, whose callbacks hold `state`: no
            # cycle is left for the collector (the manager never walks frozen objects again)
            state.pop("task", None)
            watcher = state.pop("watcher", None)
            if watcher is not None:
                watcher.cancel()

    async def _start_stream(self, conn, reader, writer, state, status: int, content_type: str,
                            headers: dict[str, str]) -> StreamWriter:
        if state["streaming"] or state["hijacked"]:
            raise RuntimeError("the response has already started")
        hdrs = self._base_headers() + [("Content-Type", content_type)]
        hdrs += [(k, str(v)) for k, v in headers.items()]
        await self._write(conn, writer, h11.Response(status_code=status, headers=hdrs))
        state["streaming"] = True
        state["status"] = status

        async def send(data: bytes | None) -> None:
            try:
                if data is None:
                    await self._write(conn, writer, h11.EndOfMessage())
                else:
                    await self._write(conn, writer, h11.Data(data=data))
            except (ConnectionError, OSError) as exc:
                raise ClientGone(str(exc)) from None

        state["watcher"] = asyncio.create_task(self._watch_client(reader, state))
        return StreamWriter(send)

    async def _watch_client(self, reader: asyncio.StreamReader, state: dict) -> None:
        """While a stream is open, the client only ever closes: cancel the handler when it does."""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
        except (ConnectionError, OSError):
            pass
        state["client_gone"] = True
        task = state.get("task")
        if task is not None and not task.done():
            task.cancel()

    async def _hijack(self, conn, reader, writer, state, content_type: str) -> HijackedConnection:
        if state["streaming"] or state["hijacked"]:
            raise RuntimeError("the response has already started")
        self._check_hijack_capacity()
        self._hijacks += 1
        state["counted"] = True
        headers = self._base_headers() + [("Content-Type", content_type), ("Connection", "Upgrade"),
                                          ("Upgrade", "tcp")]
        if conn.their_state is h11.MIGHT_SWITCH_PROTOCOL:
            await self._write(conn, writer, h11.InformationalResponse(status_code=101, headers=headers,
                                                                      reason=b"UPGRADED"))
            leftover, _ = conn.trailing_data
        else:
            # the client did not ask to upgrade (old clients): answer 200 and use the raw stream anyway
            head = f"HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers[:-2]) + "\r\n"
            writer.write(head.encode("latin-1"))
            await writer.drain()
            leftover = b""
        state["hijacked"] = True
        return HijackedConnection(reader, writer, bytes(leftover))
