"""The manager's own cost per HTTP request, in-process and deterministic: the HTTP server alone.

The real `HttpServer` (manager/httpd/server.py) with the real router (`manager.api.build_router`)
over a `ManagerContext` whose `ClusterView` is filled in-process from hollow engines (the `memory`
suite's `fill`: no gRPC, no dockerd), answering on loopback TCP. A client in a child process (a raw
blocking socket, one keep-alive connection, the bytes the docker CLI sends) times each round trip
of `GET /v1.41/containers/{id}/json`, `GET /v1.41/containers/json?all=1` and `GET /_ping`; the same
client then times a bare asyncio echo server (an `asyncio.Protocol` answering each request with the
bytes the manager answered it with): the floor that no Python server on this loop can go under.
A last pass runs the inspect requests with cProfile on in the server (its thread only: the client is
another process) and prints the top functions.

    python -m bench --only httpd
    python -m bench.httpd_cost --print [--requests N] [--profile-out FILE]
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.memory import fill, hollow_engines
from bench.report import Row, judged
from swarmd.common import pki
from swarmd.manager import metrics
from swarmd.manager.api import build_router
from swarmd.manager.api.context import API_VERSION, MIN_API_VERSION, VERSION, ManagerContext
from swarmd.manager.gc_policy import GcPolicy
from swarmd.manager.httpd.server import HttpServer
from swarmd.manager.scheduler import Scheduler

NODES = 3
PER_NODE = 10                 # 30 containers: `ps -a` answers a realistic small listing
REQUESTS = 3000               # timed round trips per endpoint and server
PROFILED = 3000               # inspect requests under cProfile
WARMUP = 200
ROOT = Path(__file__).resolve().parents[1]


def request_bytes(target: str) -> bytes:
    """What docker CLI 28.x sends for a GET (its Go client's header set and order)."""
    return (f"GET {target} HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: Docker-Client/28.0.1 (linux)\r\n"
            "Accept-Encoding: gzip\r\n\r\n").encode()


# -- the client (child process) -------------------------------------------------------------------

def _read_response(sock, buf: bytearray) -> bytearray:
    """Reads one Content-Length response; returns what is left over in `buf` (nothing, one at a time)."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end]).lower()
            at = head.find(b"content-length:")
            line_end = head.find(b"\r\n", at)
            length = int(head[at + 15:line_end if line_end >= 0 else len(head)]) if at >= 0 else 0
            if len(buf) >= end + 4 + length:
                return buf[end + 4 + length:]
        chunk = sock.recv(262144)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buf += chunk


def client(host: str, port: int, targets: list[str], n: int, warmup: int, tls_dir: str | None = None) -> dict:
    """Round trips of each target over one keep-alive connection: {target: [ns, …]}; over mutual
    TLS with the client certificate in `tls_dir`, when given."""
    import socket
    import ssl
    out = {}
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls_dir:
        ctx = ssl.create_default_context(cafile=f"{tls_dir}/ca.pem")
        ctx.load_cert_chain(f"{tls_dir}/cert.pem", f"{tls_dir}/key.pem")
        sock = ctx.wrap_socket(sock, server_hostname=host)
    with sock:
        buf = bytearray()
        for target in targets:
            raw = request_bytes(target)
            times = []
            for i in range(warmup + n):
                s = time.perf_counter_ns()
                sock.sendall(raw)
                buf = _read_response(sock, buf)
                if i >= warmup:
                    times.append(time.perf_counter_ns() - s)
            out[target] = times
    return out


def _client_process(addr: str, targets: list[str], n: int, warmup: int,
                    tls_dir: str | None) -> asyncio.subprocess.Process:
    host, port = addr.rsplit(":", 1)
    args = [sys.executable, "-m", "bench.httpd_cost", "--client", host, port, "--requests", str(n),
            "--warmup", str(warmup), *(["--tls", tls_dir] if tls_dir else []), *targets]
    return asyncio.create_subprocess_exec(*args, stdout=subprocess.PIPE, cwd=ROOT)


async def drive(addr: str, targets: list[str], n: int, warmup: int = WARMUP,
                tls_dir: str | None = None) -> tuple[dict, float]:
    """Runs the client against `addr`; returns its times and this process's CPU seconds meanwhile."""
    cpu = time.process_time()
    proc = await _client_process(addr, targets, n, warmup, tls_dir)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the bench client failed ({proc.returncode})")
    return json.loads(out), time.process_time() - cpu


# -- the servers -----------------------------------------------------------------------------------

class CannedServer(asyncio.Protocol):
    """The floor: answers each request head (up to the blank line) with the canned bytes for its target."""

    def __init__(self, answers: dict[bytes, bytes]):
        self.answers = answers
        self.buf = b""
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end], self.buf[end + 4:]
            target = head.split(b" ", 2)[1]
            self.transport.write(self.answers[target])


