"""Cluster intent on the manager side: what operators decided about nodes, kept durably.

A node's availability (active, pause, drain) and labels, and whether it was removed, are intent:
`docker node update` and `docker node rm` on the primary write them, and every manager watches
them into its cluster view, so they survive agent, manager and primary restarts.

A container with a reschedule policy is intent too (key `containers/<swarm id>`): its name, node
and create configuration, written by the primary when it is created, moved or removed, so that a
manager started while the container's node is down still lists it (as `Host Down`) and the
primary reschedules it (`standing` says which records stand for containers the view lacks).

`NodeIntent`, `ContainerIntent` and their JSON forms are pure; `IntentStore` is the one
interface, with three implementations:

- `RecordsIntentStore` over etcd (`etcd://` managers reach etcd themselves; `token://` managers
  through the discovery daemon's intent calls): durable;
- `MemoryIntentStore` for `nodes://` and `file://`, which have no etcd: intent lives as long as
  the manager process and is lost when it restarts (documented in docs/operations.md).
"""
from __future__ import annotations

import abc
import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from swarmd.common import logs
from swarmd.manager.container_records import SWARM_ID_LABEL
from swarmd.manager.scheduler import container_spec
from swarmd.common.membership.watch import Backoff

log = logs.get("manager.intent")

AVAILABILITIES = ("active", "pause", "drain")
NODE_KEY_PREFIX = "nodes/"
CONTAINER_KEY_PREFIX = "containers/"
ON_NODE_FAILURE = "on-node-failure"

# Config fields a create request takes back as they are
_CONFIG_FIELDS = ("User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts", "Tty", "OpenStdin",
                  "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes", "WorkingDir",
                  "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal",
                  "StopTimeout", "Shell", "Domainname")
_DEFAULT_NETWORKS = {"bridge", "host", "none", "default"}


