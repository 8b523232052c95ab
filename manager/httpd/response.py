"""What handlers return (Response) and what they write to when they stream or hijack."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

JSON = "application/json"


class ClientGone(Exception):
    """The client closed its connection while a stream was being written."""


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.body, str):
            self.body = self.body.encode()
        if self.headers is None:
            self.headers = {}


def json_response(obj, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(obj, separators=(",", ":")).encode() + b"\n", JSON, headers or {})


def empty(status: int = 204) -> Response:
    return Response(status)


def error_response(status: int, message: str) -> Response:
    return json_response({"message": message}, status)


class StreamWriter:
    """A response body sent as it is produced: chunked, each write flushed at once."""

    def __init__(self, send):
        self._send = send          # async (bytes | None) -> None; None ends the body
        self.closed = False

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ClientGone("stream already closed")
        if data:
            await self._send(data)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self._send(None)


class HijackedConnection:
    """The raw connection after `101 UPGRADED`: bytes both ways, half-close aware."""

    def __init__(self, reader, writer, leftover: bytes = b""):
        self._reader = reader
        self._writer = writer
        self._leftover = leftover
        self.reader = self     # `conn.reader.read(n)` reads what the client sends

    async def read(self, n: int = 65536) -> bytes:
        if self._leftover:
            data, self._leftover = self._leftover[:n], self._leftover[n:]
            return data
        try:
            return await self._reader.read(n)
        except (ConnectionError, OSError):
            return b""

    async def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise ClientGone("client closed the connection")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ClientGone(str(exc)) from None

    async def close(self) -> None:
        try:
            if self._writer.can_write_eof():
                self._writer.write_eof()
        except (ConnectionError, OSError, RuntimeError):
            pass
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass
