"""The lean request-head parser (manager.httpd.wire) against h11, and the server on both framings.

The parser's contract: what it accepts, h11 accepts too and reads the same way; everything else
falls back to h11. The server tests drive a real loopback socket: pipelined requests, requests
split at every byte, bad and oversized heads, chunked uploads, `Connection: close`, HEAD.
"""
from __future__ import annotations

import asyncio
import json

import h11
import pytest

from swarmd.manager.httpd.request import Request
from swarmd.manager.httpd.response import json_response
from swarmd.manager.httpd.router import Router
from swarmd.manager.httpd.server import MAX_HEADER_BYTES, HttpServer
from swarmd.manager.httpd.wire import FALLBACK, NEED_MORE, TOO_LARGE, DateHeader, Head, chunk, parse_head, status_line

DOCKER_GET = (b"GET /v1.41/containers/abc/json HTTP/1.1\r\nHost: api.moby.localhost\r\n"
              b"User-Agent: Docker-Client/28.0.1 (linux)\r\nAccept-Encoding: gzip\r\n\r\n")
DOCKER_POST = (b"POST /v1.41/containers/create?name=web HTTP/1.1\r\nHost: api.moby.localhost\r\n"
               b"Content-Length: 17\r\nContent-Type: application/json\r\n\r\n")


def h11_reading(raw: bytes) -> tuple[str, str, list[tuple[str, str]]]:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    event = conn.next_event()
    assert isinstance(event, h11.Request)
    return (event.method.decode().upper(), event.target.decode("latin-1"),
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers])


# -- the parser -------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    DOCKER_GET,
    DOCKER_POST,
    b"get /_ping HTTP/1.1\r\nHOST: x\r\n\r\n",                                   # method and name case
    b"GET /x HTTP/1.1\r\nHost:x\r\nX-A:  spaced value \t\r\nX-Empty:\r\n\r\n",    # blanks around values
    b"GET /x HTTP/1.1\r\nHost: x\r\nX-Registry-Auth: a\r\nx-registry-auth: b\r\n\r\n",   # repeated headers
    b"GET /x?a=%20b&c HTTP/1.1\r\nHost: x\r\nX-Latin: caf\xe9\r\nConnection: keep-alive, close\r\n\r\n",
])
def test_what_the_parser_accepts_h11_reads_the_same_way(raw):
    head = parse_head(raw, MAX_HEADER_BYTES)
    assert isinstance(head, Head)
    assert (head.method, head.target, head.headers) == h11_reading(raw)
    assert head.size == raw.index(b"\r\n\r\n") + 4


