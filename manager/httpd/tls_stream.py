"""TLS over an asyncio stream with half-close, for the Docker API's hijacked connections.

asyncio's own TLS transport ends the whole connection when the peer stops writing (a TCP FIN
or a close_notify alert), but `docker attach`/`exec`/`run` close their write side first and
then read the output to the end. This module runs the TLS state machine itself (ssl.SSLObject
over memory BIOs on a plain TCP stream), so reading EOF leaves the write side open, and it
exposes the few StreamReader/StreamWriter methods the HTTP server uses.
"""
from __future__ import annotations

import asyncio
import ssl

HANDSHAKE_TIMEOUT = 10.0
READ_SIZE = 65536


class TLSStream:
    """One server-side TLS connection: `read` like a StreamReader, `write`/`drain`/`close`
    like a StreamWriter."""

    def __init__(self, context: ssl.SSLContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._reader = reader
        self._writer = writer
        self._read_lock = asyncio.Lock()
        self._eof = False

    # -- handshake ------------------------------------------------------------------------

    async def handshake(self, timeout: float = HANDSHAKE_TIMEOUT) -> None:
        """Completes the TLS handshake; raises ssl.SSLError or ConnectionError when refused."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    self._tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    await self._flush()
                    data = await self._reader.read(READ_SIZE)
                    if not data:
                        raise ConnectionError("the client closed the connection during the TLS handshake")
                    self._incoming.write(data)
                except ssl.SSLError:
                    await self._flush()          # the alert tells the client why
                    raise
            await self._flush()

    async def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            self._writer.write(data)
            await self._writer.drain()

    # -- reading ----------------------------------------------------------------------------

    async def read(self, n: int = READ_SIZE) -> bytes:
        """Up to `n` plaintext bytes; b"" once the client has finished sending (write side stays open)."""
        async with self._read_lock:
            while not self._eof:
                try:
                    data = self._tls.read(n)
                except ssl.SSLWantReadError:
                    await self._flush()           # e.g. TLS 1.3 key updates
                    raw = await self._reader.read(READ_SIZE)
                    if not raw:
                        self._eof = True
                        break
                    self._incoming.write(raw)
                    continue
                except ssl.SSLZeroReturnError:   # close_notify
                    self._eof = True
                    break
                except ssl.SSLError as exc:
                    raise ConnectionError(f"TLS error: {exc}") from None
                if data:
                    return data
                self._eof = True
            return b""

    # -- writing ----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not data:
            return
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            raise ConnectionError(f"TLS error: {exc}") from None
        out = self._outgoing.read()
        if out:
            self._writer.write(out)

    async def drain(self) -> None:
        await self._writer.drain()

    def is_closing(self) -> bool:
        return self._writer.is_closing()

    def can_write_eof(self) -> bool:
        return False            # TLS has no half-close of our own: close() ends the connection

    def write_eof(self) -> None:
        raise RuntimeError("TLS streams cannot half-close")

    def close(self) -> None:
        if self._writer.is_closing():
            return
        try:
            self._tls.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLError, ValueError):
            pass
        out = self._outgoing.read()
        if out:
            self._writer.write(out)
        self._writer.close()

    async def wait_closed(self) -> None:
        await self._writer.wait_closed()

    def get_extra_info(self, name: str, default=None):
        if name == "peercert":
            return self._tls.getpeercert()
        if name == "ssl_object":
            return self._tls
        return self._writer.get_extra_info(name, default)
