"""`/_ping`, `/version`, `/info`, `/auth`, `/system/df` handlers: the cluster presented as one Docker host."""
from __future__ import annotations

import json
import platform
from datetime import datetime

from swarmd.manager.api import relay
from swarmd.manager.api.context import API_VERSION, MIN_API_VERSION, VERSION, ManagerContext
from swarmd.manager.api.lookups import healthy_nodes
from swarmd.manager.httpd.request import Request
from swarmd.manager.httpd.response import Response, json_response

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
    ncpu = 0
    mem = 0
    image_ids: set[str] = set()
    for view in sorted(cluster.nodes.values(), key=lambda v: v.name):
        snap = view.snapshot()
        n_run = n_pause = n_stop = 0
        for rec in view.containers.values():
            st = rec.state
            if st.get("Paused"):
                n_pause += 1
            elif st.get("Running"):
                n_run += 1
            else:
                n_stop += 1
        running, paused, stopped = running + n_run, paused + n_pause, stopped + n_stop
        ncpu += int(snap.total_cpus)
        mem += snap.total_memory
        image_ids.update(img.get("Id", "") for img in view.images)
        labels = ", ".join(f"{k}={v}" for k, v in sorted(snap.labels.items()))
        status += [
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
            status.append(["  └ Error", view.error])
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
