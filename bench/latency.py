"""Latency: the manager's own cost per call, paired and interleaved against the engine itself.

Each round makes one container through the manager and one straight on node1's engine (the
manager is told `constraint:node==node1`, and the engine gets the same body, so both paths end on
the same engine with the same work), alternating which side goes first, and times on each side:
`create`, `start` of what was just created, a whole `run -d`, then `inspect` and `ps`. Two clients
drive it: the real docker CLI (`docker` with DOCKER_HOST at the manager vs at the engine socket:
what users see, process start included on both sides) and a keep-alive HTTP client (the same
client on both sides: the manager's own cost with nothing else around it). Both run against a
plain cluster and a TLS one (the manager serving `--tlsverify`, mutual TLS to its agents); the
engine side is always its unix socket.

The rows say, per client and per transport: the manager's ADDED milliseconds per create and per
start (the median of the paired differences: a ratio on a 200 ms start hides the cost), and the
median ratios of `run -d`, `inspect` and `ps`. With SWARMD_STAGE_TIMES=1 in the environment the
manager and the agents log per-stage times of every create and start (swarmd.common.stage_times);
the suite reads them back from their logs into informational rows. The `latency floor` rows
(bench/latency_floor.py) give what one bare gRPC and one bare TCP round trip cost on the machine,
measured first: the manager's added time cannot go below one of each.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench import latency_floor
from bench.report import Row, judged
from swarmd.localcluster.lab import Lab
from swarmd.localcluster.swarm import SwarmCluster

LABEL = "swarmd.bench=latency"
READS_PER_ROUND = 3
DOCKER = "/usr/local/bin/docker"      # the 28.x CLI the issue measured with
BODY = {"Image": "busybox", "Cmd": ["sleep", "600"], "Labels": {"swarmd.bench": "latency"},
        "Env": ["constraint:node==node1"]}
OPS = ("create", "start", "run -d", "inspect", "ps")


# -- the two clients ----------------------------------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("docker")
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.socket_path)


class HttpSide:
    """One keep-alive HTTP/1.1 connection, one call at a time (http.client, on both sides)."""

    def __init__(self, url: str, tls_dir: Path | None = None):
        if url.startswith("unix://"):
            self.conn: http.client.HTTPConnection = _UnixConnection(url[len("unix://"):])
        else:
            host, _, port = url.split("://", 1)[-1].rpartition(":")
            if tls_dir is not None:
                ctx = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
                ctx.load_cert_chain(str(tls_dir / "cert.pem"), str(tls_dir / "key.pem"))
                self.conn = http.client.HTTPSConnection(host, int(port), context=ctx)
            else:
                self.conn = http.client.HTTPConnection(host, int(port))

    def call(self, method: str, path: str, body: dict | None = None) -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        self.conn.request(method, f"/v1.41{path}", body=data, headers=headers)
        resp = self.conn.getresponse()
        payload = resp.read()
        if resp.status >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status} {payload[:200]!r}")
        return payload

    def create(self, name: str) -> str:
        return json.loads(self.call("POST", f"/containers/create?name={name}", BODY))["Id"]

    def start(self, cid: str) -> None:
        self.call("POST", f"/containers/{cid}/start")

    def run_d(self, name: str) -> str:
        cid = self.create(name)
        self.start(cid)
        return cid

    def inspect(self, cid: str) -> None:
        self.call("GET", f"/containers/{cid}/json")

    def ps(self) -> None:
        self.call("GET", "/containers/json")

    def close(self) -> None:
        self.conn.close()


class CliSide:
    """The real docker CLI, one process per call."""

    def __init__(self, url: str, config_dir: str, tls_dir: Path | None = None):
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")}
        self.env.update(DOCKER_HOST=url, DOCKER_CONFIG=config_dir)
        if tls_dir is not None:
            self.env.update(DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(tls_dir))

    def _docker(self, *args: str) -> str:
        out = subprocess.run([DOCKER, *args], env=self.env, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout.strip()

    def _config(self) -> list[str]:
        return ["--label", LABEL, "-e", BODY["Env"][0], "busybox", "sleep", "600"]

    def create(self, name: str) -> str:
        return self._docker("create", "--name", name, *self._config())

    def start(self, cid: str) -> None:
        self._docker("start", cid)

    def run_d(self, name: str) -> str:
        return self._docker("run", "-d", "--name", name, *self._config())

    def inspect(self, cid: str) -> None:
        self._docker("inspect", cid)

    def ps(self) -> None:
        self._docker("ps")

    def close(self) -> None:
        pass


# -- one paired, interleaved run ----------------------------------------------------------------


def _timed(fn, *args):
    t = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - t


def measure(sides: dict, rounds: int, tag: str) -> dict[str, dict[str, list[float]]]:
    """{op: {"manager": [seconds…], "engine": […]}}, the i-th entries of both sides a pair."""
    times = {op: {"manager": [], "engine": []} for op in OPS}
    for side, client in sides.items():      # warm both paths (connections, caches, the CLI's files)
        client.inspect(client.run_d(f"lat-warm-{tag}-{side}"))
    for i in range(rounds):
        order = ("manager", "engine") if i % 2 == 0 else ("engine", "manager")
        made = {}
        for side in order:
            cid, seconds = _timed(sides[side].create, f"lat-{tag}-{side}-c{i}")
            times["create"][side].append(seconds)
            times["start"][side].append(_timed(sides[side].start, cid)[1])
        for side in order:
            made[side], seconds = _timed(sides[side].run_d, f"lat-{tag}-{side}-r{i}")
            times["run -d"][side].append(seconds)
        for j in range(READS_PER_ROUND):
            for side in (order if j % 2 == 0 else order[::-1]):
                times["inspect"][side].append(_timed(sides[side].inspect, made[side])[1])
                times["ps"][side].append(_timed(sides[side].ps)[1])
    return times


def rows_of(times: dict[str, dict[str, list[float]]], prefix: str) -> list[Row]:
    rows = []
    for op in ("create", "start"):
        m, e = times[op]["manager"], times[op]["engine"]
        added = statistics.median(a - b for a, b in zip(m, e)) * 1e3
        rows.append(judged(f"{prefix}: {op} added by the manager (median of pairs)", added, "ms", "<= 1.5"))
        rows.append(judged(f"{prefix}: {op} median direct to engine", statistics.median(e) * 1e3, "ms"))
    for op, target in (("run -d", "<= 1.02"), ("inspect", "<= 1.10"), ("ps", "< 1")):
        m, e = times[op]["manager"], times[op]["engine"]
        ratio = statistics.median(m) / statistics.median(e)
        name = f"{prefix}: {op} median ratio manager/engine"
        if target.startswith("< "):
            rows.append(Row(name, round(ratio, 4), "x", target, ratio < float(target[2:])))
        else:
            rows.append(judged(name, ratio, "x", target))
        rows.append(judged(f"{prefix}: {op} added by the manager (median of pairs)",
                           statistics.median(a - b for a, b in zip(m, e)) * 1e3, "ms"))
    return rows


# -- per-stage times from the daemons' logs --------------------------------------------------------

_STAGE_LINE = re.compile(r" stage times what=(\S+) (.*)$")
_FIELD = re.compile(r"(\S+?)=(\d+)us")
_BEGAN = re.compile(r"\bbegan=(\d+)\b")     # the clock's start, ns on CLOCK_MONOTONIC (every process's clock)


def stage_rows(log_paths: list[Path], prefix: str) -> list[Row]:
    """Medians of every stage the manager and agent logged (SWARMD_STAGE_TIMES=1), informational."""
    found: dict[str, list[int]] = {}
    for path in log_paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            hit = _STAGE_LINE.search(line)
            if hit is None:
                continue
            for stage, us in _FIELD.findall(hit.group(2)):
                found.setdefault(f"{hit.group(1)} {stage}", []).append(int(us))
    return [judged(f"{prefix}: stage {key} median", statistics.median(v) / 1e3, "ms")
            for key, v in sorted(found.items())]


def _stage_lines(path: Path, what: str) -> list[dict[str, int]]:
    """Every `stage times` line of `what` in a daemon's log, in order: {stage: microseconds}."""
    out = []
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            hit = _STAGE_LINE.search(line)
            if hit is not None and hit.group(1) == what:
                stages = {stage: int(us) for stage, us in _FIELD.findall(hit.group(2))}
                began = _BEGAN.search(hit.group(2))
                if began is not None:
                    stages["began_ns"] = int(began.group(1))
                out.append(stages)
    return out


