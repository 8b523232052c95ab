"""Hollow nodes: agents backed by an in-memory engine, many to one process, for scale benchmarks.

Like Kubernetes' kubemark, a hollow node is the real agent (its gRPC `Agent` service, health
service, registration and heartbeats through `swarmd.common.membership`) with the engine replaced by
`HollowEngine`, which keeps containers, images and events in memory and answers in the engine's
own JSON shapes. One process hosts hundreds of them, each on its own gRPC port, so a manager can
be measured against a thousand nodes on one machine. Hollow nodes are a benchmark tool only.

    python -m swarmd.agent.hollow --count 500 --discovery-addr 127.0.0.1:4000 token://TOKEN
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import hashlib
import itertools
import json
import os
import secrets
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import grpc
import orjson
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from swarmd.agent.daemon import SERVER_OPTIONS, SERVICE_NAME
from swarmd.agent.engine import API_VERSION, EngineConnection, EngineError, EngineResponse, engine_path
from swarmd.agent.node_info import NodeInfoSource, NodeSettings, parse_labels
from swarmd.agent.service import AgentService
from swarmd.proto.swarm.v1 import agent_pb2_grpc
from swarmd.common import config, logs
from swarmd.common.membership.registrar import LeaseRegistrar

log = logs.get("agent.hollow")

ENGINE_VERSION = "20.10.24"
GiB = 1 << 30
EVENT_BACKLOG = 256           # recent events kept for `since` replays
# registrations in flight from one process: hundreds of nodes joining at once would otherwise
# queue at the discovery daemon past the agents' call timeout and come back as retries
REGISTERING_AT_ONCE = 16
DEFAULT_IMAGES = ("busybox:latest", "hello-world:latest")
_JSON = [("Content-Type", "application/json")]


def image_id(reference: str) -> str:
    """A stable image ID for a reference, the same on every hollow node."""
    return "sha256:" + hashlib.sha256(reference.encode()).hexdigest()


def normalize_reference(reference: str) -> str:
    """`busybox` -> `busybox:latest`; a digest or tag is kept."""
    last = reference.rsplit("/", 1)[-1]
    return reference if ":" in last or "@" in last else f"{reference}:latest"


def _now_text(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    return _second_text(ns // 10**9) + f".{ns % 10**9:09d}Z"


@functools.lru_cache(maxsize=8)
def _second_text(seconds: int) -> str:
    # a node joining with its 29 containers stamps them all within one second: strftime once
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


_ZERO_TIME = "0001-01-01T00:00:00Z"
_ADJECTIVES = ("brave", "calm", "eager", "fond", "keen", "lucid", "merry", "quirky", "stoic", "vivid")
_NOUNS = ("turing", "hopper", "lovelace", "curie", "noether", "shannon", "dijkstra", "knuth", "ritchie")


def _error(status: int, message: str) -> EngineError:
    return EngineError(status, message)


# -- containers -------------------------------------------------------------------------------


@dataclass
class HollowContainer:
    """One simulated container: the create body it came from and its state."""

    id: str
    name: str
    image_ref: str
    image_id: str
    config: dict
    host_config: dict
    created: str
    status: str = "created"          # created | running | paused | exited
    exit_code: int = 0
    pid: int = 0
    started_at: str = _ZERO_TIME
    finished_at: str = _ZERO_TIME
    # the inspect bytes and list entry last made, and the state they were made in: a sync asks
    # for every container of a node, and a fleet of hollow nodes shares the manager's CPUs
    _made: tuple | None = field(default=None, repr=False, compare=False)
    _inspect_bytes: bytes = field(default=b"", repr=False, compare=False)
    _summary: dict | None = field(default=None, repr=False, compare=False)

    def _state(self) -> tuple:
        return self.status, self.exit_code, self.pid, self.started_at, self.finished_at

    def _fresh(self) -> None:
        state = self._state()
        if self._made != state:
            doc = self.inspect()
            # compact, as an engine writes it (Go's encoding/json)
            self._inspect_bytes = orjson.dumps(doc)
            self._summary = self._summary_of(doc)
            self._made = state

    def inspect_bytes(self) -> bytes:
        """`inspect()` as the engine sends it, made again only after the state changed."""
        self._fresh()
        return self._inspect_bytes

    def inspect(self, node_name: str = "") -> dict:
        """The engine's `GET /containers/{id}/json` document for this container."""
        cfg = self.config
        cmd = cfg.get("Cmd") or ["sh"]
        entry = cfg.get("Entrypoint") or []
        argv = list(entry) + list(cmd)
        running = self.status in ("running", "paused")
        network_mode = self.host_config.get("NetworkMode") or "default"
        return {
            "Id": self.id,
            "Created": self.created,
            "Path": argv[0] if argv else "",
            "Args": argv[1:],
            "State": {
                "Status": self.status, "Running": running, "Paused": self.status == "paused",
                "Restarting": False, "OOMKilled": False, "Dead": False, "Pid": self.pid if running else 0,
                "ExitCode": self.exit_code, "Error": "", "StartedAt": self.started_at,
                "FinishedAt": self.finished_at,
            },
            "Image": self.image_id,
            "ResolvConfPath": f"/var/lib/docker/containers/{self.id}/resolv.conf",
            "HostnamePath": f"/var/lib/docker/containers/{self.id}/hostname",
            "HostsPath": f"/var/lib/docker/containers/{self.id}/hosts",
            "LogPath": f"/var/lib/docker/containers/{self.id}/{self.id}-json.log",
            "Name": f"/{self.name}",
            "RestartCount": 0,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": self._host_config_doc(network_mode),
            "GraphDriver": {"Name": "overlay2", "Data": {
                "LowerDir": f"/var/lib/docker/overlay2/{self.id}-init/diff",
                "MergedDir": f"/var/lib/docker/overlay2/{self.id}/merged",
                "UpperDir": f"/var/lib/docker/overlay2/{self.id}/diff",
                "WorkDir": f"/var/lib/docker/overlay2/{self.id}/work"}},
            "Mounts": [],
            "Config": self._config_doc(cmd),
            "NetworkSettings": self._network_settings_doc(running, network_mode),
        }

    def _host_config_doc(self, network_mode: str) -> dict:
        return {
            "Binds": self.host_config.get("Binds"), "ContainerIDFile": "",
            "LogConfig": {"Type": "json-file", "Config": {}},
            "NetworkMode": network_mode,
            "PortBindings": self.host_config.get("PortBindings") or {},
            "RestartPolicy": self.host_config.get("RestartPolicy") or {"Name": "no", "MaximumRetryCount": 0},
            "AutoRemove": bool(self.host_config.get("AutoRemove")), "VolumeDriver": "", "VolumesFrom": None,
            "CapAdd": None, "CapDrop": None, "CgroupnsMode": "private", "Dns": [], "DnsOptions": [],
            "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private", "Cgroup": "",
            "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
            "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864,
            "Runtime": "runc", "Isolation": "", "CpuShares": int(self.host_config.get("CpuShares") or 0),
            "Memory": int(self.host_config.get("Memory") or 0),
            "NanoCpus": int(self.host_config.get("NanoCpus") or 0), "CgroupParent": "",
            "BlkioWeight": 0, "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
            "CpusetCpus": self.host_config.get("CpusetCpus") or "", "CpusetMems": "", "Devices": [],
            "MemoryReservation": 0, "MemorySwap": 0, "OomKillDisable": False, "PidsLimit": None,
            "Ulimits": None, "CpuCount": 0, "CpuPercent": 0, "MaskedPaths": ["/proc/asound", "/proc/acpi"],
            "ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        }

    def _config_doc(self, cmd: list) -> dict:
        cfg = self.config
        return {
            "Hostname": self.id[:12], "Domainname": "", "User": cfg.get("User") or "",
            "AttachStdin": bool(cfg.get("AttachStdin")), "AttachStdout": bool(cfg.get("AttachStdout")),
            "AttachStderr": bool(cfg.get("AttachStderr")), "ExposedPorts": cfg.get("ExposedPorts"),
            "Tty": bool(cfg.get("Tty")), "OpenStdin": bool(cfg.get("OpenStdin")),
            "StdinOnce": bool(cfg.get("StdinOnce")),
            "Env": cfg.get("Env") or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": cmd, "Image": self.image_ref, "Volumes": cfg.get("Volumes"),
            "WorkingDir": cfg.get("WorkingDir") or "", "Entrypoint": cfg.get("Entrypoint"),
            "OnBuild": None, "Labels": cfg.get("Labels") or {},
        }

    def _network_settings_doc(self, running: bool, network_mode: str) -> dict:
        cfg = self.config
        ports: dict[str, list | None] = {}
        for key in cfg.get("ExposedPorts") or {}:
            ports[key] = None
        for key, bindings in (self.host_config.get("PortBindings") or {}).items():
            ports[key] = [{"HostIp": b.get("HostIp") or "0.0.0.0", "HostPort": str(b.get("HostPort") or "")}
                          for b in bindings or []] if running else None
        ip = f"172.17.{(self.pid >> 8) & 255}.{self.pid & 255}" if running else ""
        return {
            "Bridge": "", "SandboxID": self.id[::-1] if running else "", "HairpinMode": False,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": ports,
            "SandboxKey": f"/var/run/docker/netns/{self.id[:12]}" if running else "",
            "Gateway": "172.17.0.1" if running else "", "IPAddress": ip, "IPPrefixLen": 16 if running else 0,
            "MacAddress": "", "Networks": {"bridge" if network_mode == "default" else network_mode: {
                "IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "0" * 64,
                "EndpointID": self.id if running else "", "Gateway": "172.17.0.1" if running else "",
                "IPAddress": ip, "IPPrefixLen": 16 if running else 0, "MacAddress": "",
                "DriverOpts": None}},
        }

    def summary(self, node_name: str = "") -> dict:
        """The `GET /containers/json` entry for this container (shared: not to be changed)."""
        self._fresh()
        return self._summary

    def _summary_of(self, doc: dict) -> dict:
        ports = []
        for key, bindings in (doc["NetworkSettings"]["Ports"] or {}).items():
            port, _, proto = key.partition("/")
            for b in bindings or [{}]:
                entry = {"PrivatePort": int(port), "Type": proto or "tcp"}
                if b.get("HostPort"):
                    entry.update(IP=b["HostIp"], PublicPort=int(b["HostPort"]))
                ports.append(entry)
        return {
            "Id": self.id, "Names": [f"/{self.name}"], "Image": self.image_ref, "ImageID": self.image_id,
            "Command": " ".join([doc["Path"], *doc["Args"]]).strip(),
            "Created": int(datetime.fromisoformat(self.created[:19]).replace(tzinfo=timezone.utc).timestamp()),
            "Ports": ports, "Labels": doc["Config"]["Labels"], "State": self.status,
            "Status": {"running": "Up", "paused": "Up (Paused)", "created": "Created"}.get(
                self.status, f"Exited ({self.exit_code})"),
            "HostConfig": {"NetworkMode": doc["HostConfig"]["NetworkMode"]},
            "NetworkSettings": {"Networks": doc["NetworkSettings"]["Networks"]}, "Mounts": [],
        }


def _created_second(c: HollowContainer) -> str:
    return c.created[:19]


def _matches(c: HollowContainer, filters: dict) -> bool:
    """The subset of `GET /containers/json` filters a hollow engine honours: id, name, label, status."""
    for key, values in filters.items():
        values = list(values) if isinstance(values, (list, tuple)) else list(values or {})
        if not values:
            continue
        if key == "id" and not any(c.id.startswith(v) for v in values):
            return False
        if key == "name" and not any(v.lstrip("/") in c.name for v in values):
            return False
        if key == "status" and c.status not in values:
            return False
        if key == "label":
            labels = c.config.get("Labels") or {}
            for item in values:
                k, sep, v = item.partition("=")
                if (labels.get(k) != v) if sep else (k not in labels):
                    return False
    return True


# -- the engine -------------------------------------------------------------------------------


class HollowEngine:
    """An in-memory engine: an `agent.local_engine.LocalEngine` for hollow nodes."""

    same_clock = True        # its event times are this process's clock

    def __init__(self, name: str, cpus: int = 4, memory: int = 8 * GiB, labels: dict[str, str] | None = None,
                 images: Iterable[str] = DEFAULT_IMAGES):
        self.name = name
        self.url = f"hollow://{name}"
        self.cpus = cpus
        self.memory = memory
        self.labels = dict(labels or {})
        self.engine_id = secrets.token_hex(16).upper()
        self.images: dict[str, str] = {}                 # reference -> image ID
        self.image_created: dict[str, int] = {}
        for ref in images:
            self._add_image(ref)
        self.containers: dict[str, HollowContainer] = {}
        self.names: dict[str, str] = {}                   # name -> container ID
        self._recent: deque[tuple[int, bytes]] = deque(maxlen=EVENT_BACKLOG)
        self._subscribers: set[asyncio.Queue] = set()
        self._pids = itertools.count(1000)

    # -- facts --------------------------------------------------------------------------------

    async def check(self) -> str:
        return ""

    def info_doc(self) -> dict:
        states = [c.status for c in self.containers.values()]
        return {
            "ID": self.engine_id, "Name": self.name, "NCPU": self.cpus, "MemTotal": self.memory,
            "Containers": len(states), "ContainersRunning": states.count("running"),
            "ContainersPaused": states.count("paused"),
            "ContainersStopped": len(states) - states.count("running") - states.count("paused"),
            "Images": len(set(self.images.values())), "Driver": "overlay2", "ServerVersion": ENGINE_VERSION,
            "OSType": "linux", "KernelVersion": "6.1.0-hollow", "OperatingSystem": "Hollow Linux",
            "Architecture": "x86_64", "Labels": [f"{k}={v}" for k, v in sorted(self.labels.items())],
            "DockerRootDir": "/var/lib/docker", "LoggingDriver": "json-file", "CgroupDriver": "systemd",
        }

    async def info(self) -> bytes:
        return json.dumps(self.info_doc()).encode()

    def version_doc(self) -> dict:
        return {"Version": ENGINE_VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": "1.12", "Os": "linux",
                "Arch": "amd64", "KernelVersion": "6.1.0-hollow", "GitCommit": "hollow"}

    async def version(self) -> bytes:
        return json.dumps(self.version_doc()).encode()

    # -- images -------------------------------------------------------------------------------

    def _add_image(self, reference: str) -> str:
        ref = normalize_reference(reference)
        self.images[ref] = image_id(ref)
        self.image_created.setdefault(ref, int(time.time()))
        return self.images[ref]

    def images_doc(self) -> list[dict]:
        by_id: dict[str, list[str]] = {}
        for ref, iid in self.images.items():
            by_id.setdefault(iid, []).append(ref)
        return [{"Id": iid, "RepoTags": sorted(refs), "RepoDigests": [], "ParentId": "", "Size": 1_234_567,
                 "VirtualSize": 1_234_567, "SharedSize": -1, "Labels": None, "Containers": -1,
                 "Created": min(self.image_created[r] for r in refs)} for iid, refs in by_id.items()]

    def _resolve_image(self, reference: str) -> tuple[str, str]:
        if not reference:
            raise _error(400, "image is required")
        ref = normalize_reference(reference)
        if ref in self.images:
            return ref, self.images[ref]
        bare = reference.removeprefix("sha256:")
        for known, iid in self.images.items():
            if len(bare) >= 12 and iid.removeprefix("sha256:").startswith(bare):
                return known, iid
        raise _error(404, f"No such image: {ref}")

    async def pull_image(self, reference: str) -> None:
        """A hollow pull always succeeds: the image is simply known from now on."""
        ref = normalize_reference(reference)
        if ref not in self.images:
            self._add_image(ref)
            self._emit("image", "pull", ref, {"name": ref})

    # -- containers ---------------------------------------------------------------------------

    def _find(self, ref: str) -> HollowContainer:
        c = self.containers.get(ref)
        if c is None and ref.lstrip("/") in self.names:
            c = self.containers.get(self.names[ref.lstrip("/")])
        if c is None and len(ref) >= 1:
            matches = [v for k, v in self.containers.items() if k.startswith(ref)]
            if len(matches) == 1:
                c = matches[0]
        if c is None:
            raise _error(404, f"No such container: {ref}")
        return c

    def _new_name(self) -> str:
        while True:
            name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}_{secrets.token_hex(2)}"
            if name not in self.names:
                return name

    def add_container(self, name: str, body: dict, *, running: bool = False, emit: bool = True) -> HollowContainer:
        """Creates a container from a create body (and starts it if `running`)."""
        name = name.lstrip("/")
        if name and name in self.names:
            raise _error(409, f'Conflict. The container name "/{name}" is already in use by container '
                              f'"{self.names[name]}". You have to remove (or rename) that container to be '
                              "able to reuse that name.")
        ref, iid = self._resolve_image(str(body.get("Image") or ""))
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        config["Image"] = str(body.get("Image"))
        c = HollowContainer(id=secrets.token_hex(32), name=name or self._new_name(), image_ref=config["Image"],
                            image_id=iid, config=config, host_config=dict(body.get("HostConfig") or {}),
                            created=_now_text())
        self.containers[c.id] = c
        self.names[c.name] = c.id
        if emit:
            self._emit_container(c, "create")
        if running:
            self._start(c, emit)
        return c

    async def create_container(self, name: str, config_json: bytes) -> dict:
        try:
            body = json.loads(config_json or b"{}")
        except ValueError:
            raise _error(400, "invalid JSON in the create body") from None
        if not isinstance(body, dict):
            raise _error(400, "config cannot be empty in order to create a container")
        c = self.add_container(name, body)
        return {"Id": c.id, "Warnings": []}

    async def list_containers(self, all: bool, filters_json: bytes = b"") -> bytes:
        filters = json.loads(filters_json) if filters_json.strip() else {}
        out = [c.summary(self.name) for c in self.containers.values()
               if (all or c.status in ("running", "paused")) and _matches(c, filters)]
        out.sort(key=lambda s: s["Created"], reverse=True)
        return orjson.dumps(out)

    async def container_ids(self) -> list[str]:
        # the listing's order without making its entries (`created` is RFC 3339: its first 19
        # characters, the second, sort as text)
        return [c.id for c in sorted(self.containers.values(), key=_created_second, reverse=True)]

    async def inspect_container(self, container_id: str) -> bytes:
        return self._find(container_id).inspect_bytes()

    async def inspect_containers(self, container_ids: list[str]) -> list[bytes | None]:
        # in memory: one loop, where a task per container cost a sync more than its documents
        docs: list[bytes | None] = []
        for container_id in container_ids:
            try:
                docs.append(self._find(container_id).inspect_bytes())
            except EngineError as exc:
                if exc.status != 404:
                    raise
                docs.append(None)
        return docs

    def _start(self, c: HollowContainer, emit: bool = True) -> None:
        c.status, c.pid, c.exit_code = "running", next(self._pids), 0
        c.started_at, c.finished_at = _now_text(), _ZERO_TIME
        if emit:
            self._emit_container(c, "start")

    def _stop(self, c: HollowContainer, code: int, action: str) -> None:
        c.status, c.exit_code, c.finished_at = "exited", code, _now_text()
        if action == "kill":
            self._emit_container(c, "kill", signal="KILL")
        self._emit_container(c, "die", exitCode=str(code))
        if action == "stop":
            self._emit_container(c, "stop")

    async def container_action(self, container_id: str, action: str, params: dict[str, str]) -> int:
        c = self._find(container_id)
        running = c.status in ("running", "paused")
        if action == "start":
            if c.status == "running":
                return 304
            if c.status == "paused":
                raise _error(409, "cannot start a paused container, try unpause instead")
            self._start(c)
        elif action in ("stop", "kill"):
            if not running:
                if action == "kill":
                    raise _error(409, f"Container {c.id} is not running")
                return 304
            self._stop(c, 137 if action == "kill" else 0, action)
        elif action == "restart":
            if running:
                self._stop(c, 0, "stop")
            self._start(c)
            self._emit_container(c, "restart")
        elif action == "pause":
            if c.status != "running":
                raise _error(409, f"Container {c.id} is not running")
            c.status = "paused"
            self._emit_container(c, "pause")
        elif action == "unpause":
            if c.status != "paused":
                raise _error(409, f"Container {c.id} is not paused")
            c.status = "running"
            self._emit_container(c, "unpause")
        elif action == "remove":
            if running and params.get("force") not in ("1", "true", "True"):
                raise _error(409, f"You cannot remove a running container {c.id}. Stop the container before "
                                  "attempting removal or force remove")
            if running:
                self._stop(c, 137, "kill")
            del self.containers[c.id]
            self.names.pop(c.name, None)
            self._emit_container(c, "destroy")
        else:
            raise _error(400, f"unknown container action {action!r}")
        return 204

    # -- other Engine API calls ---------------------------------------------------------------

    async def request(self, method: str, path: str, query: str = "", body: bytes = b"",
                      headers: Iterable[tuple[str, str]] = ()) -> EngineResponse:
        """The few relayed calls a hollow engine answers; any other is 501."""
        method = method.upper()
        target = engine_path(path).split("/", 2)[2]      # "/v1.41/x/y" -> "x/y"
        routes = {
            ("GET", "_ping"): lambda: (200, b"OK"),
            ("HEAD", "_ping"): lambda: (200, b""),
            ("GET", "info"): lambda: (200, json.dumps(self.info_doc()).encode()),
            ("GET", "version"): lambda: (200, json.dumps(self.version_doc()).encode()),
            ("GET", "images/json"): lambda: (200, json.dumps(self.images_doc()).encode()),
        }
        answer = routes.get((method, target))
        if answer is not None:
            status, data = answer()
            return EngineResponse(status, list(_JSON), data)
        if method == "GET" and target.startswith("containers/") and target.endswith("/json"):
            try:
                return EngineResponse(200, list(_JSON), await self.inspect_container(target[11:-5]))
            except EngineError as exc:
                return EngineResponse(exc.status, list(_JSON), json.dumps({"message": exc.message}).encode())
        message = f"{method} /{target} is not implemented by a hollow engine"
        return EngineResponse(501, list(_JSON), json.dumps({"message": message}).encode())

    async def open(self, method: str, path: str, query: str = "", body: bytes = b"",
                   headers: Iterable[tuple[str, str]] = ()) -> EngineConnection:
        raise _error(501, f"{method.upper()} {path}: streamed calls are not implemented by a hollow engine")

    # -- events -------------------------------------------------------------------------------

    def _emit_container(self, c: HollowContainer, action: str, **attrs: str) -> None:
        labels = {k: str(v) for k, v in (c.config.get("Labels") or {}).items()}
        self._emit("container", action, c.id, {**labels, "image": c.image_ref, "name": c.name, **attrs},
                   status=action, from_=c.image_ref)

    def _emit(self, kind: str, action: str, actor: str, attributes: dict, status: str = "",
              from_: str = "") -> None:
        ns = time.time_ns()
        event = {"Type": kind, "Action": action, "Actor": {"ID": actor, "Attributes": attributes},
                 "scope": "local", "time": ns // 10**9, "timeNano": ns}
        if status:
            event.update(status=status, id=actor, **({"from": from_} if from_ else {}))
        line = orjson.dumps(event)
        self._recent.append((ns, line))
        for q in list(self._subscribers):
            q.put_nowait(line)

    async def events(self, since_unix_nano: int = 0) -> AsyncIterator[bytes]:
        """Recent events from `since` (when given), then live ones, until cancelled."""
        q: asyncio.Queue = asyncio.Queue()
        backlog = [line for ns, line in self._recent if since_unix_nano > 0 and ns >= since_unix_nano]
        self._subscribers.add(q)
        try:
            for line in backlog:
                yield line
            while True:
                yield await q.get()
        finally:
            self._subscribers.discard(q)


# -- a fleet of hollow agents in one process ----------------------------------------------------


@dataclass(frozen=True)
class FleetConfig:
    count: int
    discovery_url: str
    discovery_addr: str | None = None
    host: str = "127.0.0.1"
    name_prefix: str = "hollow"
    first_index: int = 0
    cpus: int = 4
    memory: int = 8 * GiB
    labels: dict[str, str] = field(default_factory=dict)
    containers: int = 0            # containers each node starts with (running, busybox)
    heartbeat: float = 2.0
    ttl: float = 6.0


@dataclass
class HollowAgent:
    """One hollow node: its engine, gRPC server and registrar."""

    name: str
    addr: str
    engine: HollowEngine
    server: grpc.aio.Server
    registrar: object
    source: NodeInfoSource


def _preload(engine: HollowEngine, count: int) -> None:
    for i in range(count):
        labels = {"app": f"app{i % 10}", "tier": "bench"}
        body = {"Image": "busybox", "Cmd": ["sleep", "3600"], "Labels": labels,
                "HostConfig": {"Memory": (64 << 20) if i % 2 == 0 else 0,
                               "NanoCpus": 100_000_000 if i % 3 == 0 else 0}}
        engine.add_container(f"{engine.name}-c{i}", body, running=True, emit=False)


async def start_agent(cfg: FleetConfig, index: int) -> HollowAgent:
    """Builds one hollow node and starts its gRPC server (not yet registered)."""
    from swarmd.common.membership import open_registrar

    name = f"{cfg.name_prefix}{index:04d}"
    engine = HollowEngine(name, cpus=cfg.cpus, memory=cfg.memory,
                          labels={**cfg.labels, "hollow": "true", "hollow.index": str(index)})
    _preload(engine, cfg.containers)
    server = grpc.aio.server(options=SERVER_OPTIONS)
    port = server.add_insecure_port(f"{cfg.host}:0")
    addr = f"{cfg.host}:{port}"
    settings = NodeSettings(node_id=f"{cfg.name_prefix}-{index:06d}-{secrets.token_hex(4)}", addr=addr,
                            host_ip=cfg.host, name=name)
    source = NodeInfoSource(engine, settings)
    agent_service = AgentService(engine, source)
    # the preloaded documents are made and packed now, while the fleet is prepared: a node's first
    # sync sends them all, and on real hosts each engine and agent does this with its own CPU,
    # not the manager's
    agent_service.packs.packed([(c.id, c.inspect_bytes()) for c in engine.containers.values()])
    agent_pb2_grpc.add_AgentServicer_to_server(agent_service, server)
    health_servicer = health.aio.HealthServicer()
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await server.start()
    registrar = open_registrar(cfg.discovery_url, cfg.discovery_addr)
    return HollowAgent(name, addr, engine, server, registrar, source)


async def run_fleet(cfg: FleetConfig, stop: asyncio.Event, started: asyncio.Event | None = None,
                    agents_out: list[HollowAgent] | None = None, go: asyncio.Event | None = None) -> int:
    """Serves `cfg.count` hollow nodes and keeps them registered until `stop` is set; with `go`,
    the nodes serve (`started` is set) and register once `go` is set.

    Returns 1 when a registration failed for good (refused token), else 0 after deregistering."""
    agents = agents_out if agents_out is not None else []
    code = 0
    try:
        for i in range(cfg.count):
            agents.append(await start_agent(cfg, cfg.first_index + i))
        log.info("hollow nodes serving", count=len(agents), first=agents[0].name if agents else "",
                 last=agents[-1].name if agents else "")
        # the nodes are built, and live as long as the process: the collector stops walking them.
        # Unfrozen, a full collection of 500 nodes' objects cost each process ~0.24 s of CPU a
        # few seconds into every convergence. A node's preloaded container removed later stays
        # in memory if it sits in a reference cycle: a hollow fleet lives for one bench run.
        gc.freeze()
        if started is not None:
            started.set()
        if go is not None:
            await _first_of(go.wait(), stop.wait())
            if stop.is_set():
                return 0
        gate = asyncio.Semaphore(REGISTERING_AT_ONCE)
        for a in agents:
            if isinstance(a.registrar, LeaseRegistrar):
                a.registrar.gate = gate
        async with asyncio.TaskGroup() as tg:
            regs = [tg.create_task(a.registrar.keep_alive(a.source.for_registration, cfg.heartbeat, cfg.ttl),
                                   name=f"register-{a.name}") for a in agents]
            await stop.wait()
            for t in regs:
                t.cancel()
    except* Exception as group:   # a registration refused (bad token) or broken: the fleet stops
        log.error("hollow registration failed", error=f"{type(group.exceptions[0]).__name__}: {group.exceptions[0]}")
        code = 1
    finally:
        await _stop_agents(agents, deregister=code == 0)
    return code


async def _first_of(*waits) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


async def _stop_agents(agents: list[HollowAgent], deregister: bool) -> None:
    if deregister:
        await asyncio.gather(*(a.registrar.deregister() for a in agents), return_exceptions=True)
    await asyncio.gather(*(a.server.stop(0.5) for a in agents), return_exceptions=True)
    await asyncio.gather(*(a.registrar.close() for a in agents), return_exceptions=True)
    log.info("hollow nodes stopped", count=len(agents))


# -- command line -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m swarmd.agent.hollow",
                                description="run N hollow agents (in-memory engines) in one process")
    config.add_flag(p, "--count", type=int, default=100, help="how many hollow nodes to run")
    config.add_flag(p, "--name-prefix", default="hollow", help="node names are PREFIX0000, PREFIX0001, …")
    config.add_flag(p, "--first-index", type=int, default=0, help="index of the first node (for several processes)")
    config.add_flag(p, "--host", default="127.0.0.1", help="address the nodes' gRPC servers listen on")
    config.add_flag(p, "--cpus", type=int, default=4, help="NCPU each hollow engine reports")
    config.add_flag(p, "--memory", type=int, default=8 * GiB, help="MemTotal (bytes) each hollow engine reports")
    config.add_flag(p, "--containers", type=int, default=0, help="running containers each node starts with")
    config.add_flag(p, "--label", action="append", default=None, help="node label KEY=VALUE (repeatable)")
    config.add_flag(p, "--heartbeat", type=config.parse_duration, default=config.parse_duration("2s"),
                    help="period between registration heartbeats")
    config.add_flag(p, "--ttl", type=config.parse_duration, default=config.parse_duration("6s"),
                    help="how long a registration lives without a heartbeat")
    config.add_flag(p, "--discovery-addr", default=None, help="discovery daemon HOST:PORT (for token://)")
    config.add_flag(p, "--log-level", default="info", choices=["debug", "info", "warning", "error"])
    config.add_flag(p, "--ready-file", default=None,
                    help="once every node serves, write this file and wait for SIGUSR1 before registering "
                         "(a bench starts its clock at the registrations, not at the simulation's own start)")
    p.add_argument("discovery_url", help="token://TOKEN or etcd://HOST:PORT/PREFIX")
    return p.parse_args(argv)


async def _main(args: argparse.Namespace) -> int:
    try:
        labels = parse_labels(args.label)
    except ValueError as exc:
        log.error("invalid configuration", error=str(exc))
        return 2
    if args.ttl <= args.heartbeat:
        log.error("invalid configuration", error="--ttl must be longer than --heartbeat")
        return 2
    cfg = FleetConfig(count=args.count, discovery_url=args.discovery_url, discovery_addr=args.discovery_addr,
                      host=args.host, name_prefix=args.name_prefix, first_index=args.first_index, cpus=args.cpus,
                      memory=args.memory, labels=labels, containers=args.containers, heartbeat=args.heartbeat,
                      ttl=args.ttl)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = go = None
    if args.ready_file:
        started, go = asyncio.Event(), asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, go.set)
        ready = asyncio.ensure_future(_write_when_set(started, args.ready_file))
    try:
        return await run_fleet(cfg, stop, started=started, go=go)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, *((signal.SIGUSR1,) if go is not None else ())):
            loop.remove_signal_handler(sig)
        if go is not None:
            ready.cancel()


async def _write_when_set(event: asyncio.Event, path: str) -> None:
    await event.wait()
    with open(path, "w") as f:
        f.write(f"{os.getpid()}\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.setup(level=args.log_level)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
