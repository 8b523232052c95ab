"""Draining: moving containers off a node whose availability is `drain`, on the primary only.

A drained node takes no new container (the health filter reads availability from the snapshot).
Its containers with a reschedule policy (`reschedule:on-node-failure`) move to nodes the scheduler
picks, one at a time and never running twice: the old copy is stopped, the new one created
through `manager.placement` (the one create path, as the rescheduler uses) and started if the old
one ran, and only then is the old copy removed. If the new copy cannot be made, the old one is
started again and the move retried later. Containers without the policy stay, listed with their
node. Every step is an engine event, so each move shows in `docker events`.

`to_drain` is the pure decision; `Drainer` applies it on the live view.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from swarmd.manager.cluster import ClusterView, NodeView
from swarmd.manager.container_records import ContainerRecord
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.placement import Placement, PlacementError
from swarmd.manager.rescheduler import create_body
from swarmd.common import logs

log = logs.get("manager.drain")

INTERVAL = 0.5
RETRY_MAX = 30.0


@dataclass(frozen=True)
class DrainNode:
    """What the drain decision reads of one node."""

    id: str
    availability: str
    healthy: bool
    containers: tuple[ContainerRecord, ...] = ()


def to_drain(nodes: Iterable[DrainNode]) -> list[ContainerRecord]:
    """Containers to move now: on healthy drained nodes, with a reschedule policy, and whose name
    no other node holds (a copy elsewhere means the move already happened)."""
    nodes = list(nodes)
    names_by_node: dict[str, set[str]] = {n.id: {r.name for r in n.containers if r.name} for n in nodes}
    out = []
    for n in nodes:
        if n.availability != "drain" or not n.healthy:
            continue
        for rec in n.containers:
            if not rec.name or not rec.reschedules:
                continue
            if any(rec.name in names for node_id, names in names_by_node.items() if node_id != n.id):
                continue
            out.append(rec)
    return out


def _running(rec: ContainerRecord) -> bool:
    state = rec.state
    return bool(state.get("Running") or state.get("Restarting") or state.get("Paused"))


@dataclass
class Drainer:
    """Applies `to_drain` on the live view; `run` loops until cancelled (the primary's work)."""

    cluster: ClusterView
    placement: Placement
    interval: float = INTERVAL
    _not_before: dict[str, tuple[int, float]] = field(default_factory=dict)   # container ID -> (attempts, when)

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad pass must not stop draining for good
                log.error("drain pass failed", exc_info=exc)
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        # a node drains only by its intent record: the records (a few) are looked at, not 5,000 views
        if not any(intent.availability == "drain" for intent in self.cluster.intents.values()):
            return
        views = list(self.cluster.nodes.values())
        if not any(v.availability == "drain" for v in views):
            return
        nodes = [DrainNode(v.id, v.availability, v.healthy, tuple(v.containers.values())) for v in views]
        for rec in to_drain(nodes):
            attempts, when = self._not_before.get(rec.id, (0, 0.0))
            if time.monotonic() >= when:
                await self._move(rec, attempts)

    async def _move(self, rec: ContainerRecord, attempts: int) -> None:
        view = self.cluster.nodes.get(rec.node_id)
        if view is None:
            return
        running = _running(rec)
        try:
            if running:
                await view.client.container_action(rec.id, "stop")
            placed = await self.placement.create(rec.name, create_body(rec.doc), replacing=rec)
        except (ApiError, PlacementError) as exc:
            delay = min(RETRY_MAX, 0.5 * 2 ** (attempts + 1))
            self._not_before[rec.id] = (attempts + 1, time.monotonic() + delay)
            message = exc.message if isinstance(exc, ApiError) else str(exc)
            log.warning("cannot move a container off a drained node", name=rec.name, node=view.name,
                        error=message, retry_in=f"{delay:.1f}s")
            if running:
                await self._restart_old(view, rec)
            return
        if running:
            _, done_at = await placed.node.client.container_action_at(placed.id, "start")
            await self.cluster.refresh_container(placed.node, placed.id, done_at)
        await self._remove_old(view, rec)
        await self.cluster.refresh_container(placed.node, placed.id)   # the name points at the new copy
        self._not_before.pop(rec.id, None)
        log.info("container moved off a drained node", name=rec.name, from_node=view.name, old_id=rec.id[:12],
                 node=placed.node.name, id=placed.id[:12])

    async def _restart_old(self, view: NodeView, rec: ContainerRecord) -> None:
        try:
            await view.client.container_action(rec.id, "start")
        except ApiError as err:
            log.warning("cannot start the drained node's copy again", name=rec.name, node=view.name,
                        error=err.message)

    async def _remove_old(self, view: NodeView, rec: ContainerRecord) -> None:
        try:
            await view.client.container_action(rec.id, "remove", {"force": "1", "v": "0", "link": "0"})
        except ApiError as err:
            if err.status != 404:
                log.warning("cannot remove the drained node's copy", name=rec.name, node=view.name,
                            error=err.message)
                return
        self.cluster.forget(view, rec.id)
