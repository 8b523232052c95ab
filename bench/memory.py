"""The manager's memory per container at scale, in-process: where the bytes go and what GC costs.

A real `ClusterView` is filled the way the manager fills it when hollow nodes join: each node
joins through `node_joined`, and the view's own sync (`_follow` → `_resync`: engine info, the
container list, the inspect documents in batches, the images) reads an in-memory hollow engine
(`agent.hollow.HollowEngine`, the engine of the `scale` suite's nodes) through `InProcessAgent`,
which hands over what `manager.agents.AgentClient` would (the same JSON documents and bytes)
without gRPC. What the rows show is the view's own cost; a real manager adds its gRPC channels.

Each size runs in a fresh child process (`python -m bench.memory --nodes N --mode M`), so that one
size's heap does not blur the next one's RSS:
- mode `rss`: RSS before and after the fill (after `gc.collect()`), the `docker ps -a` handler
  (`manager.api.containers.list_containers`) and `docker info` handler timed on the filled view,
  and every collection's pause timed through `gc.callbacks`, with the manager's GC policy
  (`manager.gc_policy`) installed as `swarm manage` installs it; then the policy's clock is moved
  on by weeks and full collections forced (the "thaw" row: the worst pause the policy's periodic
  path causes), and the collector's census: what the view makes it track, by type, and what a
  full walk over all of it (what a thaw leads to) costs;
- mode `trace`: the same fill under `tracemalloc`, reporting the traced bytes per container and
  the allocation sites holding them (innermost frame, and the first frame in swarmd's code);
- mode `sync`: the manager's own CPU per node for the sync, the engines' answers made beforehand
  (`RecordedAgent`), so that what the hollow engines cost (the agents' share in a fleet) is apart;
- mode `grpc`: the manager process's CPU per node for the sync over gRPC, through its own
  `AgentClient`, from hollow engines behind the real agent service in a child process (mode
  `serve`): the cost a fleet's initial sync puts on the manager.

    python -m bench --only memory            # 1,000 and 5,000 nodes, 30 containers each
    python -m bench.memory --nodes 200 --mode trace --print
    python -m bench.memory --nodes 500 --mode sync --print     # "Sync cost per node" in docs/benchmarks.md
    python -m bench.memory --nodes 200 --mode grpc --print
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import tracemalloc
import types
from pathlib import Path

import grpc

from bench.report import Row, judged
from swarmd.agent.daemon import SERVER_OPTIONS
from swarmd.agent.engine import EngineError
from swarmd.agent.hollow import HollowEngine
from swarmd.agent.node_info import NodeInfoSource, NodeSettings
from swarmd.agent.service import AgentService
from swarmd.manager.agents import EngineDocument
from swarmd.manager.api import containers as containers_api
from swarmd.manager.api import system as system_api
from swarmd.manager.api.context import ManagerContext
from swarmd.manager.cluster import ClusterView
from swarmd.manager.container_records import SWARM_ID_LABEL
from swarmd.manager.gc_policy import GcPolicy
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.request import Headers, Request
from swarmd.manager.scheduler import Scheduler
from swarmd.proto.swarm.v1 import agent_pb2, agent_pb2_grpc, types_pb2

CONTAINERS_PER_NODE = 30
KiB = 1024
MiB = 1 << 20
TOP_SITES = 15
TRACE_NODES = 200                       # tracemalloc slows the sync tenfold: the sites, on a smaller fleet
PS_TARGET_MS = {150_000: 1500}          # the targets, by containers (else: informational)
INFO_TARGET_MS = {5000: 200}            # … and by nodes
GC_PAUSE_TARGET_MS = 50
WEEK = 7 * 24 * 3600.0
THAW_WEEKS = 4                          # of policy time, a full collection forced at each
TOP_TYPES = 12


class InProcessAgent:
    """What `AgentClient` answers the view's sync with, read from a hollow engine in this process."""

    def __init__(self, engine: HollowEngine):
        self.engine = engine

    async def sync_node(self) -> agent_pb2.SyncNodeResponse:
        """SyncNode's answer, as the agent service makes it from the engine."""
        ids = await self.engine.container_ids()
        read_at = time.time_ns()
        docs = await self.engine.inspect_containers(ids)
        return agent_pb2.SyncNodeResponse(
            engine=agent_pb2.EngineInfo(info_json=await self.engine.info()),
            containers=[d for d in docs if d is not None], read_at_ns=read_at,
            images_json=(await self.engine.request("GET", "/images/json")).body)

    async def engine_info(self):
        return types.SimpleNamespace(info_json=await self.engine.info())

    async def list_containers(self, all: bool = True, filters: dict | None = None) -> list[dict]:
        return json.loads(await self.engine.list_containers(all, json.dumps(filters).encode() if filters else b""))

    async def inspect_container_at(self, container_id: str, since: int = 0) -> tuple[dict, int]:
        try:
            raw = await self.engine.inspect_container(container_id)    # the bytes the agent relays
        except EngineError as err:          # as AgentClient raises it: the engine's status and words
            raise ApiError(err.status, err.message) from None
        doc = EngineDocument(json.loads(raw))
        doc.raw = raw
        return doc, time.time_ns()

    async def inspect_containers(self, container_ids: list[str]) -> tuple[list[bytes], int]:
        asked_at = time.time_ns()
        return [await self.engine.inspect_container(i) for i in container_ids], asked_at

    async def engine_call(self, method: str, path: str, query: str = "", body: bytes = b"", headers=None):
        resp = await self.engine.request(method, path, query, body)
        return types.SimpleNamespace(status=resp.status, body=resp.body)

    async def events(self, since_unix_nano: int = 0):
        async for line in self.engine.events(since_unix_nano):
            yield json.loads(line)

    async def close(self) -> None:
        self.engine = None


