"""Hostile input against the running manager: Docker-shaped 4xx, never a 5xx, a traceback or a hang.

The read-only operations of the Engine API v1.41 spec (../shared/reference) are fuzzed with
hypothesis (path parameters with traversal and odd characters, query values of the wrong type,
broken filters), and the validation paths (create a container, network or volume) get bodies
that are malformed or wrongly typed. Afterwards the manager still answers /_ping and the
cluster's containers, networks and volumes are what they were. The run is bounded in count.
"""
from __future__ import annotations

import http.client
import json
import os
import re
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
SPEC_NAME = "docker-engine-api-v1.41.yaml"
SPEC_CANDIDATES = [Path(p) for p in filter(None, [os.environ.get("SWARMD_API_SPEC")])] + [
    REPO.parent / "shared" / "reference" / SPEC_NAME, Path("/work/shared/reference") / SPEC_NAME]
TIMEOUT = 15.0
MAX_EXAMPLES = 200

# never generated: endless streams, registry/network access, and swarm-mode features that
# answer a deliberate 501 (checked on their own below)
EXCLUDED = re.compile(r"^/(events|images/search|distribution|plugins|nodes|swarm|services|tasks|secrets|configs)"
                      r"|/attach/ws$")

HOSTILE_STRINGS = [
    "../../../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "..", ".", "%00", "\x00", "zz\nzz", "zz\r\nX-Evil: 1",
    "{{.ID}}", "'; DROP TABLE x; --", "zz" * 600, "ü-名前", "zz:latest@sha256:zz", "/", "//", "zz?x=1", "zz#frag",
]
FILTERS = ['{bad', '[]', '"str"', '{"status":"running"}', '{"status":["nope"]}', '{"label":{"a":1}}',
           '{"name":[1,2]}', '{"until":["not-a-time"]}', '{"dangling":["maybe"]}', 'null', '{"":[""]}', "%7B"]


# query parameters used when the spec is not on this machine: the common ones, with their types
_COMMON_QUERY = [{"in": "query", "name": "filters", "type": "string"}, {"in": "query", "name": "all", "type": "boolean"},
                 {"in": "query", "name": "limit", "type": "integer"}, {"in": "query", "name": "size", "type": "boolean"},
                 {"in": "query", "name": "tail", "type": "string"}, {"in": "query", "name": "since", "type": "integer"}]


def _spec_operations() -> list[tuple[str, list[dict]]]:
    """GET operations of the v1.41 spec; without the spec file, the GET rows of the README's
    coverage table (which lists every spec endpoint) with their path and common query parameters."""
    spec_file = next((p for p in SPEC_CANDIDATES if p.is_file()), None)
    ops = []
    if spec_file is not None:
        spec = yaml.safe_load(spec_file.read_text())
        for path, methods in spec["paths"].items():
            if "get" in methods and not EXCLUDED.search(path):
                ops.append((path, methods["get"].get("parameters", [])))
        return ops
    table = (REPO / "README.md").read_text().split("<!-- api-coverage:start -->", 1)[1]
    for path in re.findall(r"^\| GET \| `([^`]+)` \|", table, re.M):
        if not EXCLUDED.search(path):
            params = [{"in": "path", "name": n, "type": "string"} for n in re.findall(r"\{(\w+)\}", path)]
            ops.append((path, params + _COMMON_QUERY))
    return ops


OPERATIONS = _spec_operations()


def _not_an_id_prefix(s: str) -> bool:
    """Hex strings could be a prefix of a real container ID (and a followed log never ends)."""
    return not re.fullmatch(r"[0-9a-fA-F]*", s)


path_values = st.one_of(st.sampled_from(HOSTILE_STRINGS),
                        st.text(min_size=1, max_size=40).map(lambda s: "zz" + s)).filter(_not_an_id_prefix)