def test_body_length_keep_alive_and_repeated_headers():
    head = parse_head(DOCKER_POST + b'{"Image":"busybox"}', MAX_HEADER_BYTES)
    assert head.content_length == 17 and head.keep_alive and head.size == len(DOCKER_POST)
    head = parse_head(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", 1024)
    assert head.keep_alive is False
    head = parse_head(b"GET /x HTTP/1.1\r\nHost: x\r\nA: 1\r\na: 2\r\n\r\n", 1024)
    assert head.headers == [("host", "x"), ("a", "1"), ("a", "2")]


def test_a_head_split_anywhere_needs_more_until_its_blank_line():
    for cut in range(len(DOCKER_GET)):
        assert parse_head(DOCKER_GET[:cut], MAX_HEADER_BYTES) is NEED_MORE, cut
    assert isinstance(parse_head(DOCKER_GET, MAX_HEADER_BYTES), Head)


@pytest.mark.parametrize("raw", [
    b"GET /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",       # chunked upload
    b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
    b"POST /c/attach HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
    b"GET /x HTTP/1.0\r\nHost: x\r\n\r\n",
    b"GET /x HTTP/1.1\r\n\r\n",                                                    # no Host
    b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",                              # two Hosts
    b"GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: x\r\n folded: value\r\n\r\n",                     # obs-fold
    b"GET /x HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",                           # control byte
    b"GET /x\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET http://x/y HTTP/1.1\r\nHost: x\r\n\r\n",                                 # absolute form
    b"CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"THIS IS NOT HTTP\r\n\r\n",
    b"GET /x HTTP/1.1\nHost: x\n\n",                                               # bare line feeds
    b"GET /x HTTP/1.1\r\nHost: x\n\r\n",
])
def test_anything_but_the_common_case_falls_back_to_h11(raw):
    assert parse_head(raw, MAX_HEADER_BYTES) is FALLBACK


def test_oversized_heads_are_too_large_complete_or_not():
    big = b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert parse_head(big, 1024) is TOO_LARGE
    assert parse_head(big[:1500], 1024) is TOO_LARGE
    assert parse_head(big[:1000], 1024) is NEED_MORE
    assert isinstance(parse_head(big, 4096), Head)
    assert parse_head(big, len(big) - 1) is TOO_LARGE and isinstance(parse_head(big, len(big)), Head)


def test_response_pieces():
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n" and status_line(599) == b"HTTP/1.1 599 \r\n"
    assert chunk(b"hello") == b"5\r\nhello\r\n"
    now = [1_700_000_000.2]
    date = DateHeader(clock=lambda: now[0])
    assert date.line() == b"Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
    now[0] += 0.5
    assert date.line() == b"Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
    now[0] += 1
    assert date.line() == b"Date: Tue, 14 Nov 2023 22:13:21 GMT\r\n"


# -- the server on a socket ---------------------------------------------------------------------------

@pytest.fixture
async def server():
    router = Router()
    seen = []

    async def echo(req: Request):
        seen.append(req)
        return json_response({"method": req.method, "path": req.path, "body": req.body.decode("latin-1"),
                              "auth": req.headers.get("X-Registry-Auth"), "query": req.query})

    async def stream(req: Request):
        w = await req.start_stream(200, "application/json")
        await w.write(b"one\n")
        await asyncio.sleep(0.01)          # the client watcher is reading by now, as during a relay
        await w.write(b"two\n")
        await w.close()

    router.add("GET", "/echo/{id:path}", echo)
    router.add("POST", "/echo/{id:path}", echo)
    router.add("GET", "/stream", stream)
    srv = HttpServer(router, max_body=1024)
    await srv.start(["tcp://127.0.0.1:0"])
    srv.seen = seen
    yield srv
    await srv.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in headers:
        return head, headers, await reader.readexactly(int(headers["content-length"]))
    body = b""
    if headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            data = await reader.readexactly(size + 2)
            if not size:
                break
            body += data[:-2]
    return head, headers, body


async def connect(srv):
    host, port = srv.addresses[0].rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def test_pipelined_requests_are_answered_in_order(server):
    reader, writer = await connect(server)
    writer.write(b"".join(f"GET /echo/{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(5))
                 + b"POST /echo/p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
                 + b"GET /echo/last HTTP/1.1\r\nHost: x\r\n\r\n")
    paths = []
    for _ in range(7):
        head, headers, body = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert headers["api-version"] == "1.41" and headers["ostype"] == "linux" and "date" in headers
        doc = json.loads(body)
        paths.append((doc["path"], doc["body"]))
    assert paths == [(f"/echo/{i}", "") for i in range(5)] + [("/echo/p", "body"), ("/echo/last", "")]
    writer.close()


async def test_requests_split_at_every_byte_are_read_whole(server):
    raw = b"POST /v1.41/echo/s?all=1 HTTP/1.1\r\nHost: x\r\nX-Registry-Auth: e30=\r\nContent-Length: 5\r\n\r\nhello"
    reader, writer = await connect(server)
    for cut in range(1, len(raw)):
        writer.write(raw[:cut])
        await writer.drain()
        await asyncio.sleep(0)             # let the server read the first part on its own
        writer.write(raw[cut:])
        _, _, body = await read_response(reader)
        assert json.loads(body) == {"method": "POST", "path": "/echo/s", "body": "hello", "auth": "e30=",
                                    "query": {"all": ["1"]}}, cut
    writer.close()


async def test_bad_and_oversized_heads_get_a_docker_shaped_4xx(server):
    for raw, status in ((b"THIS IS NOT HTTP\r\n\r\n", 400),
                        (b"GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
                        (b"GET /x HTTP/1.1\r\n\r\n", 400),
                        (b"GET /" + b"a" * (MAX_HEADER_BYTES + 100) + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431)):
        reader, writer = await connect(server)
        writer.write(raw)
        head, headers, body = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 %d" % status), head
        assert json.loads(body)["message"].startswith("bad request")
        assert headers["content-type"] == "application/json"
        assert await asyncio.wait_for(reader.read(), 5) == b""       # and the connection is closed
        writer.close()


async def test_chunked_upload_falls_back_to_h11_and_the_connection_goes_on(server):
    reader, writer = await connect(server)
    writer.write(b"GET /echo/a HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"POST /echo/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                 b"GET /echo/c HTTP/1.1\r\nHost: x\r\n\r\n")
    bodies = [json.loads((await read_response(reader))[2]) for _ in range(3)]
    assert [(b["path"], b["body"]) for b in bodies] == [("/echo/a", ""), ("/echo/b", "abcde"), ("/echo/c", "")]
    writer.close()


async def test_connection_close_head_and_too_large_bodies(server):
    reader, writer = await connect(server)
    writer.write(b"HEAD /echo/h HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)       # HEAD: headers, no body
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: " in head
    head, headers, body = await read_response(reader)
    assert headers["connection"] == "close" and json.loads(body)["path"] == "/echo/c"
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    reader, writer = await connect(server)
    writer.write(b"POST /echo/big HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 100)
    head, headers, body = await read_response(reader)
    assert head.startswith(b"HTTP/1.1 413") and "exceeds the limit of 1024" in json.loads(body)["message"]
    assert headers["connection"] == "close"
    writer.close()


async def test_streams_are_chunked_and_the_connection_is_kept(server):
    reader, writer = await connect(server)
    for _ in range(2):
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        head, headers, body = await read_response(reader)
        assert headers["transfer-encoding"] == "chunked" and body == b"one\ntwo\n"
    writer.write(b"GET /echo/after HTTP/1.1\r\nHost: x\r\n\r\n")
    assert json.loads((await read_response(reader))[2])["path"] == "/echo/after"
    writer.close()


async def test_a_client_idle_past_its_deadline_is_disconnected(monkeypatch):
    from swarmd.manager.httpd import server as server_module
    monkeypatch.setattr(server_module, "IDLE_TIMEOUT", 0.2)
    monkeypatch.setattr(server_module, "SWEEP_PERIOD", 0.05)
    srv = HttpServer(Router())
    await srv.start(["tcp://127.0.0.1:0"])
    try:
        reader, writer = await connect(srv)
        assert await asyncio.wait_for(reader.read(), 5) == b""         # closed by the server, not by wait_for
        writer.close()
    finally:
        await srv.close()


async def test_the_observer_sees_every_request_with_its_route_and_status():
    seen = []
    router = Router()

    async def ok(req: Request):
        return json_response({})

    router.add("GET", "/things/{id}/json", ok)
    srv = HttpServer(router, observer=lambda m, route, status, s: seen.append((m, route, status, s >= 0)))
    await srv.start(["tcp://127.0.0.1:0"])
    try:
        reader, writer = await connect(srv)
        writer.write(b"GET /v1.41/things/a/json HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /v9.99/things/a/json HTTP/1.1\r\nHost: x\r\n\r\n")
        statuses = [(await read_response(reader))[0].split(b" ")[1] for _ in range(3)]
        assert statuses == [b"200", b"404", b"400"]
        writer.close()
    finally:
        await srv.close()
    assert seen == [("GET", "/things/{id}/json", 200, True), ("GET", "unmatched", 404, True),
                    ("GET", "unmatched", 400, True)]


# -- routes tried by path shape ------------------------------------------------------------------------

def _every_route_in_order(routes, method: str, path: str):
    """The router's answer by its definition: the exact static route, else the first regex in order."""
    method = method.upper()
    if any(m == method and p == path and "{" not in p for m, p, _ in routes):
        return path, {}
    known = False
    for m, p, regex in routes:
        match = regex.match(path)
        if match is None:
            continue
        if m == method:
            return p, match.groupdict()
        known = True
    return 405 if known and method not in ("GET", "HEAD") else 404


def test_routes_tried_by_shape_answer_as_every_route_tried_in_order():
    import itertools

    from swarmd.manager.api.routes import ROUTES
    from swarmd.manager.httpd.errors import ApiError
    from swarmd.manager.httpd.router import compile_pattern
    router = Router()
    routes = []
    for method, pattern, handler in ROUTES + [("GET", "/{anything}/wild", None), ("POST", "/odd/{a}.tar", None)]:
        router.add(method, pattern, handler)
        routes.append((method.upper(), pattern, compile_pattern(pattern)))
    segments = ["containers", "images", "exec", "json", "start", "attach", "ws", "abc", "a.tar", "wild", "odd",
                "_ping", "", "json\n"]
    checked = 0
    for depth in range(0, 4):
        for parts in itertools.product(segments, repeat=depth):
            path = "/" + "/".join(parts)
            for method in ("GET", "POST", "DELETE", "HEAD", "PUT"):
                want = _every_route_in_order(routes, method, path)
                try:
                    _, params, route = router.resolve(method, path)
                    got = (route, params)
                except ApiError as err:
                    got = err.status
                assert got == want, (method, path)
                checked += 1
    assert checked > 10_000