class RecordedAgent(InProcessAgent):
    """InProcessAgent with the engine's answers read beforehand (`record`): the sync that reads
    from it costs only what the manager does with the bytes (in a fleet the engines' JSON is made
    in the agents' processes, not the manager's)."""

    def __init__(self, engine: HollowEngine):
        super().__init__(engine)
        self.info, self.listed, self.images, self.docs = b"", b"", b"", {}
        self.synced: agent_pb2.SyncNodeResponse | None = None

    async def sync_node(self) -> agent_pb2.SyncNodeResponse:
        return self.synced

    async def record(self) -> None:
        self.synced = await super().sync_node()
        self.info = await self.engine.info()
        self.listed = await self.engine.list_containers(True)
        self.images = (await self.engine.request("GET", "/images/json")).body
        self.docs = {c["Id"]: await self.engine.inspect_container(c["Id"]) for c in json.loads(self.listed)}

    async def engine_info(self):
        return types.SimpleNamespace(info_json=self.info)

    async def list_containers(self, all: bool = True, filters: dict | None = None) -> list[dict]:
        return json.loads(self.listed)

    async def inspect_container_at(self, container_id: str) -> tuple[dict, int]:
        raw = self.docs[container_id]
        doc = EngineDocument(json.loads(raw))
        doc.raw = raw
        return doc, time.time_ns()

    async def inspect_containers(self, container_ids: list[str]) -> tuple[list[bytes], int]:
        return [self.docs[i] for i in container_ids], time.time_ns()

    async def engine_call(self, method: str, path: str, query: str = "", body: bytes = b"", headers=None):
        return types.SimpleNamespace(status=200, body=self.images)

    async def events(self, since_unix_nano: int = 0):
        await asyncio.Event().wait()        # no events during a sync
        yield {}