async def fetch_raw(addr: str, target: str) -> bytes:
    """One whole response of the real server, as the floor server will send it back."""
    host, port = addr.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request_bytes(target))
    head = await reader.readuntil(b"\r\n\r\n")
    length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")][0].split(b":")[1])
    body = await reader.readexactly(length)
    writer.close()
    return head + body


def _median(xs: list[int]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2] / 1e3


def _p90(xs: list[int]) -> float:
    xs = sorted(xs)
    return xs[int(len(xs) * 0.9)] / 1e3


GROUPS = (("h11", "/h11/"), ("HTTP server (manager/httpd)", "/manager/httpd/"),
          ("handlers and view (manager/…)", "/manager/"), ("asyncio", "/asyncio/"),
          ("socket, epoll, other built-ins", "~"))


def profile_groups(profiler: cProfile.Profile, requests: int) -> dict[str, float]:
    """Own time (tottime) under the profiler, µs per request, by where the code lives; epoll's wait
    is left out (it is the client's turn, not work)."""
    out = {name: 0.0 for name, _ in GROUPS}
    out["other Python"] = 0.0
    for (filename, _, func), (_, _, tottime, _, _) in pstats.Stats(profiler).stats.items():
        if "poll" in func and "epoll" in func:
            continue
        name = next((n for n, part in GROUPS if part in filename), "other Python")
        out[name] += tottime / requests * 1e6
    return out


def profile_text(profiler: cProfile.Profile, top: int = 30) -> str:
    s = io.StringIO()
    stats = pstats.Stats(profiler, stream=s)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    return s.getvalue()


async def time_each(addr: str, targets: list[str], n: int, tls_dir: str | None = None) -> dict:
    """Per target, one client run: round trip median and p90, and this process's CPU per request."""
    out = {}
    for target in targets:
        times, cpu = await drive(addr, [target], n, tls_dir=tls_dir)
        out[target] = {"median_us": _median(times[target]), "p90_us": _p90(times[target]),
                       "cpu_us": cpu / (n + WARMUP) * 1e6}
    return out


