"""How one connection's requests are read and its responses framed: the lean path, and h11's.

A connection starts on `LeanFraming` (wire.parse_head: one regular expression per head, responses
rendered as bytes into one write). The first request that is not the common case (chunked upload,
`Expect`, `Upgrade` for attach/exec, HTTP/1.0, anything malformed or oversized) moves the
connection to `H11Framing`, handed the bytes read so far: h11 then reads that request and the rest
of the connection exactly as the server did before the lean path existed. Both expose the same
methods, so the server's request handling does not know which one it runs on.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable

import h11

from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.response import ClientGone, error_response
from swarmd.manager.httpd.wire import (FALLBACK, LAST_CHUNK, NEED_MORE, TOO_LARGE, DateHeader, Head, chunk, header_bytes,
                                       parse_head, status_line)

Reader = Callable[[object, float], Awaitable[bytes]]     # the server's timed read: (reader, timeout) -> bytes


class BadRequest(Exception):
    """The request head could not be read: answered with `status` and the connection closed."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _too_large(max_body: int) -> ApiError:
    return ApiError(413, f"request body exceeds the limit of {max_body} bytes")


async def send_or_gone(writer, data: bytes) -> None:
    """Writes `data` to the client and waits for it to drain; ClientGone once it has left."""
    if writer.is_closing():
        raise ClientGone("client closed the connection")
    writer.write(data)
    await writer.drain()


class LeanFraming:
    """The common case: a byte buffer, Content-Length bodies, responses rendered as bytes."""

    def __init__(self, reader, writer, read: Reader, identity: bytes, date: DateHeader, max_head: int):
        self.reader = reader
        self.writer = writer
        self._read = read
        self._identity = identity          # the engine's identity header lines, rendered once
        self._date = date
        self._max_head = max_head
        self.buf = bytearray()
        self.head: Head | None = None
        self.must_close = False
        self.switch_requested = False      # requests asking to upgrade are h11's
        self._ended = True

    async def next_request(self, idle_timeout: float, head_timeout: float) -> Head | str | None:
        """The next request's head; None once the client has closed; FALLBACK when h11 must read
        it (the bytes stay in `buf` for it)."""
        while True:
            if self.buf:
                head = parse_head(self.buf, self._max_head)
                if head is FALLBACK:
                    return FALLBACK
                if head is TOO_LARGE:      # h11's status and words for it
                    raise BadRequest(431, "bad request: Receive buffer too long")
                if head is not NEED_MORE:
                    del self.buf[:head.size]
                    self.head = head
                    return head
            # a head begun must be finished promptly; between requests the client may idle
            data = await self._read(self.reader, head_timeout if self.buf else idle_timeout)
            if not data:
                return None
            self.buf += data

    async def read_body(self, max_body: int, timeout: float) -> bytes:
        n = self.head.content_length
        if n > max_body:
            self.must_close = True         # the body is left unread: the connection cannot go on
            raise _too_large(max_body)
        while len(self.buf) < n:
            data = await self._read(self.reader, timeout)
            if not data:
                self.must_close = True
                raise ClientGone("the client closed the connection in the middle of the body")
            self.buf += data
        if not n:
            return b""
        body = bytes(self.buf[:n])
        del self.buf[:n]
        return body

    def _head_bytes(self, status: int, content_type: str | None, headers: dict, framing: bytes) -> bytes:
        parts = [status_line(status), self._identity, self._date.line()]
        if content_type:
            parts.append(header_bytes((("Content-Type", content_type),)))
        if headers:
            parts.append(header_bytes(headers.items()))
        parts.append(framing)
        if self.must_close or not self.head.keep_alive:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    async def _send(self, data: bytes) -> None:
        await send_or_gone(self.writer, data)

    async def send_response(self, status: int, content_type: str | None, headers: dict, body: bytes,
                            head_only: bool) -> None:
        no_body = status in (204, 304) or status < 200
        framing = b"" if no_body else b"Content-Length: %d\r\n" % len(body)
        data = self._head_bytes(status, content_type, headers, framing)
        if body and not head_only and not no_body:
            data += body                   # head and body in one write: one send per unary response
        await self._send(data)

    async def send_error(self, status: int, message: str) -> None:
        """A Docker-shaped error for a head refused before it was read (too large): then close."""
        self.must_close = True
        resp = error_response(status, message)
        try:
            await self.send_response(resp.status, resp.content_type, resp.headers, resp.body, False)
        except (ClientGone, ConnectionError, OSError):    # the client is gone: nothing more to say
            pass

    async def start_stream(self, status: int, content_type: str, headers: dict) -> None:
        self._ended = False
        await self._send(self._head_bytes(status, content_type, headers, b"Transfer-Encoding: chunked\r\n"))

    async def send_data(self, data: bytes) -> None:
        if self.head.method != "HEAD":
            await self._send(chunk(data))

    async def end_stream(self) -> None:
        if not self._ended:
            self._ended = True
            if self.head.method != "HEAD":
                await self._send(LAST_CHUNK)

    async def hijack(self, content_type: str) -> bytes:
        """The raw stream without an upgrade (old clients that did not ask for one): 200, then bytes
        both ways; returns what the client sent past the request."""
        head = status_line(200) + self._identity + self._date.line() + header_bytes([("Content-Type", content_type)])
        await self._send(head + b"\r\n")
        leftover = bytes(self.buf)
        self.buf.clear()
        return leftover

    def next_cycle(self) -> bool:
        """Whether the connection serves another request."""
        return self.head.keep_alive and not self.must_close and self._ended


