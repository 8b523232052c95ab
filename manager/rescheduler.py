"""Rescheduling on node failure: what the primary does when a node is lost, and when it returns.

A container whose labels carry `com.docker.swarm.reschedule-policies=["on-node-failure"]` (what
`-e reschedule:on-node-failure` becomes at create) is recreated, with the same name and the
create configuration read back from its inspect document, on a node the scheduler picks, and
started if it was running, once membership says its node is gone (lease expired). When the lost
node comes back, its stale copy (same name, older) is removed, so there is never a duplicate.
Containers without the policy stay on the lost node's record, shown as unavailable.

The decisions (`to_reschedule`, `stale_copies`, `create_body`) are pure; `Rescheduler` applies
them on the live view, and runs only on the primary. Everything it needs is in the cluster view,
which every manager rebuilds from the agents and from the containers' intent records (a node
down since before the manager started is known from those), so a new primary carries on where
the old stopped. Each pass also has the primary bring those records up to date.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from swarmd.manager.cluster import ClusterView, NodeView
from swarmd.manager.container_records import ContainerRecord
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.intent import ON_NODE_FAILURE, create_body, reschedules_on_node_failure  # noqa: F401 (re-exported)
from swarmd.manager.placement import Placement, PlacementError
from swarmd.manager.scheduler import container_spec
from swarmd.proto.swarm.v1 import types_pb2
from swarmd.common import logs

log = logs.get("manager.rescheduler")

INTERVAL = 0.5
RETRY_MAX = 30.0
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


def reschedule_policies(doc: dict) -> list[str]:
    """The container's reschedule policies, from its label (or a leftover `reschedule:` env)."""
    return list(container_spec.reschedule_policies(doc.get("Config") or {}))


@dataclass(frozen=True)
class NodeState:
    """What the rescheduler reads of one node."""

    id: str
    name: str
    lost: bool             # membership says the node is gone (lease expired or deregistered)
    healthy: bool          # registered and its agent connected
    containers: Collection[ContainerRecord] = ()   # read at once, before the pass awaits anything


def _lost(view: NodeView) -> bool:
    return view.node.state == types_pb2.NODE_STATE_UNHEALTHY


def node_state(view: NodeView) -> NodeState:
    return NodeState(id=view.id, name=view.name, lost=_lost(view),
                     healthy=view.healthy, containers=view.containers.values())


def _hold_the_policy(views: Iterable[NodeView]) -> bool:
    """Whether any of the nodes holds a named container with the reschedule policy."""
    return any(rec.reschedules and rec.name for v in views for rec in v.containers.values())


def _created(rec: ContainerRecord) -> datetime:
    return rec.created or _EPOCH


def to_reschedule(nodes: Iterable[NodeState]) -> list[ContainerRecord]:
    """Containers with the policy on lost nodes whose name is not on any other node yet."""
    nodes = list(nodes)
    # the record says whether it reschedules (its document is not decoded on each pass), and
    # the other nodes' names are looked through only for the few that do
    candidates = [rec for n in nodes if n.lost for rec in n.containers if rec.reschedules and rec.name]
    if not candidates:
        return []
    wanted = {rec.name for rec in candidates}
    elsewhere = {rec.name for n in nodes if not n.lost for rec in n.containers if rec.name in wanted}
    out, seen = [], set()
    for rec in sorted(candidates, key=_created, reverse=True):
        if rec.name not in elsewhere and rec.name not in seen:
            seen.add(rec.name)
            out.append(rec)
    return out


def stale_copies(nodes: Iterable[NodeState],
                 appeared: Collection[str] | None = None) -> list[tuple[ContainerRecord, ContainerRecord]]:
    """(stale, kept) pairs: same name with the policy on several healthy nodes, the newest kept.
    With `appeared` (node IDs), only the names held on those nodes: pairs among the others were
    looked at when they appeared (a pass that fails to remove one looks at every node again)."""
    healthy = [n for n in nodes if n.healthy]
    wanted = None
    if appeared is not None:
        wanted = {rec.name for n in healthy if n.id in appeared for rec in n.containers if rec.reschedules and rec.name}
        if not wanted:
            return []                          # a fleet joining without the policy: no pass over its records
    by_name: dict[str, list[ContainerRecord]] = {}
    for n in healthy:
        for rec in n.containers:
            if rec.reschedules and rec.name and (wanted is None or rec.name in wanted):
                by_name.setdefault(rec.name, []).append(rec)
    out = []
    for copies in by_name.values():
        if len({c.node_id for c in copies}) < 2:
            continue
        copies.sort(key=lambda r: (_created(r), r.id), reverse=True)
        out += [(stale, copies[0]) for stale in copies[1:] if stale.node_id != copies[0].node_id]
    return out


@dataclass
class _Retry:
    attempts: int = 0
    not_before: float = 0.0


