"""Async access to the local Docker engine over its own socket (Engine API v1.41).

Every Engine API call goes over a raw asyncio HTTP/1.1 connection, so that the agent keeps the
engine's exact status, headers and body bytes, streams responses as they arrive (chunked transfer
encoding is decoded here), and can take over a hijacked connection (`Connection: Upgrade`,
`Upgrade: tcp`; the engine answers `101 UPGRADED`) to pump stdin and output both ways. Whole
calls (`request` and the typed reads) reuse idle keep-alive connections; streamed and hijacked
calls get a connection of their own. Container lifecycle calls and image pulls are added on top
by `agent.sdk_engine.SdkEngine`.

Failures carry the engine's HTTP status and message as `EngineError`; an engine that cannot be
reached raises `EngineUnreachable` (status 503).
"""
from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from swarmd.common import json_parse
from swarmd.common.http_upgrade import asks_for_upgrade

API_VERSION = "1.41"
CONNECT_TIMEOUT = 10.0      # seconds to open a connection to the engine
HEAD_LIMIT = 1 << 16        # bytes: the largest response head accepted from the engine
READ_SIZE = 1 << 16
MAX_IDLE = 16               # idle keep-alive connections kept per engine

_VERSION_PREFIX = re.compile(r"^/v\d+(\.\d+)?(?=/|$)")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_NO_BODY_STATUSES = {204, 304}
# request headers the agent sets itself
_OWN_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "upgrade"}


# inspect calls in flight for one `inspect_containers` (a node's sync): what the manager's own
# concurrency was when it asked for one container at a time
INSPECT_CONCURRENCY = 16


class EngineError(Exception):
    """The engine answered with an error status (or the request could not be sent to it)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class EngineUnreachable(EngineError):
    def __init__(self, message: str):
        super().__init__(503, message)


# -- addresses ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineAddress:
    """Where the engine listens: a unix socket path or a TCP host and port."""

    url: str
    socket_path: str = ""
    host: str = ""
    port: int = 0

    @classmethod
    def parse(cls, url: str) -> "EngineAddress":
        if "://" not in url:
            url = f"unix://{url}" if url.startswith("/") else f"tcp://{url}"
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "unix":
            path = parts.netloc + parts.path if parts.netloc else parts.path
            if not path:
                raise ValueError(f"invalid engine address {url!r}: no socket path")
            return cls(url=url, socket_path=path)
        if parts.scheme in ("tcp", "http"):
            if not parts.hostname or parts.port is None:
                raise ValueError(f"invalid engine address {url!r}: use tcp://HOST:PORT")
            return cls(url=url, host=parts.hostname, port=parts.port)
        raise ValueError(f"invalid engine address {url!r}: use unix:///path or tcp://HOST:PORT")

    @property
    def host_header(self) -> str:
        return f"{self.host}:{self.port}" if self.host else "docker"

    @property
    def on_this_host(self) -> bool:
        """True when the engine surely runs under this host's clock (a unix socket or loopback)."""
        return bool(self.socket_path) or self.host in ("localhost", "::1") or self.host.startswith("127.")

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            if self.socket_path:
                opening = asyncio.open_unix_connection(self.socket_path, limit=HEAD_LIMIT)
            else:
                opening = asyncio.open_connection(self.host, self.port, limit=HEAD_LIMIT)
            return await asyncio.wait_for(opening, CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise EngineUnreachable(
                f"Cannot connect to the Docker daemon at {self.url}. Is the docker daemon running? ({reason})"
            ) from None


# -- HTTP/1.1 ---------------------------------------------------------------------------------


@dataclass
class ResponseHead:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str, default: str = "") -> str:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return default


@dataclass
class EngineResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def engine_path(path: str) -> str:
    """The versioned request target for an unversioned Engine API path."""
    if not path.startswith("/"):
        path = "/" + path
    path = _VERSION_PREFIX.sub("", path) or "/"
    return f"/v{API_VERSION}{path}"