def per_call_rows(manager_log: Path, agent_log: Path, prefix: str) -> list[Row]:
    """The manager's own time per create and per start, call by call: its handler's time less the
    engine call the agent timed for the same call (calls run one at a time and all land on this
    agent, so the k-th lines of both logs are one call). Unlike the paired end-to-end rows, this
    does not move with the engine's own time, which varies most on a loaded machine; it leaves
    out the manager's HTTP parsing and the client's connection to it."""
    rows = []
    for what, engine_stage in (("create", "engine_create"), ("start", "engine_action")):
        handler = _stage_lines(manager_log, what)
        agent = _stage_lines(agent_log, f"agent-{what}")
        if not handler or len(handler) != len(agent):
            continue
        own = [_spent_us(h) - a.get(engine_stage, a.get("engine", 0)) for h, a in zip(handler, agent)]
        rows.append(judged(f"{prefix}: {what}: manager's time from the request's head to its answer, less the engine call (median)",
                           statistics.median(own) / 1e3, "ms"))
    rows += _rpc_one_way_rows(_stage_lines(manager_log, "place"), _stage_lines(agent_log, "agent-create"), prefix)
    return rows


def _spent_us(stages: dict[str, int]) -> int:
    return sum(us for stage, us in stages.items() if stage != "began_ns")


