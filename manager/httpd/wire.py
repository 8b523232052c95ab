"""HTTP/1.1 on the wire for the common case, without a state machine: request heads in, response heads out.

`parse_head` reads what every Docker client sends for an ordinary call (HTTP/1.1, origin-form
target, one Host, a Content-Length body or none) with one regular expression over the whole head.
It accepts a strict subset of what h11 accepts and reads it the same way (header names lowercased,
values stripped of surrounding blanks); anything else, including every malformed head, is
`FALLBACK`: the server hands those bytes to h11, so chunked uploads, `Expect`, `Upgrade`, HTTP/1.0
and the 400/431 answers to bad heads behave exactly as they did before this parser existed.

The response side renders status lines and the engine's identity headers as bytes once, with the
`Date` header re-rendered at most once a second.
"""
from __future__ import annotations

import http
import re
import time
from dataclasses import dataclass
from email.utils import formatdate

NEED_MORE = "need-more"        # no blank line yet: read on
FALLBACK = "fallback"          # not the common case: h11 reads this request (and the connection's rest)
TOO_LARGE = "too-large"        # the head runs past the limit: 431, whatever the reads' sizes were

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
# Request line, then header lines whose values hold no control byte but tab (h11 allows more: those
# fall back), then the blank line. The target is origin-form, h11's VCHARs only.
_HEAD = re.compile(rb"(" + _TOKEN + rb") (/[\x21-\x7e]*) HTTP/1\.1\r\n"
                   rb"((?:" + _TOKEN + rb":[\t\x20-\x7e\x80-\xff]*\r\n)*)\r\n")
_MAX_LENGTH_DIGITS = 18
# Headers whose presence means the request is not the common case.
_NOT_LEAN = frozenset({"transfer-encoding", "expect", "upgrade"})


@dataclass(slots=True)
class Head:
    """One parsed request head; names lowercased as h11 gives them."""
    method: str
    target: str
    headers: list[tuple[str, str]]
    content_length: int
    keep_alive: bool
    size: int                   # bytes of the head, blank line included


def parse_head(buf: bytes | bytearray, max_size: int) -> Head | str:
    """A Head, NEED_MORE (no blank line yet, still under `max_size`), TOO_LARGE or FALLBACK."""
    window = max_size + 1
    end = buf.find(b"\r\n\r\n", 0, window)
    if end < 0:
        # a head ending in bare LFs (a "\n\r\n" here cannot be the end of a "\r\n\r\n"): h11's reading
        if buf.find(b"\n\n", 0, window) >= 0 or buf.find(b"\n\r\n", 0, window) >= 0:
            return FALLBACK
        return TOO_LARGE if len(buf) > max_size else NEED_MORE
    size = end + 4
    if size > max_size:
        return TOO_LARGE
    m = _HEAD.fullmatch(buf, 0, size)
    if m is None:
        return FALLBACK
    method = m.group(1).decode("latin-1").upper()
    if method == "CONNECT":
        return FALLBACK
    headers = []
    hosts = 0
    length = None
    keep_alive = True
    block = m.group(3)
    for line in block.split(b"\r\n")[:-1] if block else ():
        raw_name, _, raw_value = line.partition(b":")
        name = raw_name.decode("latin-1").lower()
        value = raw_value.strip(b" \t").decode("latin-1")
        if name in _NOT_LEAN:
            return FALLBACK
        if name == "host":
            hosts += 1
        elif name == "content-length":
            if length is not None or not value.isdigit() or not value.isascii() or len(value) > _MAX_LENGTH_DIGITS:
                return FALLBACK
            length = int(value)
        elif name == "connection" and "close" in (t.strip().lower() for t in value.split(",")):
            keep_alive = False
        headers.append((name, value))
    if hosts != 1:
        return FALLBACK
    return Head(method, m.group(2).decode("latin-1"), headers, length or 0, keep_alive, size)


# -- responses ---------------------------------------------------------------------------------------

_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    """`HTTP/1.1 200 OK\\r\\n`, rendered once per status."""
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")
    return line


def header_bytes(headers) -> bytes:
    """`Name: value\\r\\n` lines; values with CR or LF are refused (no header injection)."""
    out = []
    for k, v in headers:
        v = str(v)
        if "\r" in v or "\n" in v or "\r" in k or "\n" in k:
            raise ValueError(f"illegal header {k!r}")
        out.append(f"{k}: {v}\r\n")
    return "".join(out).encode("latin-1")


class DateHeader:
    """The `Date:` line, rendered once per second (the engine's responses carry one too)."""

    def __init__(self, clock=time.time):
        self._clock = clock
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        now = int(self._clock())
        if now != self._second:
            self._second = now
            self._line = f"Date: {formatdate(now, usegmt=True)}\r\n".encode("latin-1")
        return self._line


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