def _check_field(what: str, value: str) -> None:
    if any(c in value for c in "\r\n\0"):
        raise EngineError(400, f"invalid {what}: control characters are not allowed")


def build_request(method: str, path: str, query: str, body: bytes, headers: Iterable[tuple[str, str]],
                  host: str, keep_alive: bool = False) -> bytes:
    """Serializes one request. Hijack requests keep the connection; others ask it closed unless
    `keep_alive` (HTTP/1.1's default: no Connection header)."""
    headers = list(headers)
    if not _TOKEN.match(method or ""):
        raise EngineError(400, f"invalid method {method!r}")
    _check_field("path", path)
    _check_field("query", query)
    if " " in path or " " in query:
        raise EngineError(400, "invalid request target: spaces are not allowed")
    target = engine_path(path) + (f"?{query}" if query else "")
    lines = [f"{method.upper()} {target} HTTP/1.1", f"Host: {host}"]
    has_type = False
    for name, value in headers:
        if not _TOKEN.match(name):
            raise EngineError(400, f"invalid header name {name!r}")
        _check_field(f"header {name}", value)
        if name.lower() in _OWN_HEADERS:
            continue
        has_type = has_type or name.lower() == "content-type"
        lines.append(f"{name}: {value}")
    if body and not has_type:
        lines.append("Content-Type: application/json")
    if body or method.upper() in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    if asks_for_upgrade(headers):
        lines += ["Connection: Upgrade", "Upgrade: tcp"]
    elif not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_head(raw: bytes) -> ResponseHead:
    """Parses `HTTP/1.1 200 OK\\r\\nName: value\\r\\n...\\r\\n\\r\\n`."""
    text = raw.decode("latin-1")
    status_line, *header_lines = text.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise EngineError(502, f"the engine sent an invalid response: {status_line[:80]!r}")
    headers = []
    for line in header_lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise EngineError(502, f"the engine sent an invalid header line: {line[:80]!r}")
        headers.append((name.strip(), value.strip()))
    return ResponseHead(int(parts[1]), parts[2] if len(parts) > 2 else "", headers)


def error_message(body: bytes, status: int) -> str:
    """The engine's own error text: `{"message": ...}` or the plain body."""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            return doc["message"]
    except ValueError:
        pass
    text = body.decode("utf-8", "replace").strip()
    return text or f"engine answered HTTP {status}"


