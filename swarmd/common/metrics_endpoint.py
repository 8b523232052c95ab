"""`--metrics-addr`: a Prometheus scrape endpoint on the daemon's own event loop.

Each daemon keeps its metrics in its own `CollectorRegistry`; this serves `GET /metrics` (text
exposition format) and `GET /healthz` from it without threads.
"""
from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from swarmd.common import logs

log = logs.get("metrics")


def split_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"invalid metrics address {addr!r}: use HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


class MetricsEndpoint:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self._server: asyncio.AbstractServer | None = None
        self.address = ""

    async def start(self, addr: str) -> "MetricsEndpoint":
        host, port = split_addr(addr)
        self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
        h, p = self._server.sockets[0].getsockname()[:2]
        self.address = f"{h}:{p}"
        log.info("metrics endpoint serving", addr=self.address)
        return self

    async def start_if_asked(self, addr: str | None) -> bool:
        """Starts on `addr` when one is given; False (said in the log) when it cannot listen."""
        if not addr:
            return True
        try:
            await self.start(addr)
        except (OSError, ValueError) as exc:
            log.error("cannot serve metrics", metrics_addr=addr, error=str(exc))
            return False
        return True

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target = (head.split(b"\r\n", 1)[0].split(b" ") + [b"", b""])[:2]
            path = target.split(b"?", 1)[0]
            if method not in (b"GET", b"HEAD"):
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"method not allowed\n"
            elif path == b"/metrics":
                body = await asyncio.to_thread(generate_latest, self.registry)
                status, ctype = "200 OK", CONTENT_TYPE_LATEST
            elif path == b"/healthz":
                status, ctype, body = "200 OK", "text/plain", b"ok\n"
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + (body if method != b"HEAD" else b""))
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError, OSError):
            pass
        finally:
            writer.close()