class H11Framing:
    """Everything else, through h11's state machine (the server's original reading of HTTP)."""

    def __init__(self, reader, writer, read: Reader, identity: list[tuple[str, str]], date: DateHeader,
                 max_head: int, received: bytes = b""):
        self.reader = reader
        self.writer = writer
        self._read = read
        self._identity = identity
        self._date = date
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)
        if received:
            self.conn.receive_data(received)
        self.head: Head | None = None

    async def _next_event(self, timeout: float):
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self._read(self.reader, timeout))
                continue
            if event is h11.PAUSED:
                return None
            return event

    async def next_request(self, idle_timeout: float, head_timeout: float) -> Head | None:
        try:
            event = await self._next_event(idle_timeout)
        except h11.RemoteProtocolError as exc:
            raise BadRequest(exc.error_status_hint, f"bad request: {exc}") from None
        if not isinstance(event, h11.Request):
            return None
        self.head = Head(event.method.decode("latin-1").upper(), event.target.decode("latin-1"),
                         [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers], -1, True, 0)
        return self.head

    @property
    def switch_requested(self) -> bool:
        return self.conn.their_state is h11.MIGHT_SWITCH_PROTOCOL

    async def read_body(self, max_body: int, timeout: float) -> bytes:
        parts, size = [], 0
        while True:
            event = await self._next_event(timeout)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > max_body:
                    raise _too_large(max_body)
                parts.append(event.data)
            elif isinstance(event, h11.EndOfMessage) or event is None:
                return b"".join(parts)
            else:
                raise ApiError(400, "incomplete request body")

    def _headers(self, content_type: str | None, headers: dict) -> list[tuple[str, str]]:
        out = self._identity + [("Date", self._date.line()[6:-2].decode("latin-1"))]
        if content_type:
            out.append(("Content-Type", content_type))
        out += [(k, str(v)) for k, v in headers.items()]
        return out

    async def _write(self, event) -> None:
        data = self.conn.send(event)
        if data:
            await send_or_gone(self.writer, data)

    async def send_response(self, status: int, content_type: str | None, headers: dict, body: bytes,
                            head_only: bool) -> None:
        hdrs = self._headers(content_type, headers)
        no_body = status in (204, 304) or status < 200
        if not no_body:
            hdrs.append(("Content-Length", str(len(body))))
        # head, body and end in one write: one send per unary response
        data = self.conn.send(h11.Response(status_code=status, headers=hdrs)) or b""
        if body and not head_only and not no_body:
            data += self.conn.send(h11.Data(data=body)) or b""
        data += self.conn.send(h11.EndOfMessage()) or b""
        await send_or_gone(self.writer, data)

    async def send_error(self, status: int, message: str) -> None:
        """A Docker-shaped error for a head h11 refused, when the state machine still allows one."""
        try:
            if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                resp = error_response(status, message)
                await self.send_response(resp.status, resp.content_type, resp.headers, resp.body, False)
        except Exception:   # the client is gone or h11 refuses: nothing more can be said on this connection
            pass

    async def start_stream(self, status: int, content_type: str, headers: dict) -> None:
        await self._write(h11.Response(status_code=status, headers=self._headers(content_type, headers)))

    async def send_data(self, data: bytes) -> None:
        await self._write(h11.Data(data=data))

    async def end_stream(self) -> None:
        if self.conn.our_state is h11.SEND_BODY:
            await self._write(h11.EndOfMessage())

    async def hijack(self, content_type: str) -> bytes:
        headers = self._headers(content_type, {})
        if self.switch_requested:
            await self._write(h11.InformationalResponse(
                status_code=101, headers=headers + [("Connection", "Upgrade"), ("Upgrade", "tcp")], reason=b"UPGRADED"))
            return bytes(self.conn.trailing_data[0])
        # the client did not ask to upgrade (old clients): answer 200 and use the raw stream anyway
        head = "HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        self.writer.write(head.encode("latin-1"))
        await self.writer.drain()
        return b""

    def next_cycle(self) -> bool:
        conn = self.conn
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return False
        conn.start_next_cycle()
        return True
