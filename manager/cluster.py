"""The manager's live view of the cluster.

Nodes come from the membership watch; for each node the view keeps one agent connection, the
engine's info, its containers (inspect documents) and images, kept current from the agent's event
stream rather than by polling. The scheduler reads immutable snapshots built from this view.

Container intent records (manager.intent) stand for containers the view cannot list yet: a
record whose node has not been listed since start is shown on that node (a node membership does
not list is kept as a down node) until the node is listed or a copy of the container is seen.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

from swarmd.manager.agents import AgentClient, ReadBack, engine_document, synced_documents
from swarmd.manager.container_records import (ID_LENGTH, SHORT_ID_LENGTH, SWARM_SHORT_ID_LENGTH, ContainerRecord,
                                              snapshot_of)
from swarmd.manager.gc_policy import keep_long_lived
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.intent import (CONTAINER_KEY_PREFIX, NODE_KEY_PREFIX, ContainerIntent, IntentStore, NodeIntent,
                                   container_key, records_to_write, standing)
from swarmd.manager.record_index import SharedKeyIndex
from swarmd.manager.scheduler.snapshot import ContainerSnapshot, ImageSnapshot, NodeSnapshot
from swarmd.proto.swarm.v1 import types_pb2
from swarmd.common import logs

log = logs.get("manager.cluster")

# container events after which the record is re-read; the rest change nothing we keep
SETTLE_WAIT = 5.0      # s a read of the view waits at most for the read-backs of changes answered
ANSWER_WAIT = 2.0      # s an event's read waits for the answers to changes in flight on its node
_NO_REFRESH = {"attach", "detach", "resize", "top", "exec_create", "exec_start", "exec_die",
               "exec_detach", "archive-path", "extract-to-dir", "copy", "export", "commit"}
_SYNC_BATCH = 64          # containers asked for in one InspectContainers call of a node's sync
_GONE_MAX = 4096           # removed container IDs remembered, so a late read does not bring one back


def _swarm_id_keys(rec: ContainerRecord) -> tuple[str, ...]:
    swarm_id = rec.swarm_id
    return tuple({swarm_id, swarm_id[:SWARM_SHORT_ID_LENGTH]}) if swarm_id else ()


def _engine_labels(info: dict) -> dict[str, str]:
    out = {}
    for item in info.get("Labels") or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def with_node(event: dict, view: "NodeView") -> dict:
    """The event as classic swarm sent it: `node` at the top, and `node.*` in Actor.Attributes
    (the only place the docker CLI's `--format` can see it)."""
    event = dict(event)
    ip = view.node.info.host_ip
    event["node"] = {"Name": view.name, "Id": view.id, "Addr": view.addr, "Ip": ip}
    actor = dict(event.get("Actor") or {})
    attrs = dict(actor.get("Attributes") or {})
    attrs.update({"node.name": view.name, "node.id": view.id, "node.addr": view.addr, "node.ip": ip})
    actor["Attributes"] = attrs
    event["Actor"] = actor
    return event


@dataclass
class NodeView:
    """One node as the manager sees it now."""

    node: types_pb2.Node
    client: AgentClient
    info: dict = field(default_factory=dict)
    containers: dict[str, ContainerRecord] = field(default_factory=dict)
    images: list[dict] = field(default_factory=list)
    connected: bool = False
    error: str = ""
    updated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    pending: list[ContainerSnapshot] = field(default_factory=list)   # placed, not yet seen
    intent: NodeIntent = field(default_factory=NodeIntent)             # availability, node labels
    task: asyncio.Task | None = None
    listed: bool = False        # its containers were read from its engine since this manager started
    generation: int = 0         # counts changes(): what is derived from the node is current while it holds
    # called on every change of what its snapshot shows (set by the ClusterView holding it)
    on_change: Callable[[NodeView], None] | None = field(default=None, repr=False, compare=False)
    changes_answering: int = 0  # changes asked of its agent through this manager, not answered yet
    _answered: asyncio.Event | None = field(default=None, repr=False, compare=False)
    _snapshot: NodeSnapshot | None = None
    # (base snapshot, pending, base + pending): one snapshot object while neither changes, so the
    # scheduler's per-snapshot index and remembered verdicts stay valid across decisions
    _with_pending: tuple | None = field(default=None, repr=False, compare=False)
    # ((engine facts, images, membership record, intent), the snapshot fields made of them)
    _facts_made: tuple | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # read on every pass over the nodes: a plain attribute, not two protobuf reads (a view is
        # keyed by its node's ID, which its node document never changes)
        self.id: str = self.node.info.id

    @property
    def name(self) -> str:
        return self.node.info.name

    @property
    def addr(self) -> str:
        return self.node.info.addr

    @property
    def healthy(self) -> bool:
        return self.connected and self.node.state == types_pb2.NODE_STATE_HEALTHY

    @property
    def status(self) -> str:
        if self.healthy:
            return "Healthy"
        if self.node.state == types_pb2.NODE_STATE_PENDING and not self.error:
            return "Pending"
        return "Unhealthy"

    @property
    def availability(self) -> str:
        return self.intent.availability

    def labels(self) -> dict[str, str]:
        """Engine labels, the agent's `--label`s, then node labels (`docker node update`), each
        overriding the one before, and the engine facts classic swarm added."""
        labels = _engine_labels(self.info)
        labels.update(self.node.info.labels)
        labels.update(self.intent.labels)
        if self.info:
            labels.setdefault("storagedriver", self.info.get("Driver", ""))
            labels.setdefault("kernelversion", self.info.get("KernelVersion", ""))
            labels.setdefault("operatingsystem", self.info.get("OperatingSystem", ""))
            labels.setdefault("ostype", self.info.get("OSType", ""))
            labels.setdefault("architecture", self.info.get("Architecture", ""))
        return labels

    @contextlib.contextmanager
    def change_asked(self) -> Iterator[None]:
        """Around a change asked of the agent, until its answer is handled (its read-back stored
        or on its way: ClusterView.store_read_back_later)."""
        self.changes_answering += 1
        try:
            yield
        finally:
            self.changes_answering -= 1
            if not self.changes_answering and self._answered is not None:
                self._answered.set()

    async def changes_answered(self, timeout: float) -> None:
        """Returns once no change asked of the agent awaits its answer, or after `timeout` s."""
        if not self.changes_answering:
            return
        if self._answered is None or self._answered.is_set():
            self._answered = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._answered.wait(), timeout)

    def changed(self) -> None:
        self._snapshot = None
        self.generation += 1
        self.updated_at = datetime.now(timezone.utc)
        if self.on_change is not None:
            self.on_change(self)

    def hold(self, placeholder: ContainerSnapshot) -> None:
        """Counts a container being created here (its place and resources) until it is seen."""
        self.pending.append(placeholder)
        if self.on_change is not None:
            self.on_change(self)

    def release(self, placeholder: ContainerSnapshot) -> None:
        """Stops counting `placeholder` (its container is seen, or its create failed)."""
        if placeholder in self.pending:
            self.pending.remove(placeholder)
        self.changed()

    def node_document(self) -> dict:
        """The `Node` object added to container inspect documents (classic swarm's shape)."""
        facts = self._facts()
        return {"ID": facts["id"], "IP": self.node.info.host_ip, "Addr": facts["addr"], "Name": facts["name"],
                "Cpus": int(facts["total_cpus"]), "Memory": facts["total_memory"], "Labels": dict(facts["labels"])}

    def _facts(self) -> dict:
        """The snapshot's fields that do not change with the node's containers or its health,
        made again only when the engine facts, images, membership record or intent were replaced
        (none of them is changed in place): on a change of its containers, which every create
        and start makes, a node's new snapshot copies them."""
        key = (self.info, self.images, self.node, self.intent)
        made = self._facts_made
        if made is None or any(a is not b for a, b in zip(made[0], key)):
            i = self.node.info
            facts = {
                "id": i.id, "name": i.name, "addr": i.addr, "labels": self.labels(),
                "total_cpus": float(self.info.get("NCPU") or i.cpus),
                "total_memory": int(self.info.get("MemTotal") or i.memory_bytes),
                "images": tuple(ImageSnapshot(id=img.get("Id", ""), repo_tags=tuple(img.get("RepoTags") or ()))
                                for img in self.images),
                "engine_version": self.info.get("ServerVersion") or i.engine_version,
                "os": self.info.get("OSType") or i.os or "linux",
                "kernel_version": self.info.get("KernelVersion") or i.kernel_version,
                "operating_system": self.info.get("OperatingSystem") or i.operating_system,
                "architecture": self.info.get("Architecture") or i.architecture,
            }
            made = self._facts_made = (key, facts)
        return made[1]

    def snapshot(self) -> NodeSnapshot:
        if self._snapshot is None:
            self._snapshot = NodeSnapshot.of(
                self._facts(), healthy=self.healthy, availability=self.intent.availability,
                containers=tuple(map(snapshot_of, self.containers.values())))
        if self.pending:
            snap, pending = self._snapshot, tuple(self.pending)
            cached = self._with_pending
            if cached is None or cached[0] is not snap or cached[1] != pending:
                cached = self._with_pending = (
                    snap, pending, NodeSnapshot.of(snap.__dict__, containers=snap.containers + pending))
            return cached[2]
        self._with_pending = None
        return self._snapshot