def hollow_engines(nodes: int, per_node: int) -> dict[str, HollowEngine]:
    """Node ID -> engine holding `per_node` running containers, as the `scale` suite's nodes join
    with: busybox, two labels, memory and CPU reservations on some; one in 30 was created through
    the manager and carries classic's swarm ID label."""
    engines = {}
    for n in range(nodes):
        engine = HollowEngine(f"hollow{n:04d}", labels={"hollow": "true", "hollow.index": str(n)})
        for i in range(per_node):
            labels = {"app": f"app{i % 10}", "tier": "bench"}
            if i % 30 == 29:
                labels[SWARM_ID_LABEL] = secrets.token_hex(32)
            body = {"Image": "busybox", "Cmd": ["sleep", "3600"], "Labels": labels,
                    "HostConfig": {"Memory": (64 << 20) if i % 2 == 0 else 0,
                                   "NanoCpus": 100_000_000 if i % 3 == 0 else 0}}
            engine.add_container(f"{engine.name}-c{i}", body, running=True, emit=False)
        engines[f"hollow-{n:06d}-{secrets.token_hex(4)}"] = engine
    return engines


def node_of(node_id: str, engine: HollowEngine, index: int) -> types_pb2.Node:
    info = types_pb2.NodeInfo(id=node_id, name=engine.name, addr=f"127.0.{index // 250}.{index % 250}:4100",
                              host_ip="127.0.0.1", cpus=engine.cpus, memory_bytes=engine.memory)
    return types_pb2.Node(info=info, state=types_pb2.NODE_STATE_HEALTHY)


async def fill(engines: dict[str, HollowEngine], per_node: int, agents: dict | None = None) -> ClusterView:
    """Joins every node as the membership watch does (its listing, then `synced`) and waits until
    the view has read every node's containers (through `agents`, node ID -> agent, when given)."""
    cluster = ClusterView(client_factory=lambda node: agents[node.info.id] if agents is not None
                          else InProcessAgent(engines[node.info.id]))
    for i, (node_id, engine) in enumerate(engines.items()):
        cluster.node_joined(node_of(node_id, engine, i))
    cluster.synced.set()
    cluster.intents_synced.set()           # an empty intent store, read once
    cluster.reconcile_standing()
    while not all(v.listed and len(v.containers) == per_node for v in cluster.nodes.values()):
        await asyncio.sleep(0.05)
    return cluster


class GcTimer:
    """Every collection's pause, from the collector's own start/stop callbacks: wall time, and the
    thread's CPU time (what the pause is on a machine that other processes do not share)."""

    def __init__(self):
        self.pauses: list[tuple[int, float, float]] = []     # (generation, wall s, CPU s)
        self._started = (0.0, 0.0)

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = (time.perf_counter(), time.thread_time())
        else:
            self.pauses.append((info.get("generation", -1), time.perf_counter() - self._started[0],
                                time.thread_time() - self._started[1]))


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * KiB
    return 0


def _request(path: str, query: dict[str, list[str]]) -> Request:
    return Request("GET", path, query, Headers([]), b"", "1.1")


async def time_handlers(cluster: ClusterView) -> dict:
    """Median wall time of the `docker ps -a` and `docker info` handlers on the filled view."""
    ctx = ManagerContext(cluster, Scheduler("spread"))
    ps, ps_cpu, info, size = [], [], [], 0
    for _ in range(5):
        s, cpu = time.perf_counter(), time.process_time()
        resp = await containers_api.list_containers(ctx, _request("/containers/json", {"all": ["1"]}))
        ps.append(time.perf_counter() - s)
        ps_cpu.append(time.process_time() - cpu)
        size = len(resp.body)
        s = time.perf_counter()
        await system_api.info(ctx, _request("/info", {}))
        info.append(time.perf_counter() - s)
    return {"ps_ms": statistics.median(ps) * 1e3, "ps_cpu_ms": statistics.median(ps_cpu) * 1e3, "ps_bytes": size,
            "info_ms": statistics.median(info) * 1e3}


