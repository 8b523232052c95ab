"""`/_ping`, `/version`, `/info`, `/auth`, `/system/df` handlers: the cluster presented as one Docker host."""
from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from swarmd.manager.api import relay
from swarmd.manager.api.context import API_VERSION, MIN_API_VERSION, VERSION, ManagerContext
from swarmd.manager.api.lookups import healthy_nodes
from swarmd.manager.httpd.request import Request
from swarmd.manager.httpd.response import Response, json_response

if TYPE_CHECKING:
    from swarmd.manager.cluster import NodeView

_PING_HEADERS = {"Swarm": "inactive", "Builder-Version": "1", "Cache-Control": "no-cache, no-store, must-revalidate",
                 "Pragma": "no-cache"}


def _units(n: float) -> str:
    """go-units BytesSize: 1.5GiB style, as classic swarm printed reserved memory."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.4g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"


def _os_release() -> str:
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


async def ping(ctx: ManagerContext, req: Request) -> Response:
    return Response(200, b"OK", content_type="text/plain; charset=utf-8", headers=_PING_HEADERS)


async def version(ctx: ManagerContext, req: Request) -> Response:
    details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
               "Arch": platform.machine(), "KernelVersion": platform.release(), "GitCommit": "swarmd"}
    return json_response({
        "Platform": {"Name": "swarmd"},
        "Components": [{"Name": "Engine", "Version": f"swarmd/{VERSION}", "Details": details}],
        "Version": f"swarmd/{VERSION}",
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "swarmd",
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": platform.machine(),
        "KernelVersion": platform.release(),
        "BuildTime": "",
    })


async def info(ctx: ManagerContext, req: Request) -> Response:
    return json_response(cluster_info(ctx))


async def auth(ctx: ManagerContext, req: Request) -> Response:
    """Registry credentials are checked by a healthy node's engine (they are the same everywhere)."""
    node = healthy_nodes(ctx.cluster, "to check the credentials with")[0]
    return await relay.unary(req, node.client, "/auth")


async def disk_usage(ctx: ManagerContext, req: Request) -> Response:
    """`docker system df`: every healthy node's usage, objects named `node/name` where node-local."""
    out = {"LayersSize": 0, "Images": [], "Containers": [], "Volumes": [], "BuildCache": []}
    seen_images: set[str] = set()
    for view in ctx.cluster.healthy_nodes():
        resp = await view.client.engine_call("GET", "/system/df", "")
        if resp.status != 200:
            continue
        doc = json.loads(resp.body or b"{}")
        out["LayersSize"] += doc.get("LayersSize") or 0
        for img in doc.get("Images") or []:
            if img.get("Id") not in seen_images:
                seen_images.add(img.get("Id"))
                out["Images"].append(img)
        for c in doc.get("Containers") or []:
            c["Names"] = [f"/{view.name}{n}" for n in c.get("Names") or []]
            out["Containers"].append(c)
        for vol in doc.get("Volumes") or []:
            vol["Name"] = f"{view.name}/{vol.get('Name', '')}"
            out["Volumes"].append(vol)
    return json_response(out)


def cluster_info(ctx: ManagerContext) -> dict:
    cluster = ctx.cluster
    running = paused = stopped = 0
    status: list[list[str]] = [
        ["Role", ctx.role],
    ]
    if ctx.primary_addr:
        status.append(["Primary", ctx.primary_addr])
    status += [
        ["Strategy", ctx.scheduler.strategy_name],
        ["Filters", ", ".join(ctx.scheduler.filter_names)],
        ["Nodes", str(len(cluster.nodes))],
    ]
    ncpu = mem = 0
    image_ids: set[str] = set()
    for view in sorted(cluster.nodes.values(), key=lambda v: v.name):
        block = node_block(view)
        running, paused, stopped = running + block.running, paused + block.paused, stopped + block.stopped
        ncpu += block.cpus
        mem += block.memory
        image_ids.update(block.image_ids)
        status += block.rows
    if len(_NODE_BLOCKS) > 2 * len(cluster.nodes) + 64:      # blocks of nodes gone
        for node_id in set(_NODE_BLOCKS) - set(cluster.nodes):
            del _NODE_BLOCKS[node_id]
    return {
        "ID": "swarmd",
        "Containers": running + paused + stopped,
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": len(image_ids - {""}),
        "Driver": "",
        "DriverStatus": [],
        "SystemStatus": status,
        "Plugins": {"Volume": None, "Network": None, "Authorization": None, "Log": None},
        "MemoryLimit": True,
        "SwapLimit": True,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "IPv4Forwarding": True,
        "Debug": False,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": datetime.now().astimezone().isoformat(),
        "LoggingDriver": "",
        "CgroupDriver": "",
        "NEventsListener": 0,
        "KernelVersion": platform.release(),
        "OperatingSystem": _os_release(),
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": None,
        "NCPU": ncpu,
        "MemTotal": mem,
        "DockerRootDir": "",
        "Name": ctx.name,
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": f"swarmd/{VERSION}",
        "Runtimes": {},
        "DefaultRuntime": "",
        "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": False,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": [],
        "Warnings": [],
    }


@dataclass(frozen=True)
class NodeBlock:
    """What `docker info` shows and sums of one node."""
    rows: list[list[str]]
    running: int
    paused: int
    stopped: int
    cpus: int
    memory: int
    image_ids: frozenset[str]


# node id -> (what the block was made from, the block): a node is formatted again only when it
# changed (its generation, its snapshot with what is placed on it, health, images); at 5,000 nodes
# the formatting was most of an info call
_NODE_BLOCKS: dict[str, tuple[tuple, NodeBlock]] = {}


def node_block(view: NodeView) -> NodeBlock:
    snap = view.snapshot()
    made_from = (view, snap, view.images, view.generation, view.status, view.error)
    cached = _NODE_BLOCKS.get(view.id)
    if cached is not None:
        was = cached[0]
        if was[0] is view and was[1] is snap and was[2] is view.images and was[3:] == made_from[3:]:
            return cached[1]
    n_run = n_pause = n_stop = 0
    for rec in view.containers.values():
        st = rec.state
        if st.get("Paused"):
            n_pause += 1
        elif st.get("Running"):
            n_run += 1
        else:
            n_stop += 1
    labels = ", ".join(f"{k}={v}" for k, v in sorted(snap.labels.items()))
    rows = [
        [f" {view.name}", view.addr],
        ["  └ ID", view.id],
        ["  └ Status", view.status],
        ["  └ Containers", f"{len(view.containers)} ({n_run} Running, {n_pause} Paused, {n_stop} Stopped)"],
        ["  └ Reserved CPUs", f"{snap.reserved_cpus:g} / {snap.total_cpus:g}"],
        ["  └ Reserved Memory", f"{_units(snap.reserved_memory)} / {_units(snap.total_memory)}"],
        ["  └ Labels", labels],
        ["  └ UpdatedAt", view.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")],
        ["  └ ServerVersion", snap.engine_version],
    ]
    if view.error:
        rows.append(["  └ Error", view.error])
    block = NodeBlock(rows, n_run, n_pause, n_stop, int(snap.total_cpus), snap.total_memory,
                      frozenset(img.get("Id", "") for img in view.images))
    _NODE_BLOCKS[view.id] = (made_from, block)
    return block