class NodeViews(dict):
    """The ClusterView's node ID -> NodeView: tells `changed(view)` of each change to a view it
    holds, `changed(None, node_id)` when a view joins or leaves it, and `changed(None)` when it
    is emptied."""

    def __init__(self, changed: Callable[..., None]):
        super().__init__()
        self._changed = changed

    def __setitem__(self, node_id: str, view: NodeView) -> None:
        view.on_change = self._changed
        super().__setitem__(node_id, view)
        self._changed(None, node_id)

    def __delitem__(self, node_id: str) -> None:
        super().__delitem__(node_id)
        self._changed(None, node_id)

    def pop(self, node_id: str, *default):
        out = super().pop(node_id, *default)
        self._changed(None, node_id)
        return out

    def clear(self) -> None:
        super().clear()
        self._changed(None)


def node_container_intents(view: NodeView) -> dict[str, tuple[datetime, ContainerIntent]]:
    """Swarm ID -> (created, intent record) of the node's containers that have a reschedule
    policy; of two copies of one container on the node, the newer."""
    out: dict[str, tuple[datetime, ContainerIntent]] = {}
    for rec in view.containers.values():
        if not (rec.swarm_id and rec.reschedules):
            continue                   # ContainerIntent.of: no record without both (and no decode)
        intent = ContainerIntent.of(rec.doc, view.id, view.name, view.addr)
        created = rec.created or datetime.min.replace(tzinfo=timezone.utc)
        if intent is not None and (rec.swarm_id not in out or out[rec.swarm_id][0] < created):
            out[rec.swarm_id] = (created, intent)
    return out