@dataclass(frozen=True)
class NodeIntent:
    """What was decided about one node. `version` counts its writes (Version.Index of the API)."""

    availability: str = "active"
    labels: dict[str, str] = field(default_factory=dict)
    removed: bool = False
    version: int = 1

    def to_json(self) -> bytes:
        return json.dumps({"availability": self.availability, "labels": self.labels,
                           "removed": self.removed, "version": self.version}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> "NodeIntent":
        """A record as stored; an unreadable one (another version's) reads as the default intent."""
        try:
            doc = json.loads(raw)
            availability = doc.get("availability") or "active"
            labels = {str(k): str(v) for k, v in (doc.get("labels") or {}).items()}
            return cls(availability if availability in AVAILABILITIES else "active", labels,
                       bool(doc.get("removed")), int(doc.get("version") or 1))
        except (ValueError, AttributeError, TypeError):
            log.warning("unreadable node intent record ignored")
            return cls()

    def updated(self, **changes) -> "NodeIntent":
        return replace(self, version=self.version + 1, **changes)


def node_key(node_id: str) -> str:
    return NODE_KEY_PREFIX + node_id


def reschedules_on_node_failure(doc: dict) -> bool:
    """Whether the container (an inspect document) carries `reschedule:on-node-failure`."""
    return ON_NODE_FAILURE in container_spec.reschedule_policies(doc.get("Config") or {})


def create_body(doc: dict) -> dict:
    """A `POST /containers/create` body recreating the container from its inspect document."""
    cfg = doc.get("Config") or {}
    body = {k: cfg[k] for k in _CONFIG_FIELDS if k in cfg and cfg[k] is not None}
    hostname = cfg.get("Hostname") or ""
    if hostname and not doc.get("Id", "").startswith(hostname):
        body["Hostname"] = hostname           # set by the user, not the engine's default (the ID)
    host_config = dict(doc.get("HostConfig") or {})
    body["HostConfig"] = host_config
    networks = ((doc.get("NetworkSettings") or {}).get("Networks")) or {}
    endpoints = {}
    for name, ep in networks.items():
        if name in _DEFAULT_NETWORKS or name == host_config.get("NetworkMode"):
            continue
        ep = ep or {}
        conf = {}
        aliases = [a for a in (ep.get("Aliases") or []) if not doc.get("Id", "").startswith(a)]
        if aliases:
            conf["Aliases"] = aliases
        if ep.get("IPAMConfig"):
            conf["IPAMConfig"] = ep["IPAMConfig"]
        if ep.get("Links"):
            conf["Links"] = ep["Links"]
        endpoints[name] = conf
    if endpoints:
        body["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    return body


@dataclass(frozen=True)
class ContainerIntent:
    """A container with a reschedule policy as the primary last saw it: enough to list it and to
    create it again (`body` is `create_body` of its inspect document)."""

    swarm_id: str
    id: str                    # the engine's container ID of the copy last seen
    name: str
    node_id: str
    node_name: str
    node_addr: str
    body: dict
    running: bool = False
    created: str = ""          # the engine's `Created` of that copy

    def to_json(self) -> bytes:
        return json.dumps({"id": self.id, "name": self.name, "node": {"id": self.node_id, "name": self.node_name,
                           "addr": self.node_addr}, "body": self.body, "running": self.running,
                           "created": self.created}, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, swarm_id: str, raw: bytes) -> "ContainerIntent | None":
        """A record as stored; None for an unreadable one (another version's), which stands for nothing."""
        try:
            doc = json.loads(raw)
            node = doc["node"]
            body = doc["body"]
            if not isinstance(body, dict) or not doc["id"] or not doc["name"] or not node["id"]:
                raise ValueError("incomplete")
            return cls(swarm_id, str(doc["id"]), str(doc["name"]), str(node["id"]), str(node.get("name") or ""),
                       str(node.get("addr") or ""), body, bool(doc.get("running")), str(doc.get("created") or ""))
        except (ValueError, KeyError, AttributeError, TypeError):
            log.warning("unreadable container intent record ignored", swarm_id=swarm_id)
            return None

    @classmethod
    def of(cls, doc: dict, node_id: str, node_name: str, node_addr: str) -> "ContainerIntent | None":
        """The record of a container (inspect document) on a node; None without the policy or a swarm ID."""
        swarm_id = str(((doc.get("Config") or {}).get("Labels") or {}).get(SWARM_ID_LABEL) or "")
        name = (doc.get("Name") or "").lstrip("/")
        if not swarm_id or not name or not reschedules_on_node_failure(doc):
            return None
        state = doc.get("State") or {}
        running = bool(state.get("Running") or state.get("Restarting") or state.get("Paused"))
        return cls(swarm_id, doc["Id"], name, node_id, node_name, node_addr, create_body(doc), running,
                   str(doc.get("Created") or ""))

    def document(self) -> dict:
        """An inspect document standing for the container while its node cannot be asked: lists it,
        and `create_body` of it gives `body` back."""
        body = self.body
        config = {k: body[k] for k in _CONFIG_FIELDS if k in body}
        if body.get("Hostname"):
            config["Hostname"] = body["Hostname"]
        endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
        return {"Id": self.id, "Name": "/" + self.name, "Created": self.created, "Image": "",
                "Config": config, "HostConfig": dict(body.get("HostConfig") or {}),
                "State": {"Status": "running" if self.running else "exited", "Running": self.running},
                "NetworkSettings": {"Networks": {k: dict(v or {}) for k, v in endpoints.items()}},
                "Mounts": []}


def container_key(swarm_id: str) -> str:
    return CONTAINER_KEY_PREFIX + swarm_id


def standing(records, readable_nodes: set[str], live_swarm_ids: set[str],
               live_names: set[str]) -> list[ContainerIntent]:
    """The records that stand for containers the view lacks: their node is not readable (neither
    listed since this manager started nor about to be: down, unreachable, or never seen alive), and
    no container seen carries their swarm ID or holds their name (a rescheduled copy, or another
    container that took the name)."""
    return [r for r in records if r.node_id not in readable_nodes and r.swarm_id not in live_swarm_ids
            and r.name not in live_names]


def records_to_write(current: dict[str, ContainerIntent], seen: dict[str, ContainerIntent],
                     listed_healthy: set[str], removed_nodes: frozenset[str] = frozenset(),
                     ) -> tuple[list[ContainerIntent], list[str]]:
    """(records to put, swarm IDs to delete) making the store match the containers seen on nodes:
    `seen` holds, per swarm ID, the record of its copy on a healthy listed node. A record whose
    node is healthy and listed and holds no copy anywhere is of a removed container, as is one of
    a node removed by `docker node rm`; one whose node is down stays as it is (it stands for the
    container)."""
    puts = [rec for sid, rec in seen.items() if current.get(sid) != rec]
    deletes = [sid for sid, rec in current.items()
               if sid not in seen and (rec.node_id in listed_healthy or rec.node_id in removed_nodes)]
    return puts, deletes


# (kind, key, value): "put" | "delete" | "synced" | "reset" (a new listing follows)
IntentChange = tuple[str, str, bytes]


class IntentStore(abc.ABC):
    """Where intent is kept: written by the primary, watched by every manager."""

    durable = True

    @abc.abstractmethod
    async def put(self, key: str, value: bytes) -> None: ...

    @abc.abstractmethod
    async def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def watch(self) -> AsyncIterator[IntentChange]:
        """Runs until cancelled: every record as "put", "synced", then changes; after a lost
        connection "reset", every record again and "synced" (the consumer replaces what it knew)."""

    async def evict(self, node_id: str) -> None:
        """Ends the node's live registration at once (a forced `docker node rm`)."""
        return None


class MemoryIntentStore(IntentStore):
    """Intent in this process only (`nodes://`, `file://`): not durable."""

    durable = False

    def __init__(self):
        self._records: dict[str, bytes] = {}
        self._watchers: set[asyncio.Queue] = set()

    async def put(self, key: str, value: bytes) -> None:
        self._records[key] = value
        for q in self._watchers:
            q.put_nowait(("put", key, value))

    async def delete(self, key: str) -> None:
        self._records.pop(key, None)
        for q in self._watchers:
            q.put_nowait(("delete", key, b""))

    async def watch(self) -> AsyncIterator[IntentChange]:
        q: asyncio.Queue = asyncio.Queue()
        self._watchers.add(q)
        try:
            for key, value in list(self._records.items()):
                yield "put", key, value
            yield "synced", "", b""
            while True:
                yield await q.get()
        finally:
            self._watchers.discard(q)


class RecordsIntentStore(IntentStore):
    """Intent records in etcd (`records`: IntentRecords or TokenIntents); `evict` ends a node's
    registration (an async callable taking the node ID)."""

    def __init__(self, records, evict=None, where: str = ""):
        self.records = records
        self._evict = evict
        self.where = where

    async def put(self, key: str, value: bytes) -> None:
        await self.records.put(key, value)

    async def delete(self, key: str) -> None:
        await self.records.delete(key)

    async def evict(self, node_id: str) -> None:
        if self._evict is not None:
            await self._evict(node_id)

    async def watch(self) -> AsyncIterator[IntentChange]:
        backoff = Backoff()
        while True:
            yield "reset", "", b""
            try:
                async for change in self.records.session():
                    if change[0] == "synced":
                        backoff.reset()
                    yield change
                raise ConnectionError("intent stream ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # etcd or the discovery daemon went away: list and watch anew
                delay = backoff.next()
                log.warning("intent watch lost; reconnecting", source=self.where, error=str(exc) or type(exc).__name__,
                            retry_in=f"{delay:.2f}s")
                await asyncio.sleep(delay)


def open_intent_store(membership) -> IntentStore:
    """The intent store that goes with a manager's membership (as `open_election` chooses)."""
    from swarmd.common.membership.etcd_client import EtcdMembership
    from swarmd.common.membership.intents import IntentRecords, TokenIntents
    from swarmd.common.membership.token_client import TokenMembership
    from swarmd.proto.swarm.v1 import discovery_pb2
    if isinstance(membership, TokenMembership):
        async def deregister(node_id: str) -> None:
            await membership.stub.Deregister(discovery_pb2.DeregisterRequest(token=membership.token, node_id=node_id),
                                             timeout=5.0)
        return RecordsIntentStore(TokenIntents(membership.stub, membership.token, membership.addr), deregister,
                                  where=f"discovery at {membership.addr}")
    if isinstance(membership, EtcdMembership):
        async def deregister_etcd(node_id: str) -> None:
            await membership.nodes.deregister(node_id)
        return RecordsIntentStore(IntentRecords(membership.store, membership.nodes.base), deregister_etcd,
                                  where=membership.where)
    return MemoryIntentStore()
