"""What the manager remembers of one container, derived from the engine's inspect document."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from swarmd.manager.container_status import parse_time, status_text
from swarmd.manager.scheduler.container_spec import reserved_cpus
from swarmd.manager.scheduler.snapshot import ContainerSnapshot, PortBinding

# classic swarm's own ID for a container (cluster/config.go `SwarmID`): set by the manager at
# create, kept when the container is rescheduled to another node, where its engine ID changes
SWARM_ID_LABEL = "com.docker.swarm.id"
SWARM_ID_LENGTH = 64
SWARM_SHORT_ID_LENGTH = 12


def _command(doc: dict) -> str:
    path = doc.get("Path") or ""
    args = [f"'{a}'" if " " in a else a for a in (doc.get("Args") or [])]
    return f"{path} {' '.join(args)}" if args else path


def _published_ports(doc: dict, host_ip: str) -> list[dict]:
    out = []
    ports = ((doc.get("NetworkSettings") or {}).get("Ports")) or {}
    for key, bindings in sorted(ports.items()):
        port, _, proto = key.partition("/")
        if not bindings:
            out.append({"PrivatePort": int(port), "Type": proto or "tcp"})
            continue
        for b in bindings:
            ip = b.get("HostIp") or "0.0.0.0"
            if ip in ("0.0.0.0", "::") and host_ip:
                ip = host_ip   # as classic swarm: say where the port really is
            out.append({"IP": ip, "PrivatePort": int(port), "PublicPort": int(b.get("HostPort") or 0),
                        "Type": proto or "tcp"})
    return out


def requested_bindings(doc: dict) -> tuple[PortBinding, ...]:
    """Host ports the container holds: its bindings, or every exposed port on the host network."""
    out = []
    hc = doc.get("HostConfig") or {}
    if hc.get("NetworkMode") == "host":
        for key in (doc.get("Config") or {}).get("ExposedPorts") or doc.get("ExposedPorts") or {}:
            port, _, proto = key.partition("/")
            if port.isdigit():
                out.append(PortBinding("0.0.0.0", int(port), proto or "tcp"))
        return tuple(out)
    for key, bindings in (hc.get("PortBindings") or {}).items():
        _, _, proto = key.partition("/")
        for b in bindings or []:
            hp = str(b.get("HostPort") or "")
            if hp.isdigit() and int(hp) > 0:
                out.append(PortBinding(b.get("HostIp") or "0.0.0.0", int(hp), proto or "tcp"))
    return tuple(out)


@dataclass
class ContainerRecord:
    """One container's inspect document and what is derived from it, computed once.

    A record is never changed in place (a refresh stores a new one), so the derived values
    (name, snapshot, the static part of the `docker ps` entry and its JSON) are cached.
    """

    node_id: str
    node_name: str
    doc: dict                     # the engine's inspect document
    host_ip: str = ""
    _snapshot: ContainerSnapshot | None = field(default=None, repr=False)
    _name: str | None = field(default=None, repr=False)
    _static: dict | None = field(default=None, repr=False)
    _static_json: bytes | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.doc["Id"]

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = (self.doc.get("Name") or "").lstrip("/")
        return self._name

    @property
    def state(self) -> dict:
        return self.doc.get("State") or {}

    @property
    def tty(self) -> bool:
        return bool((self.doc.get("Config") or {}).get("Tty"))

    @property
    def labels(self) -> dict:
        return (self.doc.get("Config") or {}).get("Labels") or {}

    @property
    def swarm_id(self) -> str:
        return str(self.labels.get(SWARM_ID_LABEL) or "")

    @property
    def created(self) -> datetime | None:
        return parse_time(self.doc.get("Created"))

    def snapshot(self) -> ContainerSnapshot:
        if self._snapshot is None:
            cfg = self.doc.get("Config") or {}
            hc = self.doc.get("HostConfig") or {}
            cpus = reserved_cpus(cfg, hc)
            self._snapshot = ContainerSnapshot(
                id=self.id, name=self.name, image=cfg.get("Image") or "", image_id=self.doc.get("Image") or "",
                state=self.state.get("Status") or "", labels=dict(cfg.get("Labels") or {}),
                ports=requested_bindings(self.doc), cpus=cpus, memory=int(hc.get("Memory") or 0),
            )
        return self._snapshot

    def _static_summary(self) -> dict:
        """The parts of the `docker ps` entry that only change with the document (all but Status/State)."""
        if self._static is None:
            cfg = self.doc.get("Config") or {}
            hc = self.doc.get("HostConfig") or {}
            created = self.created
            ns = self.doc.get("NetworkSettings") or {}
            self._static = {
                "Id": self.id,
                "Names": [f"/{self.node_name}/{self.name}"],
                "Image": cfg.get("Image") or "",
                "ImageID": self.doc.get("Image") or "",
                "Command": _command(self.doc),
                "Created": int(created.timestamp()) if created else 0,
                "Ports": _published_ports(self.doc, self.host_ip),
                "Labels": cfg.get("Labels") or {},
                "HostConfig": {"NetworkMode": hc.get("NetworkMode") or "default"},
                "NetworkSettings": {"Networks": ns.get("Networks") or {}},
                "Mounts": self.doc.get("Mounts") or [],
            }
        return self._static

    def summary(self, now: datetime | None = None) -> dict:
        """The `GET /containers/json` entry, names as `/node/name`, Status computed at `now`."""
        return {**self._static_summary(), "State": self.state.get("Status") or "",
                "Status": status_text(self.state, now)}

    def summary_json(self, summary: dict) -> bytes:
        """`summary` (from `summary()`, State and Status possibly overridden) as JSON bytes; the
        static part is encoded once per record."""
        if self._static_json is None:
            self._static_json = json.dumps(self._static_summary(), separators=(",", ":")).encode()[:-1]
        return b"".join((self._static_json, b',"State":', json.dumps(summary["State"]).encode(),
                         b',"Status":', json.dumps(summary["Status"]).encode(), b"}"))