def tls_files(directory: Path) -> ssl.SSLContext:
    """A CA, a manager certificate for loopback and a client certificate (ca.pem, cert.pem, key.pem in
    `directory`, for the client); returns the server's context, client certificates required, as
    `swarm manage --tlsverify` serves."""
    ca = pki.create_ca("bench CA")
    server, client_pair = pki.issue(ca, "manager", kind="manager"), pki.issue(ca, "bench client", kind="client")
    for name, data in (("ca.pem", ca.cert_pem), ("cert.pem", client_pair.cert_pem), ("key.pem", client_pair.key_pem),
                       ("server-cert.pem", server.cert_pem), ("server-key.pem", server.key_pem)):
        (directory / name).write_bytes(data)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(directory / "ca.pem"))
    ctx.load_cert_chain(str(directory / "server-cert.pem"), str(directory / "server-key.pem"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def serve_and_time(router, targets: list[str], answers: dict[bytes, bytes], n: int,
                         tls_dir: str | None = None, ssl_context: ssl.SSLContext | None = None) -> tuple[dict, dict]:
    """The manager's server and the floor, in turn, on the same targets: (server times, floor times)."""
    server = HttpServer(router, api_version=API_VERSION, min_api_version=MIN_API_VERSION,
                        server_header=f"Docker/{API_VERSION} (linux) swarmd/{VERSION}",
                        observer=metrics.observe_request, ssl_context=ssl_context)
    await server.start(["tcp://127.0.0.1:0"])
    try:
        timed = await time_each(server.addresses[0], targets, n, tls_dir)
    finally:
        await server.close()
    floor = await asyncio.get_running_loop().create_server(lambda: CannedServer(answers), "127.0.0.1", 0,
                                                           ssl=ssl_context)
    try:
        host, port = floor.sockets[0].getsockname()[:2]
        return timed, await time_each(f"{host}:{port}", targets, n, tls_dir)
    finally:
        floor.close()


async def profiled_inspects(router, target: str, requests: int) -> cProfile.Profile:
    server = HttpServer(router, api_version=API_VERSION, min_api_version=MIN_API_VERSION,
                        observer=metrics.observe_request)
    await server.start(["tcp://127.0.0.1:0"])
    try:
        profiler = cProfile.Profile(time.thread_time)    # CPU time: a send preempted by the client is not work
        profiler.enable()
        await drive(server.addresses[0], [target], requests, warmup=0)
        profiler.disable()
        return profiler
    finally:
        await server.close()


async def measure(n: int = REQUESTS, profiled: int = PROFILED) -> dict:
    policy = GcPolicy()          # as `swarm manage` runs (manager.daemon installs it)
    policy.install()
    engines = hollow_engines(NODES, PER_NODE)
    cluster = await fill(engines, PER_NODE)
    router = build_router(ManagerContext(cluster, Scheduler("spread")))
    some_id = next(iter(next(iter(cluster.nodes.values())).containers))
    targets = [f"/v1.41/containers/{some_id}/json", "/v1.41/containers/json?all=1", "/_ping"]
    try:
        server = HttpServer(router, api_version=API_VERSION, min_api_version=MIN_API_VERSION,
                            server_header=f"Docker/{API_VERSION} (linux) swarmd/{VERSION}")
        await server.start(["tcp://127.0.0.1:0"])
        answers = {t.encode(): await fetch_raw(server.addresses[0], t) for t in targets}
        await server.close()
        timed, floor = await serve_and_time(router, targets, answers, n)
        profiler = await profiled_inspects(router, targets[0], profiled)
        with tempfile.TemporaryDirectory() as tls_dir:
            tls_timed, tls_floor = await serve_and_time(router, targets, answers, n, tls_dir, tls_files(Path(tls_dir)))
    finally:
        await cluster.close()
        policy.uninstall()
    names = ["inspect", "ps -a", "_ping"]
    return {"requests": n, "load": os.getloadavg()[0],
            "bytes": {name: len(answers[t.encode()]) for name, t in zip(names, targets)},
            "server": {name: timed[t] for name, t in zip(names, targets)},
            "floor": {name: floor[t] for name, t in zip(names, targets)},
            "tls_server": {name: tls_timed[t] for name, t in zip(names, targets)},
            "tls_floor": {name: tls_floor[t] for name, t in zip(names, targets)},
            "profile": profile_text(profiler), "profile_groups": profile_groups(profiler, profiled)}


def rows_of(m: dict) -> list[Row]:
    rows = []
    for kind, server_key, floor_key in (("httpd", "server", "floor"), ("httpd tls", "tls_server", "tls_floor")):
        for name in ("inspect", "ps -a", "_ping"):
            s, f = m[server_key][name], m[floor_key][name]
            rows += [
                judged(f"{kind}: {name} round trip median, keep-alive (in-process view)", s["median_us"], "us"),
                judged(f"{kind}: {name} round trip p90", s["p90_us"], "us"),
                judged(f"{kind}: {name} server CPU per request", s["cpu_us"], "us"),
                judged(f"{kind}: {name} round trip median, asyncio echo floor (same bytes)", f["median_us"], "us"),
                judged(f"{kind}: {name} echo floor CPU per request", f["cpu_us"], "us"),
                judged(f"{kind}: {name} added over the floor (median round trip)", s["median_us"] - f["median_us"],
                       "us"),
            ]
    for group, us in m["profile_groups"].items():
        rows.append(judged(f"httpd: inspect under cProfile, own time in {group}, per request", us, "us"))
    rows.append(judged("httpd: load average during the run (2 CPUs; a quiet machine: < 1)", m["load"], ""))
    return rows


def run(quick: bool = False) -> list[Row]:
    n = 500 if quick else REQUESTS
    out = subprocess.run([sys.executable, "-m", "bench.httpd_cost", "--requests", str(n)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    m = json.loads(out.stdout)
    print(m["profile"], file=sys.stderr)
    return rows_of(m)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.httpd_cost")
    p.add_argument("--requests", type=int, default=REQUESTS)
    p.add_argument("--print", action="store_true", help="print the rows and the profile instead of JSON")
    p.add_argument("--profile-out", help="also write the profile's text to this file")
    p.add_argument("--client", nargs=2, metavar=("HOST", "PORT"), help=argparse.SUPPRESS)
    p.add_argument("--tls", help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=WARMUP, help=argparse.SUPPRESS)
    p.add_argument("targets", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.client:
        print(json.dumps(client(args.client[0], int(args.client[1]), args.targets, args.requests, args.warmup,
                                args.tls)))
        return 0
    m = asyncio.run(measure(args.requests))
    if args.profile_out:
        Path(args.profile_out).write_text(m["profile"])
    if args.print:
        from bench.report import print_table
        print(m["profile"])
        print_table(rows_of(m))
    else:
        print(json.dumps(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