async def measure_rss(nodes: int, per_node: int) -> dict:
    timer = GcTimer()
    clock = PolicyClock()
    policy = GcPolicy(clock=clock)          # as `swarm manage` runs: manager.daemon installs it
    engines = hollow_engines(nodes, per_node)
    engines_census = tracked_census()
    gc.collect()
    gc.freeze()                 # the engines stand for other processes: no collection of the view walks them
    before = rss()
    policy.install()
    gc.callbacks.append(timer)
    s, cpu = time.perf_counter(), time.process_time()
    cluster = await fill(engines, per_node)
    fill_s, fill_cpu = time.perf_counter() - s, time.process_time() - cpu
    handlers = await time_handlers(cluster)
    gc.callbacks.remove(timer)
    thaw = thaw_pauses(clock)
    gc.collect()
    after = rss()
    containers = sum(len(v.containers) for v in cluster.nodes.values())
    policy.uninstall()
    census = view_census(engines_census)
    thaw_ms = await full_walk(cluster, engines)
    full = [p for g, p, _ in timer.pauses if g == 2]
    return {"nodes": nodes, "containers": containers, "rss_delta": after - before, "fill_s": fill_s,
            "fill_cpu_s": fill_cpu, "load": os.getloadavg()[0],
            "gc_max_ms": max((p for _, p, _ in timer.pauses), default=0) * 1e3,
            "gc_max_cpu_ms": max((c for _, _, c in timer.pauses), default=0) * 1e3,
            "gc_full": len(full), "gc_full_max_ms": max(full, default=0) * 1e3, "thaw_ms": thaw_ms, **thaw,
            **census, **handlers}


class PolicyClock:
    """The GC policy's clock, which the thaw row moves on by weeks."""

    def __init__(self):
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def thaw_pauses(clock: PolicyClock) -> dict:
    """The worst pause the policy's periodic path causes on the filled view: the policy's clock
    moved on a week at a time, and at each a full collection forced twice (the first finds the
    period over; the second is the one that would walk everything, were the frozen objects handed
    back). The row the hourly thaw failed: it led to a full walk of the view."""
    timer = GcTimer()
    gc.callbacks.append(timer)
    try:
        for _ in range(THAW_WEEKS):
            clock.offset += WEEK
            gc.collect()
            gc.collect()
    finally:
        gc.callbacks.remove(timer)
    return {"thaw_path_max_ms": max(p for _, p, _ in timer.pauses) * 1e3,
            "thaw_path_max_cpu_ms": max(c for _, _, c in timer.pauses) * 1e3}


def tracked_census() -> collections.Counter:
    """What the collector tracks, by type name, frozen objects included."""
    gc.unfreeze()               # gc.get_objects() does not list the frozen objects
    gc.collect()
    objects = gc.get_objects()
    census = collections.Counter(type(o).__name__ for o in objects)
    del objects
    return census


def view_census(engines_census: collections.Counter) -> dict:
    """The objects the view adds to what the collector tracks (all of them, less what the hollow
    engines tracked before the fill), and a full walk's CPU time per million tracked objects."""
    everything = tracked_census()
    gc.collect()
    s = time.thread_time()
    gc.collect()
    walk = time.thread_time() - s
    tracked = sum(everything.values())
    own = everything - engines_census
    return {"tracked": tracked, "view_tracked": sum(own.values()), "walk_ms_per_million": walk * 1e9 / tracked,
            "tracked_types": own.most_common(TOP_TYPES)}


SYNC_NODES = 500                        # the manager-only sync: enough nodes for a steady per-node cost
GRPC_NODES = 200                        # … and over gRPC (hollow agents in one child process)
SYNC_TARGET_MS = 8.0                    # issue 16: half the ~16 ms a node (30 containers) measured before