def query_value(param: dict):
    hostile = st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(max_size=30))
    kind = param.get("type")
    if param["name"] == "filters":
        good = st.sampled_from(FILTERS)
    elif param["name"] == "follow" or param["name"] == "stream":
        return st.just("0")                    # a followed stream of nothing would wait forever
    elif kind == "boolean":
        good = st.sampled_from(["1", "0", "true", "false", "yes", "2", ""])
    elif kind == "integer":
        good = st.one_of(st.integers(-2**70, 2**70).map(str), st.sampled_from(["1.5", "1e9", "-0", "NaN"]))
    else:
        good = st.text(max_size=30)
    return st.one_of(good, hostile)


@st.composite
def read_requests(draw):
    path, params = draw(st.sampled_from(OPERATIONS))
    for p in params:
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", quote(draw(path_values), safe=""))
    query = {}
    for p in params:
        if p["in"] == "query" and draw(st.booleans()):
            query[p["name"]] = draw(query_value(p))
    prefix = draw(st.sampled_from(["/v1.41", "", "/v1.24", "/v1.12"]))
    return "GET", prefix + path + ("?" + urlencode(query) if query else ""), b""


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                                 st.dictionaries(st.text(max_size=8), kids, max_size=3)),
                           max_leaves=8)
wrong_for_string = st.one_of(st.booleans(), st.integers(), st.lists(json_scalars, max_size=2),
                             st.dictionaries(st.text(max_size=5), json_scalars, max_size=2))


@st.composite
def invalid_bodies(draw):
    """Bodies that must be refused: not JSON, not an object, or the key field of the wrong type."""
    endpoint, key = draw(st.sampled_from([("/containers/create", "Image"), ("/networks/create", "Name"),
                                          ("/volumes/create", "Name")]))
    form = draw(st.sampled_from(["malformed", "not-object", "wrong-type"]))
    if form == "malformed":
        body = draw(st.sampled_from([b"{", b'{"Image": }', b"\xff\xfe", b"{'a': 1}", b"[1,", b'{"a":1}}']))
    elif form == "not-object":
        # (a JSON null is an empty request to the engine: /volumes/create then makes an anonymous volume)
        body = json.dumps(draw(st.one_of(json_scalars.filter(lambda v: v is not None),
                                         st.lists(json_values, max_size=3)))).encode()
    else:
        obj = draw(st.dictionaries(st.sampled_from(["Cmd", "Env", "HostConfig", "Labels", "Driver", "Options",
                                                    "ExposedPorts", "NetworkingConfig", "Entrypoint"]),
                                   json_values, max_size=4))
        obj[key] = draw(wrong_for_string)
        body = json.dumps(obj).encode()
    query = {}
    if draw(st.booleans()):
        query["name"] = draw(st.sampled_from(HOSTILE_STRINGS))
    return "POST", "/v1.41" + endpoint + ("?" + urlencode(query) if query else ""), body


def request(addr: str, method: str, target: str, body: bytes = b"", headers: dict | None = None):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    try:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, target, body=body or None, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


def assert_docker_shaped(status: int, ctype: str, body: bytes, what: str) -> None:
    assert status < 500, f"{what}: {status} {body[:300]!r}"
    assert b"Traceback" not in body, what
    if status >= 400:
        assert ctype.startswith("application/json"), f"{what}: {status} {ctype}"
        message = json.loads(body)["message"]
        assert isinstance(message, str) and message, what


def snapshot(addr: str) -> dict:
    def ids(target, key, field):
        status, _, body = request(addr, "GET", target)
        assert status == 200, target
        data = json.loads(body)
        return sorted(item[field] for item in (data[key] if key else data) or [])
    return {"containers": ids("/containers/json?all=1", None, "Id"),
            "networks": ids("/networks", None, "Id"),
            "volumes": ids("/volumes", "Volumes", "Name")}


@pytest.fixture(scope="module")
def manager(swarm):
    addr = swarm.manager_addrs[0]
    before = snapshot(addr)
    yield addr
    assert request(addr, "GET", "/_ping")[0] == 200
    assert snapshot(addr) == before