def _rpc_one_way_rows(place: list[dict[str, int]], agent: list[dict[str, int]], prefix: str) -> list[Row]:
    """Each direction of the create's gRPC call on its own, from both daemons' stage lines (their
    clocks are one: CLOCK_MONOTONIC): the request, from the manager's call to the agent's handler,
    and the answer, from the engine's answer to the manager holding it. Read against the floor
    rows `as a create meets it` (the same hop with nothing of swarmd in it)."""
    if not place or len(place) != len(agent) or not all("began_ns" in s for s in place + agent):
        return []
    request, answer = [], []
    for p, a in zip(place, agent):
        called = p["began_ns"] + p.get("decide", 0) * 1000
        answered = a["began_ns"] + a.get("engine_create", 0) * 1000
        request.append((a["began_ns"] - called) / 1e6)
        answer.append((called + p.get("rpc_create", 0) * 1000 - answered) / 1e6)
    return [judged(f"{prefix}: create: gRPC request one-way, manager's call to agent's handler (median)",
                   statistics.median(request), "ms"),
            judged(f"{prefix}: create: gRPC answer one-way, engine's answer to the manager holding it (median)",
                   statistics.median(answer), "ms")]


# -- the suite --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _cluster(lab: Lab, tls: bool) -> Iterator[SwarmCluster]:
    """A swarm on the lab; the plain one's manager also serves its unix socket (its default
    address), the transport the engine side is always reached over."""
    swarm = SwarmCluster(lab, root=Path(tempfile.mkdtemp(prefix="swarmd-bench-latency-")), tls=tls)
    try:
        swarm.start(manager_args=() if tls else ("-H", f"unix://{_unix_socket(swarm)}"))
        yield swarm
    finally:
        swarm.stop()
        shutil.rmtree(swarm.root, ignore_errors=True)     # the stage rows are read inside the block


def _unix_socket(swarm: SwarmCluster) -> Path:
    return swarm.root / "manager.sock"


def _sides(swarm: SwarmCluster, kind: str, engine_url: str, config: str) -> dict:
    """The manager side and the engine side of one client kind: `http` or `cli`, over the manager's
    TCP address, or with ` unix` over its unix socket (plain cluster only)."""
    client_dir = swarm.pki_dir / "client" if swarm.tls else None
    manager_url = f"unix://{_unix_socket(swarm)}" if kind.endswith(" unix") else swarm.docker_host
    if kind.startswith("http"):
        return {"manager": HttpSide(manager_url, client_dir), "engine": HttpSide(engine_url)}
    return {"manager": CliSide(manager_url, config, client_dir), "engine": CliSide(engine_url, config)}


def _clean(lab: Lab) -> None:
    for engine in lab.engines:
        engine.remove_all_containers()


def run(quick: bool = False) -> list[Row]:
    rounds = 8 if quick else 30
    rows: list[Row] = latency_floor.run(300 if quick else 1000)    # what one bare hop costs here
    os.environ.setdefault("SWARMD_STAGE_TIMES", "1")    # the daemons inherit it: stage rows below
    with Lab(engines=3, registry=False) as lab, tempfile.TemporaryDirectory() as config:
        engine_url = lab.engines[0].url
        for tls in (False, True):
            mode = "tls" if tls else "plain"
            with _cluster(lab, tls) as swarm:
                for kind in ("http", "cli") if tls else ("http", "cli", "http unix", "cli unix"):
                    sides = _sides(swarm, kind, engine_url, config)
                    try:
                        times = measure(sides, rounds, f"{mode}-{kind.replace(' ', '-')}")
                    finally:
                        for client in sides.values():
                            client.close()
                        _clean(lab)
                    rows += rows_of(times, f"latency {mode} {kind}")
                logs = [swarm.root / "manager0.log", swarm.root / f"agent-{lab.engines[0].name}.log"]
                rows += stage_rows(logs, f"latency {mode}")
                rows += per_call_rows(*logs, f"latency {mode}")
    return rows