async def measure_sync(nodes: int, per_node: int) -> dict:
    """The manager's own CPU for the initial sync of `nodes` nodes: every engine answer is made
    first (`RecordedAgent.record`, timed apart as the engines' cost), then the view syncs from
    the recorded bytes, with the manager's GC policy installed."""
    engines = hollow_engines(nodes, per_node)
    agents = {node_id: RecordedAgent(engine) for node_id, engine in engines.items()}
    cpu = time.process_time()
    for agent in agents.values():
        await agent.record()
    engine_cpu = time.process_time() - cpu
    policy = GcPolicy()
    gc.collect()
    gc.freeze()                 # the recorded answers stand for other processes, as in measure_rss
    policy.install()
    s, cpu = time.perf_counter(), time.process_time()
    cluster = await fill(engines, per_node, agents)
    sync_s, sync_cpu = time.perf_counter() - s, time.process_time() - cpu
    policy.uninstall()
    containers = sum(len(v.containers) for v in cluster.nodes.values())
    await cluster.close()
    return {"nodes": nodes, "containers": containers, "sync_s": sync_s, "sync_cpu_s": sync_cpu,
            "engine_cpu_s": engine_cpu, "load": os.getloadavg()[0]}


def sync_rows(m: dict) -> list[Row]:
    n, c = m["nodes"], m["containers"]
    return [
        judged(f"memory: sync CPU per node, manager only ({n} nodes, {c // n} containers each)",
               m["sync_cpu_s"] / n * 1e3, "ms", f"<= {SYNC_TARGET_MS:g}"),
        judged(f"memory: sync CPU per container, manager only ({c} containers)", m["sync_cpu_s"] / c * 1e6, "us"),
        judged(f"memory: engines' CPU per node for the same answers (the agents' share, {n} nodes)",
               m["engine_cpu_s"] / n * 1e3, "ms"),
    ]


async def serve_hollow(nodes: int, per_node: int) -> dict:
    """Mode `serve` (a child of mode `grpc`): the hollow engines behind the real agent service, one
    gRPC server each, as hollow nodes run; prints their addresses, serves until stdin closes."""
    servers, listing = [], []
    for node_id, engine in hollow_engines(nodes, per_node).items():
        server = grpc.aio.server(options=SERVER_OPTIONS)
        addr = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
        settings = NodeSettings(node_id=node_id, addr=addr, host_ip="127.0.0.1", name=engine.name)
        agent_pb2_grpc.add_AgentServicer_to_server(AgentService(engine, NodeInfoSource(engine, settings)), server)
        await server.start()
        servers.append(server)
        listing.append({"id": node_id, "name": engine.name, "addr": addr, "cpus": engine.cpus, "memory": engine.memory})
    print(json.dumps(listing), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await asyncio.gather(*(s.stop(0) for s in servers))
    return {}


async def measure_grpc(nodes: int, per_node: int) -> dict:
    """The manager process's CPU (gRPC included: its threads count) for the initial sync of `nodes`
    hollow nodes served by the real agent service in a child process (mode `serve`), through the
    manager's own AgentClient."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.memory", "--mode", "serve", "--nodes", str(nodes),
                             "--containers", str(per_node)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        listing = json.loads(proc.stdout.readline())
        policy = GcPolicy()
        policy.install()
        s, cpu = time.perf_counter(), time.process_time()
        cluster = ClusterView()
        for n in listing:
            info = types_pb2.NodeInfo(id=n["id"], name=n["name"], addr=n["addr"], host_ip="127.0.0.1",
                                      cpus=n["cpus"], memory_bytes=n["memory"])
            cluster.node_joined(types_pb2.Node(info=info, state=types_pb2.NODE_STATE_HEALTHY))
        cluster.synced.set()
        cluster.intents_synced.set()
        while not all(v.listed and len(v.containers) == per_node for v in cluster.nodes.values()):
            await asyncio.sleep(0.05)
        sync_s, sync_cpu = time.perf_counter() - s, time.process_time() - cpu
        policy.uninstall()
        containers = sum(len(v.containers) for v in cluster.nodes.values())
        await cluster.close()
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    return {"nodes": nodes, "containers": containers, "sync_s": sync_s, "sync_cpu_s": sync_cpu,
            "load": os.getloadavg()[0]}


def grpc_rows(m: dict) -> list[Row]:
    n, c = m["nodes"], m["containers"]
    return [
        judged(f"memory: sync CPU per node, manager process over gRPC ({n} nodes, {c // n} containers each)",
               m["sync_cpu_s"] / n * 1e3, "ms"),
        judged(f"memory: sync wall time over gRPC, {n} nodes (agents in one other process)", m["sync_s"], "s"),
    ]


async def full_walk(cluster: ClusterView, engines: dict) -> float:
    """One full collection over every object of the view, as the policy's fallback thaw (off by
    default) leads to (the engines are let go first: they stand for other processes)."""
    await cluster.close()
    engines.clear()
    gc.unfreeze()
    gc.collect()
    s = time.thread_time()
    gc.collect()
    return (time.thread_time() - s) * 1e3


def _site(frame) -> str:
    return f"{frame.filename.rsplit('/site-packages/', 1)[-1].rsplit('/lib/python3', 1)[-1]}:{frame.lineno}"


def _ours(tb) -> str:
    """The innermost frame in swarmd's own code (the manager line that asked for the allocation)."""
    for frame in reversed(tb):
        path = frame.filename
        if "/manager/" in path or "/swarmd/" in path and "/hollow" not in path:
            return _site(frame)
    return "-"