FUZZ = settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(req=st.one_of(read_requests(), invalid_bodies()))
def test_fuzzed_requests_get_docker_shaped_answers(manager, req):
    method, target, body = req
    status, ctype, data = request(manager, method, target, body)
    assert_docker_shaped(status, ctype, data, f"{method} {target} {body[:120]!r}")
    if method == "POST":
        assert 400 <= status < 500, f"{method} {target} {body[:200]!r} was accepted: {status} {data[:200]!r}"


@pytest.mark.parametrize("method,target,expect", [
    ("GET", "/v1.41/no/such/endpoint", 404),
    ("GET", "/v9.99/info", 400),
    ("GET", "/v1.0/info", 400),
    ("GET", "/v1.41.7.3/info", 404),
    ("GET", "/vabc/info", 404),
    ("DELETE", "/v1.41/info", 405),
    ("GET", "/v1.41/containers/..%2F..%2F..%2Fetc%2Fpasswd/json", 404),
    ("GET", "/v1.41/containers/json?filters=%7Bbad", 400),
    ("GET", "/v1.41/containers/json?limit=abc", 400),
    ("GET", "/v1.41/images/json?filters=%7B%22dangling%22", 400),
    ("GET", "/v1.41/services", 501),
])
def test_known_hostile_requests(manager, method, target, expect):
    status, ctype, body = request(manager, method, target)
    assert status == expect, (target, status, body[:200])
    assert ctype.startswith("application/json") and json.loads(body)["message"]


def test_huge_json_body_is_refused(manager):
    huge = b'{"Image": "busybox", "Env": ["' + b"x" * (10 << 20) + b'"]}'
    status, ctype, body = request(manager, "POST", "/v1.41/containers/create", huge)
    assert status == 413, (status, body[:200])
    assert json.loads(body)["message"]
    assert request(manager, "GET", "/_ping")[0] == 200


def test_malformed_http_is_refused_without_harm(manager):
    import socket
    host, port = manager.rsplit(":", 1)
    for raw in (b"NOT HTTP AT ALL\r\n\r\n", b"GET /_ping HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                b"GET /" + b"a" * (80 << 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n"):
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as s:
            s.sendall(raw)
            reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 4"), reply[:100]
    assert request(manager, "GET", "/_ping")[0] == 200


async def test_attached_streams_are_capped():
    """Beyond `max_hijacks` open attach/exec streams the server answers a Docker-shaped 503."""
    import asyncio

    from swarmd.manager.httpd.request import Request
    from swarmd.manager.httpd.router import Router
    from swarmd.manager.httpd.server import HttpServer

    async def attach(req: Request):
        conn = await req.hijack("application/vnd.docker.raw-stream")
        while await conn.reader.read(1024):
            pass
        await conn.close()

    router = Router()
    router.add("POST", "/containers/{id}/attach", attach)
    server = HttpServer(router, max_hijacks=1)
    await server.start(["tcp://127.0.0.1:0"])
    host, port = server.addresses[0].rsplit(":", 1)
    upgrade = b"POST /containers/x/attach HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
    try:
        first_r, first_w = await asyncio.open_connection(host, int(port))
        first_w.write(upgrade)
        assert (await asyncio.wait_for(first_r.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 101")
        r, w = await asyncio.open_connection(host, int(port))
        w.write(upgrade)
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 503")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        assert "too many attached streams" in json.loads(await r.readexactly(length))["message"]
        w.close()
        first_w.write_eof()                       # the first stream ends: room for another
        await asyncio.wait_for(first_r.read(-1), 5)
        first_w.close()
        for _ in range(50):
            r, w = await asyncio.open_connection(host, int(port))
            w.write(upgrade)
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
            w.close()
            if head.startswith(b"HTTP/1.1 101"):
                break
            await asyncio.sleep(0.05)
        assert head.startswith(b"HTTP/1.1 101")
    finally:
        await server.close()
