"""A small keep-alive Docker API client on asyncio, for load generation in benchmarks.

The same client talks to the manager (tcp://) and straight to an engine (unix://), so both sides
of a comparison pay the same client cost. Responses are read whole (Content-Length or chunked).
"""
from __future__ import annotations

import asyncio
import json
import urllib.parse

API = "/v1.41"


class ApiFailed(Exception):
    def __init__(self, status: int, body: bytes):
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body


class ApiClient:
    """One connection, one request at a time; reconnects when the server closes."""

    def __init__(self, url: str):
        parts = urllib.parse.urlsplit(url if "://" in url else f"tcp://{url}")
        self.socket_path = parts.path if parts.scheme == "unix" else ""
        self.host, self.port = parts.hostname, parts.port
        self._rw: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def _conn(self):
        if self._rw is None:
            if self.socket_path:
                self._rw = await asyncio.open_unix_connection(self.socket_path, limit=1 << 24)
            else:
                self._rw = await asyncio.open_connection(self.host, self.port, limit=1 << 24)
        return self._rw

    async def close(self) -> None:
        if self._rw is not None:
            self._rw[1].close()
            self._rw = None

    async def call(self, method: str, path: str, body: dict | None = None, ok=(200, 201, 204, 304)) -> bytes:
        data = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {API}{path} HTTP/1.1\r\nHost: docker\r\nContent-Length: {len(data)}\r\n"
                + ("Content-Type: application/json\r\n" if body is not None else "") + "\r\n").encode()
        for attempt in (0, 1):
            reader, writer = await self._conn()
            try:
                writer.write(head + data)
                status, payload, close = await _read_response(reader)
                break
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    raise
        if close:
            await self.close()
        if status not in ok:
            raise ApiFailed(status, payload)
        return payload

    async def json(self, method: str, path: str, body: dict | None = None):
        return json.loads(await self.call(method, path, body) or b"null")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    close = headers.get("connection", "").lower() == "close"
    if "chunked" in headers.get("transfer-encoding", ""):
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        return status, b"".join(parts), close
    length = int(headers.get("content-length", "0") or 0)
    if status in (204, 304) or length == 0:
        return status, b"", close
    return status, await reader.readexactly(length), close