class ClusterView:
    """Nodes and containers of the whole cluster. All mutation happens on the event loop."""

    def __init__(self, client_factory: Callable[[types_pb2.Node], AgentClient] | None = None):
        self.nodes: dict[str, NodeView] = NodeViews(self._snapshot_changed)
        self.changes = 0                                     # counts every change of a node view, joins and leaves
        self.health_changes = 0                              # … of those, the ones that changed a node's health
        self._health: dict[str, tuple[bool, int]] = {}       # node ID -> (healthy, membership state) last seen
        self._snapshots: list[NodeSnapshot] | None = None   # snapshots(), in self.nodes' order
        self._snapshot_at: dict[str, int] = {}               # node ID -> its place in _snapshots
        self._snapshots_stale: set[str] = set()              # node IDs whose snapshot changed since
        self._by_id: dict[str, ContainerRecord] = {}
        self._by_name: dict[str, ContainerRecord] = {}
        # classic's swarm ID (full, and its 12-character short form) -> the records carrying it (a
        # rescheduled container and its stale copy on a lost node share it)
        self._by_swarm_id = SharedKeyIndex()
        # the first 12 characters of each container ID (the form `docker ps` shows and users type):
        # an ID prefix is looked up there, not by a walk of every container
        self._by_short_id = SharedKeyIndex()
        self.execs: dict[str, str] = {}            # exec ID -> node ID
        self.synced = asyncio.Event()              # the membership listing has been seen once
        self._client_factory = client_factory or (lambda n: AgentClient(n.info.addr, n.info.name))
        self._subscribers: set[asyncio.Queue] = set()
        self._tasks: set[asyncio.Task] = set()
        self._closing = False
        self._reading: dict[str, asyncio.Future] = {}   # container ID -> the inspect in flight
        self._settling: dict[str, asyncio.Task] = {}     # container ID -> read-back of a change answered
        self._gone: dict[str, None] = {}                # recently removed IDs, oldest first
        # node ID -> intent as last seen in the intent store (a node not listed has the default)
        self.intents: dict[str, NodeIntent] = {}
        self.intents_synced = asyncio.Event()      # the intent records have been read once
        self.intent_store: IntentStore | None = None   # where the primary writes intent (manager.intent)
        # swarm ID -> container intent record as last seen in the store
        self.container_intents: dict[str, ContainerIntent] = {}
        # swarm ID -> the record standing for it in the view (from its intent; no engine has been asked)
        self._standing: dict[str, ContainerRecord] = {}
        self._container_intents_generation = 0        # counts changes of container_intents
        self._intents_written_for: object = None      # the view state the primary's last write pass matched
        # node ID -> (its generation, node_container_intents): a pass reads again only the nodes
        # that changed, joined or left since the last one (`_intents_dirty`)
        self._intent_cache: dict[str, tuple[int, dict[str, tuple[datetime, ContainerIntent]]]] = {}
        self._intents_dirty: set[str] = set()
        self._intents_full = True
        self._intents_healthy: set[str] = set()    # healthy listed nodes, as of the last pass
        self._intents_holders: set[str] = set()    # nodes whose cached intents are not empty

    # -- membership ---------------------------------------------------------------------------

    async def follow_membership(self, membership) -> None:
        """Runs until cancelled: applies membership events to the view."""
        async for event in membership.watch():
            if event.kind == "synced":
                self.synced.set()
                self.reconcile_standing()
                keep_long_lived()          # the listing's node views, channels and follow tasks
                continue
            node = event.node
            if event.kind in ("joined", "updated"):
                self.node_joined(node)
            elif event.kind == "left":
                self.node_left(node.info.id, "node left the cluster (lease expired or deregistered)")

    def node_joined(self, node: types_pb2.Node) -> None:
        if self.intent_of(node.info.id).removed:
            return                     # removed by `docker node rm`: registration is refused too
        view = self.nodes.get(node.info.id)
        if view is not None and view.addr == node.info.addr:
            view.node = node
            view.changed()
            if view.task is None or view.task.done():
                # the node had left (its client was closed with its follow task): it is back
                log.info("node rejoined", node=node.info.name, addr=node.info.addr, id=node.info.id[:12])
                view.client = self._client_factory(node)
                self._start_follow(view)
            return
        if view is not None:
            self._stop_follow(view)
            view.task = None     # its cancelled task's traceback holds the view: no cycle left frozen
        view = NodeView(node=node, client=self._client_factory(node), intent=self.intent_of(node.info.id))
        self.nodes[node.info.id] = view
        log.info("node joined", node=node.info.name, addr=node.info.addr, id=node.info.id[:12])
        self._start_follow(view)

    def node_left(self, node_id: str, reason: str) -> None:
        view = self.nodes.get(node_id)
        if view is None:
            return
        log.warning("node lost", node=view.name, reason=reason)
        self._stop_follow(view)
        view.connected = False
        view.error = reason
        view.node.state = types_pb2.NODE_STATE_UNHEALTHY
        view.changed()
        self.reconcile_standing()

    # -- intent -------------------------------------------------------------------------------

    def intent_of(self, node_id: str) -> NodeIntent:
        return self.intents.get(node_id) or NodeIntent()

    async def follow_intents(self, store: IntentStore) -> None:
        """Runs until cancelled: applies the intent records (written by the primary) to the view."""
        listing: dict[str, NodeIntent] | None = {}
        containers: dict[str, bytes] = {}
        async for kind, key, value in store.watch():
            if kind == "reset":
                listing, containers = {}, {}    # the watch reconnected and lists again
                continue
            if kind == "synced":
                if listing is not None:        # a fresh listing replaces what was known
                    for node_id in set(self.intents) - set(listing):
                        self.apply_intent(node_id, None)
                    for node_id, intent in listing.items():
                        self.apply_intent(node_id, intent)
                    self.container_intents = {}
                    for swarm_id, raw in containers.items():
                        self.apply_container_intent(swarm_id, raw, reconcile=False)
                listing = None
                self.intents_synced.set()
                self.reconcile_standing()
                continue
            if key.startswith(CONTAINER_KEY_PREFIX):
                swarm_id = key[len(CONTAINER_KEY_PREFIX):]
                if listing is not None:
                    containers[swarm_id] = value if kind == "put" else None
                else:
                    self.apply_container_intent(swarm_id, value if kind == "put" else None)
                continue
            if not key.startswith(NODE_KEY_PREFIX):
                continue                        # a record of a later version: not ours to read
            node_id = key[len(NODE_KEY_PREFIX):]
            intent = NodeIntent.from_json(value) if kind == "put" else None
            if listing is not None:
                if intent is None:
                    listing.pop(node_id, None)
                else:
                    listing[node_id] = intent
            else:
                self.apply_intent(node_id, intent)

    def apply_intent(self, node_id: str, intent: NodeIntent | None) -> None:
        """Makes `intent` (None: the default) the node's; a removed node leaves the view."""
        if intent is None:
            self.intents.pop(node_id, None)
        else:
            self.intents[node_id] = intent
        view = self.nodes.get(node_id)
        if view is None:
            return
        if intent is not None and intent.removed:
            self.remove_node(node_id)
            return
        view.intent = intent or NodeIntent()
        view.changed()

    def apply_container_intent(self, swarm_id: str, raw: bytes | None, reconcile: bool = True) -> None:
        """Makes the stored record (None: deleted) the container's; what stands in the view follows."""
        intent = ContainerIntent.from_json(swarm_id, raw) if raw is not None else None
        if intent is None:
            self.container_intents.pop(swarm_id, None)
        else:
            self.container_intents[swarm_id] = intent
        self._container_intents_generation += 1
        if reconcile:
            self.reconcile_standing()

    def reconcile_standing(self) -> None:
        """Puts the records that stand for containers (manager.intent `standing`) into the view and
        takes out those that no longer do. A node only a record names is kept as a down node."""
        if not (self.synced.is_set() and self.intents_synced.is_set()):
            return                 # a node or record not read yet would look missing
        if not self.container_intents and not self._standing:
            return                 # nothing stands or could: a fleet without reschedule policies
        records = [r for r in self.container_intents.values() if not self.intent_of(r.node_id).removed]
        # what the records name, looked up in the indexes (a pass over every container of every
        # node here made each node's join cost the whole cluster: quadratic in a fleet's start)
        synthetic = {id(r) for r in self._standing.values()}
        live_ids = {r.swarm_id for r in records
                    if any(id(h) not in synthetic for h in self.swarm_id_holders(r.swarm_id))}
        live_names = {r.name for r in records
                      if r.name and (h := self._by_name.get(r.name)) is not None and id(h) not in synthetic}
        # a node membership lists and no read of it has failed yet is about to be listed: its
        # records would only flicker as Host Down while it is
        readable = {nid for nid in {r.node_id for r in records}
                    if (v := self.nodes.get(nid)) is not None
                    and (v.listed or (v.node.state != types_pb2.NODE_STATE_UNHEALTHY and not v.error))}
        wanted = {r.swarm_id: r for r in standing(records, readable, live_ids, live_names)}
        for swarm_id, rec in list(self._standing.items()):
            view = self.nodes.get(rec.node_id)
            intent = wanted.get(swarm_id)
            if intent is not None and view is not None and view.containers.get(rec.id) is rec \
                    and intent.id == rec.id and intent.node_id == rec.node_id:
                del wanted[swarm_id]           # standing as it should
                continue
            del self._standing[swarm_id]
            if view is not None and view.containers.get(rec.id) is rec:
                self.forget(view, rec.id)
                self._gone.pop(rec.id, None)   # its node may list it for real later
            if view is not None and view.task is None and not view.containers and view.node.info.id \
                    not in {r.node_id for r in wanted.values()}:
                self.nodes.pop(view.id, None)  # a node only records named, and none does now
        for intent in wanted.values():
            view = self.nodes.get(intent.node_id) or self._record_node(intent)
            self._standing[intent.swarm_id] = self._store(view, intent.document())
            log.info("container kept from its intent record", name=intent.name, node=view.name,
                     id=intent.id[:12])

    def _record_node(self, intent: ContainerIntent) -> NodeView:
        """A node membership does not list (down since before this manager started), named by a record."""
        node = types_pb2.Node(info=types_pb2.NodeInfo(id=intent.node_id, name=intent.node_name, addr=intent.node_addr),
                              state=types_pb2.NODE_STATE_UNHEALTHY)
        view = NodeView(node=node, client=self._client_factory(node), intent=self.intent_of(intent.node_id),
                        error="node down: not seen since this manager started")
        self.nodes[intent.node_id] = view
        return view

    async def keep_container_intent(self, rec: ContainerRecord | None) -> None:
        """Writes the intent record of a container just created or moved, when it has a reschedule
        policy (primary only). A failed write is logged; the primary's next pass writes it again."""
        view = self.nodes.get(rec.node_id) if rec is not None and rec.reschedules else None
        intent = ContainerIntent.of(rec.doc, rec.node_id, rec.node_name, view.addr) if view is not None else None
        if intent is not None and self.container_intents.get(intent.swarm_id) != intent:
            await self._write_container_intent(intent.swarm_id, intent)

    async def drop_container_intent(self, rec: ContainerRecord) -> None:
        """Deletes the intent record of a removed container, when the record names this copy."""
        current = self.container_intents.get(rec.swarm_id)
        if current is not None and current.id == rec.id:
            await self._write_container_intent(rec.swarm_id, None)

    async def write_container_intents(self) -> None:
        """The primary's pass: makes the records match the containers seen on healthy nodes (moved,
        started, stopped, destroyed); records of down nodes stay. Failed writes are retried next pass."""
        if self.intent_store is None or not (self.synced.is_set() and self.intents_synced.is_set()):
            return
        signature = (self.changes, self._container_intents_generation)   # any node view changed, or a record
        if signature == self._intents_written_for:
            return
        healthy = self._intents_read_again()
        seen: dict[str, tuple[datetime, ContainerIntent]] = {}
        for node_id in self._intents_holders & healthy:
            for swarm_id, (created, intent) in self._intent_cache[node_id][1].items():
                if swarm_id not in seen or seen[swarm_id][0] < created:
                    seen[swarm_id] = (created, intent)
        removed = frozenset(node_id for node_id, intent in self.intents.items() if intent.removed)
        puts, deletes = records_to_write(self.container_intents, {k: v for k, (_, v) in seen.items()}, healthy,
                                         removed)
        ok = True
        for intent in puts:
            ok &= await self._write_container_intent(intent.swarm_id, intent)
        for swarm_id in deletes:
            ok &= await self._write_container_intent(swarm_id, None)
        if ok:
            self._intents_written_for = signature

    def _intents_read_again(self) -> set[str]:
        """The healthy listed nodes, with `_intent_cache` brought up to date for the nodes changed,
        joined or left since the last pass only: at 5,000 nodes, a pass while creates come or a
        fleet joins no longer walks every node."""
        dirty, self._intents_dirty = self._intents_dirty, set()
        if self._intents_full:
            self._intents_full = False
            dirty = set(self.nodes) | set(self._intent_cache)
        for node_id in dirty:
            view = self.nodes.get(node_id)
            if view is None:
                self._intent_cache.pop(node_id, None)
                self._intents_healthy.discard(node_id)
                self._intents_holders.discard(node_id)
                continue
            if view.listed and view.healthy:
                self._intents_healthy.add(node_id)
            else:
                self._intents_healthy.discard(node_id)
            hit = self._intent_cache.get(node_id)
            if hit is None or hit[0] != view.generation:
                hit = self._intent_cache[node_id] = (view.generation, node_container_intents(view))
            if hit[1]:
                self._intents_holders.add(node_id)
            else:
                self._intents_holders.discard(node_id)
        return self._intents_healthy

    async def _write_container_intent(self, swarm_id: str, intent: ContainerIntent | None) -> bool:
        try:
            if intent is None:
                await self.intent_store.delete(container_key(swarm_id))
            else:
                await self.intent_store.put(container_key(swarm_id), intent.to_json())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # etcd away: the user's call stands; the primary's pass writes it again
            log.warning("cannot write a container intent record", swarm_id=swarm_id[:12], error=str(exc) or type(exc).__name__)
            self._intents_written_for = None
            return False
        # read-your-writes, before the watch brings it back
        self.apply_container_intent(swarm_id, intent.to_json() if intent is not None else None)
        return True

    def remove_node(self, node_id: str) -> None:
        """Drops the node and its containers from every listing (`docker node rm`)."""
        view = self.nodes.pop(node_id, None)
        if view is None:
            return
        log.info("node removed", node=view.name, id=node_id[:12])
        self._stop_follow(view)
        view.task = None         # its cancelled task's traceback holds the view: no cycle left frozen
        for rec in list(view.containers.values()):
            self._unindex(rec)
        view.containers = {}
        self.reconcile_standing()

    def _start_follow(self, view: NodeView) -> None:
        view.task = asyncio.get_running_loop().create_task(self._follow(view), name=f"follow-{view.name}")
        self._tasks.add(view.task)
        view.task.add_done_callback(self._tasks.discard)

    def _stop_follow(self, view: NodeView) -> None:
        if view.task and not view.task.done():
            view.task.cancel()
        self._in_background(view.client.close())

    async def close(self) -> None:
        self._closing = True
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(v.client.close() for v in self.nodes.values()), return_exceptions=True)

    # -- per-node sync ------------------------------------------------------------------------

    async def _follow(self, view: NodeView) -> None:
        backoff = 0.25
        while True:
            try:
                since = time.time_ns() - 1_000_000_000
                events = view.client.events(since_unix_nano=since)
                await self._resync(view)
                view.connected = True
                view.error = ""
                view.changed()
                backoff = 0.25
                async for event in events:
                    await self._apply_event(view, event)
                raise ApiError(503, "event stream ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # agent unreachable, stream broken: retry with backoff
                message = exc.message if isinstance(exc, ApiError) else f"{type(exc).__name__}: {exc}"
                first = not view.error
                if view.connected or view.error != message:
                    log.warning("node unreachable", node=view.name, error=message, retry_in=f"{backoff:.2f}s")
                view.connected = False
                view.error = message
                view.changed()
                if first and not view.listed:
                    self.reconcile_standing()     # never read since start: its records stand for it
                await asyncio.sleep(backoff * (1 + random.random() / 4))
                backoff = min(backoff * 2, 5.0)

    async def _resync(self, view: NodeView) -> None:
        # each document is made a compact record at once: a node's decoded documents are never all
        # held together, nor kept decoded (none of them was just asked about, and each dies young)
        synced = await view.client.sync_node()      # one call: facts, documents and images
        images = None
        if synced is not None:
            view.info = json.loads(synced.engine.info_json or b"{}")
            records = [self._record(view, doc, synced.read_at_ns, remember=False) for doc in synced_documents(synced)]
            if synced.images_json:
                images = json.loads(synced.images_json)
        else:
            records = await self._read_node_by_calls(view)
        for rec in list(view.containers.values()):
            self._unindex(rec)
        view.containers = {}
        for rec in records:
            self._index(view, rec)
        keep_long_lived()                    # the node's records: no young collection walks them again
        view.listed = True
        self.reconcile_standing()            # what stood for its containers gives way to what it has
        if images is not None:
            view.images = images
        else:
            await self.refresh_images(view)
        view.changed()

    async def _read_node_by_calls(self, view: NodeView) -> list[ContainerRecord]:
        """_resync's reads from an agent without SyncNode: its engine facts, then its containers'
        documents in batches (one call for many: a call per container cost the manager more than
        its record)."""
        engine = await view.client.engine_info()
        view.info = json.loads(engine.info_json or b"{}")
        ids = [c["Id"] for c in await view.client.list_containers(all=True)]
        records: list[ContainerRecord] = []
        for start in range(0, len(ids), _SYNC_BATCH):
            docs, read_at = await view.client.inspect_containers(ids[start:start + _SYNC_BATCH])
            records += [self._record(view, engine_document(raw), read_at, remember=False) for raw in docs]
        return records

    async def _refresh_after_answers(self, view: NodeView, container_id: str, since: int) -> None:
        await view.changes_answered(ANSWER_WAIT)
        try:
            await self.refresh_container(view, container_id, since)
        except ApiError as err:             # the node's next sync reads it
            log.debug("container not read after its event", node=view.name, id=container_id[:12], error=err.message)

    def _in_background(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def refresh_images(self, view: NodeView) -> None:
        resp = await view.client.engine_call("GET", "/images/json")
        if resp.status == 200:
            view.images = json.loads(resp.body or b"[]")
            view.changed()

    async def _apply_event(self, view: NodeView, event: dict) -> None:
        self._publish(view, event)
        kind = event.get("Type")
        action = (event.get("Action") or event.get("status") or "").split(":")[0]
        actor = (event.get("Actor") or {}).get("ID") or event.get("id") or ""
        if kind == "container" and actor:
            if action == "destroy":
                self.forget(view, actor)
            elif action not in _NO_REFRESH:
                # the engine emits an event after the change: a record read later already shows it
                since = event.get("timeNano")
                since = since if isinstance(since, int) else 0
                if since and view.changes_answering:
                    # the event of a change this manager asked for often comes before its answer,
                    # whose read-back will show it: read once that is in, without holding up the
                    # node's next events meanwhile
                    self._in_background(self._refresh_after_answers(view, actor, since))
                else:
                    await self.refresh_container(view, actor, since)
        elif kind == "image":
            await self.refresh_images(view)

    # -- container records --------------------------------------------------------------------

    def _store(self, view: NodeView, doc: dict, read_at: int = 0) -> ContainerRecord:
        old = view.containers.get(doc["Id"])
        if old is not None:
            if read_at and old.read_at > read_at:
                return old                     # a later read is stored already
            self._unindex(old)
        return self._index(view, self._record(view, doc, read_at))

    @staticmethod
    def _record(view: NodeView, doc: dict, read_at: int, remember: bool = True) -> ContainerRecord:
        raw, packed = getattr(doc, "raw", b""), getattr(doc, "packed", b"")
        if raw:
            doc.raw = doc.packed = b""          # the record keeps its own compact copy
        return ContainerRecord(node_id=view.id, node_name=view.name, doc=doc, host_ip=view.node.info.host_ip,
                               raw=raw, read_at=read_at, remember=remember, packed=packed)

    def _index(self, view: NodeView, rec: ContainerRecord) -> ContainerRecord:
        """Makes `rec` the view's record of its container (its node's, and every lookup's)."""
        view.containers[rec.id] = rec
        self._by_id[rec.id] = rec
        if rec.name:
            self._by_name[rec.name] = rec
        self._by_short_id.add(rec.id[:SHORT_ID_LENGTH], rec)
        for key in _swarm_id_keys(rec):
            self._by_swarm_id.add(key, rec)
        if view.pending:
            view.pending = [p for p in view.pending if p.name != rec.name or not rec.name]
        view.changed()
        return rec

    def document_json(self, rec: ContainerRecord) -> bytes:
        """The record's inspect document as JSON, without its closing brace (so a handler can add
        fields): the bytes the agent sent, kept compressed with the record."""
        return rec.document_json()

    def _unindex(self, rec: ContainerRecord) -> None:
        if self._by_id.get(rec.id) is rec:
            del self._by_id[rec.id]
        if rec.name and self._by_name.get(rec.name) is rec:
            del self._by_name[rec.name]
        self._by_short_id.discard(rec.id[:SHORT_ID_LENGTH], rec)
        for key in _swarm_id_keys(rec):
            self._by_swarm_id.discard(key, rec)

    def forget(self, view: NodeView, container_id: str) -> None:
        """Drops the container from the view (removed from its engine); a read of it still in
        flight will not bring it back."""
        self._gone[container_id] = None
        if len(self._gone) > _GONE_MAX:
            del self._gone[next(iter(self._gone))]
        rec = view.containers.pop(container_id, None)
        if rec is not None:
            self._unindex(rec)
            view.changed()


    def _current(self, view: NodeView, container_id: str, since: int) -> ContainerRecord | None:
        """The record, when it was read after engine time `since` (ns; 0 never qualifies)."""
        rec = view.containers.get(container_id)
        if rec is not None and since and rec.read_at >= since:
            return rec
        return None

    async def refresh_container(self, view: NodeView, container_id: str, since: int = 0) -> ContainerRecord | None:
        """The container as the engine has it at (engine-clock, ns) time `since` or later: the
        record when it was read after `since`, else after a read already in flight if that one
        was, else a new read; without `since`, always a new read. Forgets the container if the
        engine no longer has it."""
        settling = self._settling.get(container_id)
        if since and settling is not None:
            await asyncio.wait((settling,))    # an event of a change answered already: its read-back
        return await self._read_container(view, container_id, since)

    async def _read_container(self, view: NodeView, container_id: str, since: int) -> ContainerRecord | None:
        if since:
            rec = self._current(view, container_id, since)
            if rec is not None:
                return rec
            reading = self._reading.get(container_id)
            if reading is not None:
                await asyncio.wait((reading,))      # not cancelled if this caller is
                rec = self._current(view, container_id, since)
                if rec is not None:
                    return rec
        done = asyncio.get_running_loop().create_future()
        self._reading[container_id] = done
        try:
            try:
                doc, read_at = await view.client.inspect_container_at(container_id, since)
            except ApiError as err:
                if err.status == 404:
                    self.forget(view, container_id)
                    return None
                raise
            if container_id in self._gone:          # removed while it was being read
                return None
            return self._store(view, doc, read_at)
        finally:
            if self._reading.get(container_id) is done:
                del self._reading[container_id]
            done.set_result(None)

    async def store_read_back(self, view: NodeView, container_id: str, done_at: int,
                              read_back: Awaitable[ReadBack]) -> ContainerRecord | None:
        """Stores the agent's read-back of a change (`done_at`: when the engine had made it); when
        the agent could not read the container, reads it once more."""
        read = await read_back
        if read.doc is not None:
            return self.took_read(view, read.doc, read.read_at)
        return await self._read_container(view, container_id, done_at)

    def store_read_back_later(self, view: NodeView, container_id: str, done_at: int,
                              read_back: Awaitable[ReadBack], finished: Callable[[], None] | None = None) -> None:
        """store_read_back for a change whose answer has gone to its client already: reads of the
        view wait for it meanwhile (`settled`), so read-your-writes holds. `finished` runs once the
        record is stored or the read failed."""
        earlier = self._settling.get(container_id)
        task = asyncio.ensure_future(self._store_after(earlier, view, container_id, done_at, read_back))
        self._settling[container_id] = task

        def done(task: asyncio.Task) -> None:
            if self._settling.get(container_id) is task:
                del self._settling[container_id]
            if finished is not None:
                finished()
            if not task.cancelled() and task.exception() is not None:
                log.warning("container not read after a change", node=view.name, id=container_id[:12],
                            error=str(task.exception()))
        task.add_done_callback(done)

    async def _store_after(self, earlier: asyncio.Task | None, view: NodeView, container_id: str, done_at: int,
                           read_back: Awaitable[ReadBack]) -> ContainerRecord | None:
        if earlier is not None:                # the container's previous change first: one waits for one
            await asyncio.wait((earlier,))
        return await self.store_read_back(view, container_id, done_at, read_back)

    @property
    def settling(self) -> bool:
        """Whether a change answered already is not in the view yet."""
        return bool(self._settling)

    async def settled_container(self, container_id: str, timeout: float = SETTLE_WAIT) -> None:
        """settled() for a reference that is the full ID of a container being stored: waits for
        that one only (a `docker start` right after its create, while other clients' creates are
        being stored); any other reference waits for every change, as settled()."""
        task = self._settling.get(container_id)
        await self._settle((task,) if task is not None else set(self._settling.values()), timeout)

    async def settled(self, timeout: float = SETTLE_WAIT) -> None:
        """Returns once every change answered before this call is in the view (or failed to be
        read), or after `timeout` s: one node whose engine hangs on a read does not hold up every
        read of the cluster."""
        await self._settle(set(self._settling.values()), timeout)

    async def _settle(self, changes, timeout: float) -> None:
        if changes:
            _, late = await asyncio.wait(changes, timeout=timeout)
            if late:
                log.warning("reading the view before changes already answered are in it", changes=len(late),
                            waited=f"{timeout:.1f}s")

    def took_read(self, view: NodeView, doc: dict, read_at: int) -> ContainerRecord | None:
        """Stores a container document an agent read right after a change (`read_at`: engine clock,
        0 unknown), as refresh_container would; None when the container was removed meanwhile."""
        if doc["Id"] in self._gone:
            return None
        return self._store(view, doc, read_at)

    # -- lookups ------------------------------------------------------------------------------

    def containers(self) -> list[ContainerRecord]:
        return [c for v in self.nodes.values() for c in v.containers.values()]

    def node_by_name(self, name: str) -> NodeView | None:
        for v in self.nodes.values():
            if v.name == name:
                return v
        return None

    def by_swarm_id(self, swarm_id: str) -> ContainerRecord | None:
        """The container carrying classic's swarm ID (full or its 12-character short form): of
        several copies (a rescheduled container and its stale copy), the one on a healthy node,
        else the newest."""
        holders = self.swarm_id_holders(swarm_id)
        if not holders:
            return None
        return max(holders, key=lambda r: (self._on_healthy_node(r), r.created is not None,
                                           r.created or datetime.min.replace(tzinfo=timezone.utc)))

    def swarm_id_holders(self, swarm_id: str) -> tuple[ContainerRecord, ...]:
        """Every record carrying the swarm ID (full or short form): usually one."""
        return self._by_swarm_id.get(swarm_id)

    def _on_healthy_node(self, rec: ContainerRecord) -> bool:
        view = self.nodes.get(rec.node_id)
        return view is not None and view.healthy

    def find_container(self, ref: str) -> ContainerRecord:
        """By full ID, name, classic's swarm ID, `node/name`, or unique ID prefix (classic's order in
        cluster/container.go `Containers.Get`); 404 as the engine words it."""
        key = ref.lstrip("/")
        rec = self._by_id.get(key) or self._by_name.get(key)
        if rec is None and len(key) != SWARM_SHORT_ID_LENGTH:   # a short form yields to an ID prefix
            rec = self.by_swarm_id(key)
        if rec is not None:
            return rec
        if "/" in key:
            node_name, _, name = key.partition("/")
            view = self.node_by_name(node_name)
            rec = self._by_name.get(name)
            if view is not None and rec is not None and rec.node_id == view.id:
                return rec
        elif key:
            matches = self._id_prefix_matches(key)
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise ApiError(400, f"multiple IDs found with provided prefix: {ref}")
            rec = self.by_swarm_id(key)
            if rec is not None:
                return rec
        raise ApiError(404, f"No such container: {ref}")

    def _id_prefix_matches(self, prefix: str) -> list[ContainerRecord]:
        """The records whose container ID starts with `prefix`. A prefix as long as an ID matches
        nothing the lookup by ID did not find; one of 12 characters or more is looked up by its
        first 12; only a shorter one walks every container."""
        if len(prefix) >= ID_LENGTH:
            return []
        if len(prefix) >= SHORT_ID_LENGTH:
            return [r for r in self._by_short_id.get(prefix[:SHORT_ID_LENGTH]) if r.id.startswith(prefix)]
        return [r for i, r in self._by_id.items() if i.startswith(prefix)]

    def name_in_use(self, name: str) -> ContainerRecord | None:
        return self._by_name.get(name.lstrip("/"))

    def node_of(self, rec: ContainerRecord) -> NodeView:
        view = self.nodes.get(rec.node_id)
        if view is None:
            raise ApiError(404, f"No such container: {rec.id}")
        return view

    def healthy_nodes(self) -> list[NodeView]:
        """The nodes calls can go to now, by name."""
        return sorted((v for v in self.nodes.values() if v.healthy), key=lambda v: v.name)

    def snapshots(self) -> list[NodeSnapshot]:
        """Every node's snapshot (a new list; the snapshots are shared). Kept between decisions:
        only the nodes that changed since the last call are asked again, so a decision over 5,000
        nodes does not call 5,000 methods first."""
        if self._snapshots is None or self._snapshots_stale.difference(self._snapshot_at):
            self._snapshots = [v.snapshot() for v in self.nodes.values()]
            self._snapshot_at = {node_id: i for i, node_id in enumerate(self.nodes)}
        else:
            for node_id in self._snapshots_stale:
                self._snapshots[self._snapshot_at[node_id]] = self.nodes[node_id].snapshot()
        self._snapshots_stale.clear()
        return list(self._snapshots)

    def _snapshot_changed(self, view: NodeView | None, node_id: str | None = None) -> None:
        """A node's snapshot changed (None: the node `node_id` joined or left the view; every
        node when no ID is given)."""
        self.changes += 1
        if view is None:
            self.health_changes += 1
            if node_id is None:
                self._intents_full = True
            else:                              # the intent pass reads that node again, not all
                self._intent_cache.pop(node_id, None)     # a new view under the ID starts over
                self._intents_dirty.add(node_id)
        else:
            self._intents_dirty.add(view.id)
            health = (view.healthy, view.node.state)
            if self._health.get(view.id) != health:
                self._health[view.id] = health
                self.health_changes += 1
        if view is None:
            self._snapshots = None
        elif self._snapshots is not None:
            self._snapshots_stale.add(view.id)

    # -- events fan-out -----------------------------------------------------------------------

    def subscribe(self, maxsize: int = 1024) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(maxsize)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self._subscribers.discard(q)

    def _publish(self, view: NodeView, event: dict) -> None:
        if not self._subscribers:
            return
        event = with_node(event, view)
        for q in list(self._subscribers):
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                # a reader that cannot keep up is ended (None) rather than fed a gapped stream
                self._subscribers.discard(q)
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(None)