async def measure_trace(nodes: int, per_node: int) -> dict:
    engines = hollow_engines(nodes, per_node)
    gc.collect()
    tracemalloc.start(8)
    base = tracemalloc.take_snapshot()
    cluster = await fill(engines, per_node)
    gc.collect()
    after = tracemalloc.take_snapshot()
    containers = sum(len(v.containers) for v in cluster.nodes.values())
    sites: dict[tuple[str, str], int] = {}
    total = 0
    for stat in after.compare_to(base, "traceback"):
        if stat.size_diff <= 0:
            continue
        tb = stat.traceback
        key = (_site(tb[-1]), _ours(tb))    # frames run oldest first: the last is the allocation
        sites[key] = sites.get(key, 0) + stat.size_diff
        total += stat.size_diff
    tracemalloc.stop()
    top = sorted(sites.items(), key=lambda kv: -kv[1])[:TOP_SITES]
    return {"nodes": nodes, "containers": containers, "traced": total,
            "top": [{"site": a, "from": b, "bytes": n, "per_container": n / max(containers, 1)} for (a, b), n in top]}


def child(nodes: int, mode: str) -> dict:
    """One size in a fresh process (see the module docstring)."""
    out = subprocess.run([sys.executable, "-m", "bench.memory", "--nodes", str(nodes), "--mode", mode],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout)