@dataclass
class Rescheduler:
    """Applies the decisions on the live cluster view; `run` loops until cancelled."""

    cluster: ClusterView
    placement: Placement               # the API's create path: same reservation, placeholder, scheduler
    interval: float = INTERVAL
    _retries: dict[str, _Retry] = field(default_factory=dict)
    _healthy: frozenset[str] = frozenset()
    _changes_seen: int = -1                # ClusterView.health_changes at the last full pass
    _lost_seen: bool = False               # that pass saw a lost node (its containers wait to move)

    async def run(self) -> None:
        log.info("rescheduler running")
        self._look_again()                     # a primary's term starts with a pass over every node
        try:
            while True:
                try:
                    await self.tick()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # one bad pass must not stop rescheduling for good
                    log.error("rescheduling pass failed", exc_info=exc)
                await asyncio.sleep(self.interval)
        finally:
            log.info("rescheduler stopped")

    async def tick(self) -> None:
        if not self.cluster.synced.is_set():
            return
        await self.cluster.write_container_intents()   # moves, destroys, retries of failed writes
        if self.cluster.health_changes == self._changes_seen and not self._retries and not self._lost_seen:
            return                             # no node lost or back since a pass that found nothing to do
        self._changes_seen = self.cluster.health_changes
        views = list(self.cluster.nodes.values())
        healthy = frozenset(v.id for v in views if v.healthy)
        appeared = healthy - self._healthy
        self._lost_seen = any(_lost(v) for v in views)
        if not appeared and not self._lost_seen:
            self._healthy = healthy            # nothing lost, nothing back: no pass over the records
            return
        if not self._lost_seen and not _hold_the_policy(self.cluster.nodes[i] for i in appeared):
            # no appeared node holds a container with the policy (so none of its is a stale copy)
            # and none is lost: a fleet joining without the policy costs no pass over every node
            self._healthy = healthy
            return
        nodes = [node_state(v) for v in views]
        self._healthy = healthy                # _remove_stale resets it to retry on the next pass
        try:
            if appeared:                       # a node (re)appeared: look for stale copies
                for stale, kept in stale_copies(nodes, appeared):
                    await self._remove_stale(stale, kept)
            for rec in to_reschedule(nodes):
                await self._reschedule(rec)
        except BaseException:
            self._look_again()                 # a pass cut short is made again whole
            raise

    def _look_again(self) -> None:
        """The next pass treats every healthy node as appeared and looks through them all."""
        self._healthy = frozenset()
        self._changes_seen = -1

    async def _remove_stale(self, stale: ContainerRecord, kept: ContainerRecord) -> None:
        view = self.cluster.nodes.get(stale.node_id)
        if view is None:
            return
        try:
            await view.client.container_action(stale.id, "remove", {"force": "1", "v": "0", "link": "0"})
        except ApiError as err:
            if err.status != 404:
                log.warning("cannot remove a stale copy", name=stale.name, node=view.name, error=err.message)
                self._look_again()
                return
        self.cluster.forget(view, stale.id)
        kept_view = self.cluster.nodes.get(kept.node_id)
        if kept_view is not None:
            await self.cluster.refresh_container(kept_view, kept.id)   # the name points at it again
        log.info("stale copy removed", name=stale.name, node=view.name, id=stale.id[:12],
                 kept=kept.id[:12], kept_on=kept.node_name)

    async def _reschedule(self, rec: ContainerRecord) -> None:
        retry = self._retries.get(rec.id)
        if retry is not None and time.monotonic() < retry.not_before:
            return
        started = time.monotonic()
        try:
            new_id, node_name = await self.recreate(rec)
        except (ApiError, PlacementError) as exc:
            retry = retry or _Retry()
            retry.attempts += 1
            delay = min(RETRY_MAX, 0.5 * 2 ** retry.attempts)
            retry.not_before = time.monotonic() + delay
            self._retries[rec.id] = retry
            message = exc.message if isinstance(exc, ApiError) else str(exc)
            log.warning("cannot reschedule", name=rec.name, from_node=rec.node_name, error=message,
                        retry_in=f"{delay:.1f}s")
            return
        self._retries.pop(rec.id, None)
        log.info("container rescheduled", name=rec.name, from_node=rec.node_name, old_id=rec.id[:12],
                 node=node_name, id=new_id[:12], took=f"{time.monotonic() - started:.2f}s")

    async def recreate(self, rec: ContainerRecord) -> tuple[str, str]:
        """Creates the container again where the scheduler picks, through the same placement as an
        API create (the name reserved, a placeholder on the node meanwhile); starts it if it was running."""
        placed = await self.placement.create(rec.name, create_body(rec.doc), replacing=rec)
        if rec.state.get("Running") or rec.state.get("Restarting") or rec.state.get("Paused"):
            _, done_at = await placed.node.client.container_action_at(placed.id, "start")
            await self.cluster.keep_container_intent(
                await self.cluster.refresh_container(placed.node, placed.id, done_at))
        return placed.id, placed.node.name
