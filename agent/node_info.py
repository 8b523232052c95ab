"""What the agent reports about its node: identity, flags and the engine's live facts."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from swarmd.agent.engine import EngineError
from swarmd.agent.local_engine import LocalEngine
from swarmd.proto.swarm.v1 import types_pb2
from swarmd.common import logs

log = logs.get("agent.node")


@dataclass(frozen=True)
class NodeSettings:
    """The node's fixed facts from the state dir and flags; `name` empty means the engine's hostname."""

    node_id: str
    addr: str
    host_ip: str
    name: str = ""
    labels: dict[str, str] = field(default_factory=dict)


def parse_labels(values: list[str] | None) -> dict[str, str]:
    """`["k=v", ...]` (from --label) -> dict; a value may itself contain '='."""
    out: dict[str, str] = {}
    for item in values or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"invalid label {item!r}: use KEY=VALUE")
        out[key] = value
    return out


def engine_labels(info: dict) -> dict[str, str]:
    """The engine's own labels (`Labels` of GET /info: `k=v` strings)."""
    out: dict[str, str] = {}
    for item in info.get("Labels") or ():
        key, _, value = str(item).partition("=")
        if key:
            out[key] = value
    return out


def build_node_info(settings: NodeSettings, info: dict, version: dict) -> types_pb2.NodeInfo:
    """NodeInfo from the engine's `/info` and `/version` documents; --label flags win over engine labels."""
    labels = engine_labels(info)
    labels.update(settings.labels)
    return types_pb2.NodeInfo(
        id=settings.node_id,
        name=settings.name or str(info.get("Name") or ""),
        addr=settings.addr,
        cpus=int(info.get("NCPU") or 0),
        memory_bytes=int(info.get("MemTotal") or 0),
        labels=labels,
        engine_version=str(version.get("Version") or info.get("ServerVersion") or ""),
        api_version=str(version.get("ApiVersion") or ""),
        os=str(info.get("OSType") or version.get("Os") or ""),
        kernel_version=str(info.get("KernelVersion") or version.get("KernelVersion") or ""),
        operating_system=str(info.get("OperatingSystem") or ""),
        architecture=str(info.get("Architecture") or version.get("Arch") or ""),
        engine_id=str(info.get("ID") or ""),
        host_ip=settings.host_ip,
    )


@dataclass
class EngineFacts:
    """One reading of the engine: the raw documents and the NodeInfo made from them."""

    node: types_pb2.NodeInfo
    info_json: bytes
    version_json: bytes


class NodeInfoSource:
    """Reads the engine each time it is asked; registration falls back to the last good reading."""

    def __init__(self, engine: LocalEngine, settings: NodeSettings):
        self.engine = engine
        self.settings = settings
        self._last: types_pb2.NodeInfo | None = None

    async def read(self) -> EngineFacts:
        info_json, version_json = await asyncio.gather(self.engine.info(), self.engine.version())
        node = build_node_info(self.settings, json.loads(info_json), json.loads(version_json))
        self._last = node
        return EngineFacts(node, info_json, version_json)

    async def for_registration(self) -> types_pb2.NodeInfo:
        """The NodeInfo to register with: fresh when the engine answers, else the last one read."""
        try:
            return (await self.read()).node
        except EngineError as exc:
            if self._last is None:
                raise
            log.warning("engine unreadable, registering the last known node info", error=exc.message)
            return self._last