def rows_of(m: dict) -> list[Row]:
    n, c = m["nodes"], m["containers"]
    return [
        judged(f"memory: view sync, {n} nodes / {c} containers (in-process)", m["fill_s"], "s"),
        judged(f"memory: view sync CPU time, {n} nodes / {c} containers", m["fill_cpu_s"], "s"),
        judged(f"memory: RSS per container, {n} nodes / {c} containers", m["rss_delta"] / c / KiB, "KiB", "<= 10"),
        judged(f"memory: RSS of the view, {n} nodes / {c} containers", m["rss_delta"] / MiB, "MiB"),
        judged(f"memory: ps -a handler median, {c} containers", m["ps_ms"], "ms",
               f"<= {PS_TARGET_MS[c]}" if c in PS_TARGET_MS else ""),
        judged(f"memory: ps -a handler median CPU time, {c} containers", m["ps_cpu_ms"], "ms"),
        judged(f"memory: ps -a body, {c} containers", m["ps_bytes"] / MiB, "MiB"),
        judged(f"memory: info handler median, {n} nodes", m["info_ms"], "ms",
               f"<= {INFO_TARGET_MS[n]}" if n in INFO_TARGET_MS else ""),
        judged(f"memory: longest GC pause, CPU time (sync + handlers), {c} containers", m["gc_max_cpu_ms"], "ms",
               "<= 50"),
        judged(f"memory: longest GC pause, wall time (sync + handlers), {c} containers", m["gc_max_ms"], "ms"),
        judged(f"memory: full collections (sync + handlers), {c} containers", m["gc_full"], ""),
        judged(f"memory: longest GC pause, CPU time, {THAW_WEEKS} weeks of policy time (thaw path), {c} containers",
               m["thaw_path_max_cpu_ms"], "ms", f"<= {GC_PAUSE_TARGET_MS}"),
        judged(f"memory: longest GC pause, wall time, {THAW_WEEKS} weeks of policy time (thaw path), {c} containers",
               m["thaw_path_max_ms"], "ms"),
        judged(f"memory: objects the view makes the collector track, {c} containers", m["view_tracked"], ""),
        judged(f"memory: a full collection's CPU time per million tracked objects ({m['tracked']} tracked)",
               m["walk_ms_per_million"], "ms"),
        judged(f"memory: a full collection over the whole view (the fallback thaw, off by default), CPU time, "
               f"{c} containers", m["thaw_ms"], "ms"),
        judged(f"memory: load average during the {n}-node run (2 CPUs; a quiet machine: < 1)", m["load"], ""),
    ]


def print_census(m: dict) -> None:
    print(f"# tracked by the collector, {m['nodes']} nodes / {m['containers']} containers: {m['view_tracked']} "
          f"objects of the view ({m['tracked']} in all)", file=sys.stderr)
    for name, count in m["tracked_types"]:
        print(f"#  {count:9d}  {name}", file=sys.stderr)


def print_sites(m: dict) -> None:
    print(f"# tracemalloc, {m['nodes']} nodes / {m['containers']} containers: "
          f"{m['traced'] / m['containers'] / KiB:.2f} KiB traced per container", file=sys.stderr)
    for s in m["top"]:
        print(f"#  {s['per_container']:8.0f} B/ctr  {s['site']:<45} from {s['from']}", file=sys.stderr)


def run(quick: bool = False) -> list[Row]:
    sizes = (100,) if quick else (1000, 5000)
    rows = []
    for nodes in sizes:
        m = child(nodes, "rss")
        print_census(m)
        rows += rows_of(m)
    rows += sync_rows(child(min(sizes[0], SYNC_NODES), "sync"))
    rows += grpc_rows(child(min(sizes[0], GRPC_NODES), "grpc"))
    traced = child(min(sizes[0], TRACE_NODES), "trace")
    print_sites(traced)
    rows.append(judged(f"memory: traced bytes per container, {traced['containers']} containers",
                       traced["traced"] / traced["containers"] / KiB, "KiB"))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.memory")
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--containers", type=int, default=CONTAINERS_PER_NODE, help="containers per node")
    p.add_argument("--mode", choices=("rss", "trace", "sync", "grpc", "serve"), default="rss")
    p.add_argument("--print", action="store_true", help="print the rows / the sites instead of JSON")
    args = p.parse_args(argv)
    measure = {"rss": measure_rss, "trace": measure_trace, "sync": measure_sync, "grpc": measure_grpc,
               "serve": serve_hollow}[args.mode]
    result = asyncio.run(measure(args.nodes, args.containers))
    if args.mode == "serve":
        return 0
    if not args.print:
        print(json.dumps(result))
    elif args.mode == "trace":
        print_sites(result)
    else:
        from bench.report import print_table
        if args.mode == "rss":
            print_census(result)
        print_table({"rss": rows_of, "sync": sync_rows, "grpc": grpc_rows}[args.mode](result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