class EngineConnection:
    """One connection carrying one request: its response head, then the body or hijacked bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str):
        self.reader = reader
        self.writer = writer
        self.method = method.upper()
        self.head: ResponseHead | None = None

    async def read_head(self) -> ResponseHead:
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            raise EngineError(502, "the engine closed the connection before answering") from None
        except asyncio.LimitOverrunError:
            raise EngineError(502, "the engine sent an oversized response head") from None
        except ConnectionError as exc:
            raise EngineUnreachable(f"the engine connection failed: {exc}") from None
        self.head = parse_head(raw[:-4])
        return self.head

    @property
    def upgraded(self) -> bool:
        return self.head is not None and self.head.status == 101

    @property
    def reusable(self) -> bool:
        """After its body is read whole: the connection can carry another request."""
        head = self.head
        if head is None or self.upgraded or "close" in head.header("Connection").lower():
            return False
        if self.method == "HEAD" or head.status in _NO_BODY_STATUSES or 100 <= head.status < 200:
            return True
        return "chunked" in head.header("Transfer-Encoding").lower() or head.header("Content-Length").isdigit()

    async def body(self) -> AsyncIterator[bytes]:
        """The response body as it arrives, de-chunked; raw bytes until EOF after a hijack."""
        try:
            async for data in self._body():
                yield data
        except ConnectionError as exc:
            raise EngineError(502, f"the engine connection broke: {exc}") from None

    async def _body(self) -> AsyncIterator[bytes]:
        head = self.head
        assert head is not None, "read_head first"
        if self.upgraded:
            async for data in self._until_eof():
                yield data
            return
        if self.method == "HEAD" or head.status in _NO_BODY_STATUSES or 100 <= head.status < 200:
            return
        if "chunked" in head.header("Transfer-Encoding").lower():
            async for data in self._chunked():
                yield data
            return
        length = head.header("Content-Length")
        if length.isdigit():
            async for data in self._exactly(int(length)):
                yield data
            return
        async for data in self._until_eof():
            yield data

    async def read_body(self) -> bytes:
        return b"".join([part async for part in self.body()])

    async def _until_eof(self) -> AsyncIterator[bytes]:
        while True:
            try:
                data = await self.reader.read(READ_SIZE)
            except ConnectionError:
                return
            if not data:
                return
            yield data

    async def _exactly(self, n: int) -> AsyncIterator[bytes]:
        while n > 0:
            data = await self.reader.read(min(n, READ_SIZE))
            if not data:
                raise EngineError(502, "the engine closed the connection in the middle of a response")
            n -= len(data)
            yield data

    async def _chunked(self) -> AsyncIterator[bytes]:
        try:
            while True:
                line = await self.reader.readuntil(b"\r\n")
                size_text = line[:-2].split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise EngineError(502, f"the engine sent an invalid chunk size {size_text[:20]!r}") from None
                if size == 0:
                    while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                        pass   # trailers
                    return
                async for data in self._exactly(size):
                    yield data
                if await self.reader.readexactly(2) != b"\r\n":
                    raise EngineError(502, "the engine sent a malformed chunk")
        except asyncio.IncompleteReadError:
            raise EngineError(502, "the engine closed the connection in the middle of a response") from None
        except asyncio.LimitOverrunError:
            raise EngineError(502, "the engine sent a malformed chunk header") from None

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close_write(self) -> None:
        """Half-closes the connection (stdin EOF for the container); output keeps flowing."""
        if self.writer.can_write_eof() and not self.writer.is_closing():
            self.writer.write_eof()

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except (OSError, asyncio.TimeoutError):
            pass


# -- the engine -------------------------------------------------------------------------------


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


class Engine:
    """The local engine's socket: relayed calls, streams and hijacks, and the reads the manager
    keeps verbatim. Calls run concurrently, each on a connection of its own at a time.
    `agent.sdk_engine.SdkEngine` adds the lifecycle calls of the agent's `LocalEngine` seam."""

    def __init__(self, url: str):
        self.address = EngineAddress.parse(url)
        self.url = self.address.url
        self._idle: list[EngineConnection] = []
        self._idle_loop: asyncio.AbstractEventLoop | None = None

    @property
    def same_clock(self) -> bool:
        """The engine's event times and this process's clock are the same clock."""
        return self.address.on_this_host

    def close(self) -> None:
        """Closes the idle keep-alive connections."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.writer.close()

    def _checkout(self) -> EngineConnection | None:
        loop = asyncio.get_running_loop()
        if self._idle_loop is not loop:          # connections belong to the loop that opened them
            self._idle, self._idle_loop = [], loop
        while self._idle:
            conn = self._idle.pop()
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn
            conn.writer.close()
        return None

    def _checkin(self, conn: EngineConnection) -> None:
        if len(self._idle) < MAX_IDLE and asyncio.get_running_loop() is self._idle_loop:
            conn.head = None
            self._idle.append(conn)
        else:
            conn.writer.close()

    async def _request_keep_alive(self, method: str, request: bytes) -> EngineResponse:
        """One whole call on an idle connection (or a new one); a reused connection the engine
        closed before answering (its idle close raced the request) is retried once on a new one."""
        while True:
            conn = self._checkout()
            reused = conn is not None
            if conn is None:
                reader, writer = await self.address.connect()
                conn = EngineConnection(reader, writer, method)
            conn.method = method.upper()
            try:
                try:
                    await conn.write(request)
                    await conn.read_head()
                except (ConnectionError, EngineError) as exc:
                    if reused and conn.head is None:
                        conn.writer.close()
                        continue
                    if isinstance(exc, ConnectionError):
                        raise EngineUnreachable(f"the engine connection failed: {exc}") from None
                    raise
                data = await conn.read_body()
            except BaseException:
                conn.writer.close()
                raise
            head = conn.head
            assert head is not None
            if conn.reusable:
                self._checkin(conn)
            else:
                await conn.close()
            return EngineResponse(head.status, head.headers, data)

    async def open(self, method: str, path: str, query: str = "", body: bytes = b"",
                   headers: Iterable[tuple[str, str]] = ()) -> EngineConnection:
        """Sends a request and reads the response head; the caller reads the body and closes."""
        request = build_request(method, path, query, body, headers, self.address.host_header)
        reader, writer = await self.address.connect()
        conn = EngineConnection(reader, writer, method)
        try:
            await conn.write(request)
            await conn.read_head()
        except ConnectionError as exc:
            await conn.close()
            raise EngineUnreachable(f"the engine connection failed: {exc}") from None
        except BaseException:
            await conn.close()
            raise
        return conn

    async def request(self, method: str, path: str, query: str = "", body: bytes = b"",
                      headers: Iterable[tuple[str, str]] = ()) -> EngineResponse:
        """One whole call: any status comes back as it is."""
        if not asks_for_upgrade(headers):
            request = build_request(method, path, query, body, headers, self.address.host_header, keep_alive=True)
            return await self._request_keep_alive(method, request)
        conn = await self.open(method, path, query, body, headers)
        try:
            data = await conn.read_body()
        finally:
            await conn.close()
        assert conn.head is not None
        return EngineResponse(conn.head.status, conn.head.headers, data)

    async def _ok(self, method: str, path: str, query: str = "", body: bytes = b"") -> EngineResponse:
        resp = await self.request(method, path, query, body)
        if resp.status >= 400:
            raise EngineError(resp.status, error_message(resp.body, resp.status))
        return resp

    # typed reads: bodies stay the engine's own JSON bytes

    async def list_containers(self, all: bool, filters_json: bytes = b"") -> bytes:
        params = [("all", "1" if all else "0")]
        if filters_json.strip():
            params.append(("filters", filters_json.decode()))
        return (await self._ok("GET", "/containers/json", urllib.parse.urlencode(params))).body

    async def container_ids(self) -> list[str]:
        return [c["Id"] for c in json_parse.loads(await self.list_containers(True) or b"[]")]

    async def inspect_container(self, container_id: str) -> bytes:
        return (await self._ok("GET", f"/containers/{_q(container_id)}/json")).body

    async def inspect_containers(self, container_ids: list[str]) -> list[bytes | None]:
        gate = asyncio.Semaphore(INSPECT_CONCURRENCY)

        async def read(container_id: str) -> bytes | None:
            async with gate:
                try:
                    return await self.inspect_container(container_id)
                except EngineError as exc:
                    if exc.status == 404:          # removed since it was listed
                        return None
                    raise
        # every read ends before the answer (none left running after a failure)
        docs = await asyncio.gather(*(read(i) for i in container_ids), return_exceptions=True)
        for doc in docs:
            if isinstance(doc, BaseException):
                raise doc
        return docs

    async def events(self, since_unix_nano: int = 0) -> AsyncIterator[bytes]:
        """The engine's event stream, one event's JSON at a time, until the engine ends it."""
        query = f"since={since_unix_nano // 10**9}.{since_unix_nano % 10**9:09d}" if since_unix_nano > 0 else ""
        conn = await self.open("GET", "/events", query)
        try:
            assert conn.head is not None
            if conn.head.status >= 400:
                raise EngineError(conn.head.status, error_message(await conn.read_body(), conn.head.status))
            pending = b""
            async for data in conn.body():
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield line
            if pending.strip():
                yield pending
        finally:
            await conn.close()
