"""The HTTP server on a real loopback socket: framing, errors, streams, hijacks, client departure."""
from __future__ import annotations

import asyncio
import json

import pytest

from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.request import Headers, Request
from swarmd.manager.httpd.response import Response, json_response
from swarmd.manager.httpd.router import Router
from swarmd.manager.httpd.server import HttpServer


async def _exchange(addr: str, raw: bytes, read_until_close: bool = True, timeout: float = 5) -> bytes:
    host, port = addr.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(-1), timeout) if read_until_close else b""
    writer.close()
    return data


def _parse(resp: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


@pytest.fixture
async def server():
    router = Router()
    seen = {}

    async def hello(req: Request) -> Response:
        return json_response({"path": req.path, "version": req.version, "all": req.flag("all"),
                              "filters": req.filters(), "params": req.params})

    async def boom(req: Request) -> Response:
        raise RuntimeError("secret internals")

    async def conflict(req: Request) -> Response:
        raise ApiError(409, "Conflict. it is taken")

    async def echo_json(req: Request) -> Response:
        return json_response(req.json())

    gate = asyncio.Event()

    async def slow_stream(req: Request):
        w = await req.start_stream(200, "application/json")
        await gate.wait()
        await w.write(b'{"StatusCode":0}\n')
        await w.close()

    async def forever(req: Request):
        w = await req.start_stream(200, "application/json")
        try:
            await w.write(b"first\n")
            await asyncio.sleep(3600)
        finally:
            seen["forever_cleaned_up"] = True

    async def hijack(req: Request):
        conn = await req.hijack("application/vnd.docker.raw-stream")
        received = b""
        while True:
            chunk = await conn.reader.read(1024)
            if not chunk:
                break
            received += chunk
        await conn.write(b"got:" + received)   # the client half-closed and still reads
        await conn.close()

    router.add("GET", "/hello/{name:path}/json", hello)
    router.add("GET", "/boom", boom)
    router.add("POST", "/conflict", conflict)
    router.add("POST", "/echo", echo_json)
    router.add("POST", "/wait", slow_stream)
    router.add("GET", "/forever", forever)
    router.add("POST", "/attach", hijack)
    srv = HttpServer(router, api_version="1.41", min_api_version="1.12", server_header="Docker/1.41 test",
                     max_body=1024)
    await srv.start(["tcp://127.0.0.1:0"])
    srv.gate = gate
    srv.seen = seen
    yield srv
    await srv.close()


async def test_routes_with_and_without_version_prefix_and_slashes_in_names(server):
    for prefix in ("", "/v1.41", "/v1.24"):
        raw = (f"GET {prefix}/hello/127.0.0.1:5000/busybox/json?all=1&filters=%7B%22label%22%3A%7B%22a%3Db%22%3Atrue%7D%7D"
               " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode()
        status, headers, body = _parse(await _exchange(server.addresses[0], raw))
        assert status == 200
        assert headers["api-version"] == "1.41" and headers["ostype"] == "linux"
        assert headers["content-type"] == "application/json"
        doc = json.loads(body)
        assert doc["params"] == {"name": "127.0.0.1:5000/busybox"}
        assert doc["all"] is True and doc["filters"] == {"label": ["a=b"]}
        assert doc["version"] == (prefix[2:] or "1.41")


async def test_version_outside_range_is_refused_with_engine_wording(server):
    raw = b"GET /v1.99/hello/x/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, _, body = _parse(await _exchange(server.addresses[0], raw))
    assert status == 400
    assert json.loads(body)["message"] == "client version 1.99 is too new. Maximum supported API version is 1.41"
    raw = b"GET /v1.5/hello/x/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, _, body = _parse(await _exchange(server.addresses[0], raw))
    assert status == 400 and "too old" in json.loads(body)["message"]


async def test_unknown_route_bug_and_api_error_are_docker_shaped(server):
    status, headers, body = _parse(await _exchange(
        server.addresses[0], b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert status == 404 and json.loads(body) == {"message": "page not found"}
    status, _, body = _parse(await _exchange(
        server.addresses[0], b"GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert status == 500
    assert "Traceback" not in body.decode() and json.loads(body)["message"].startswith("internal error")
    status, _, body = _parse(await _exchange(
        server.addresses[0], b"POST /conflict HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
    assert status == 409 and json.loads(body)["message"] == "Conflict. it is taken"


async def test_bad_json_huge_body_and_garbage_get_4xx(server):
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{oops"
    status, _, body = _parse(await _exchange(server.addresses[0], raw))
    assert status == 400 and "invalid JSON" in json.loads(body)["message"]
    big = b"x" * 4096
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n" + big
    status, _, body = _parse(await _exchange(server.addresses[0], raw))
    assert status == 413
    status, _, _ = _parse(await _exchange(server.addresses[0], b"THIS IS NOT HTTP\r\n\r\n"))
    assert status == 400
    raw = b"GET /hello/x/json?filters=%5B1%5D HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, _, body = _parse(await _exchange(server.addresses[0], raw))
    assert status == 400 and "invalid filter" in json.loads(body)["message"]


async def test_keep_alive_serves_several_requests_on_one_connection(server):
    host, port = server.addresses[0].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    for _ in range(3):
        writer.write(b"GET /hello/a/json HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = int([line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0]
                     .split(b":")[1])
        body = await reader.readexactly(length)
        assert json.loads(body)["path"] == "/hello/a/json"
    writer.close()


async def test_stream_headers_are_flushed_before_the_body_exists(server):
    host, port = server.addresses[0].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /wait HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)   # the gate is still closed
    assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower()
    server.gate.set()
    rest = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
    assert b'{"StatusCode":0}' in rest
    writer.close()


async def test_client_leaving_a_stream_cancels_its_handler(server):
    host, port = server.addresses[0].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(reader.readuntil(b"first\n"), 5)
    writer.close()
    for _ in range(100):
        if server.seen.get("forever_cleaned_up"):
            break
        await asyncio.sleep(0.02)
    assert server.seen.get("forever_cleaned_up") is True


async def test_hijack_answers_101_and_honours_half_close(server):
    host, port = server.addresses[0].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /attach?stdin=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                 b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\nhello ")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED")
    assert b"application/vnd.docker.raw-stream" in head
    writer.write(b"world")
    await writer.drain()
    writer.write_eof()
    out = await asyncio.wait_for(reader.read(-1), 5)
    assert out == b"got:hello world"
    writer.close()


def test_request_arguments_follow_engine_conventions():
    req = Request("GET", "/x", {"all": ["0"], "force": ["true"], "limit": ["5"], "bad": ["x"]},
                  Headers([("X-Registry-Auth", "e30=")]), b"", "1.41")
    assert req.flag("all") is False and req.flag("force") is True and req.flag("missing", True) is True
    assert req.int_arg("limit") == 5 and req.int_arg("missing", -1) == -1
    assert req.headers.get("x-registry-auth") == "e30="
    with pytest.raises(ApiError) as err:
        req.int_arg("bad")
    assert err.value.status == 400


def test_router_distinguishes_methods_and_reports_not_found():
    router = Router()

    async def h(req):
        return None

    router.add("GET", "/containers/{id}/json", h)
    handler, params, route = router.resolve("GET", "/containers/abc/json")
    assert params == {"id": "abc"} and route == "/containers/{id}/json"
    with pytest.raises(ApiError) as err:
        router.resolve("GET", "/containers/a/b/json")
    assert err.value.status == 404
    with pytest.raises(ApiError) as err:
        router.resolve("DELETE", "/containers/abc/json")
    assert err.value.status == 405


def test_rate_limiter_refills_per_client():
    from swarmd.manager.httpd.rate_limit import RateLimiter, client_of
    now = [0.0]
    rl = RateLimiter(rate=2, burst=3, clock=lambda: now[0])
    assert [rl.allow("a") for _ in range(4)] == [True, True, True, False]
    assert rl.allow("b")                       # another client has its own bucket
    now[0] += 0.5                              # one token back
    assert rl.allow("a") and not rl.allow("a")
    assert client_of("10.0.0.1:5555") == "10.0.0.1" and client_of("unix") == "unix"


async def test_over_the_rate_a_client_gets_429():
    from swarmd.manager.httpd.rate_limit import RateLimiter
    router = Router()

    async def ok(req):
        return json_response({})

    router.add("GET", "/x", ok)
    srv = HttpServer(router, rate_limiter=RateLimiter(rate=0.001, burst=2))
    await srv.start(["tcp://127.0.0.1:0"])
    try:
        statuses = []
        for _ in range(3):
            raw = await _exchange(srv.addresses[0], b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            statuses.append(_parse(raw)[0])
        assert statuses == [200, 200, 429]
        assert "too many requests" in json.loads(_parse(raw)[2])["message"]
    finally:
        await srv.close()
