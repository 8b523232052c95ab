"""Container placement: the one path a new container takes onto a node.

As classic swarm's `Cluster.CreateContainer`, it serves the API's create handler and the
rescheduler alike: reserve the name -> scheduler decision on the cluster's snapshots -> a pending
placeholder on the chosen node (so the next decision already counts it) -> create on that node's
agent (which pulls a missing image), which answers with the container as created (read-your-writes
in one round trip) -> release the name and the placeholder, whether the create worked or not.

What it refuses is said with `PlacementError` subclasses; their text is what the client sees, and
the HTTP layer maps each type to a status once.
"""
from __future__ import annotations

import dataclasses
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from swarmd.manager import metrics
from swarmd.manager.network_names import pinned_to_network_node
from swarmd.manager.cluster import ClusterView, NodeView
from swarmd.manager.container_records import SWARM_ID_LABEL, SWARM_ID_LENGTH, ContainerRecord, requested_bindings
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.scheduler import ContainerSpec, NoSuitableNode, Scheduler, SchedulerError
from swarmd.manager.intent import ON_NODE_FAILURE
from swarmd.manager.scheduler.container_spec import reschedule_policies, reserved_cpus
from swarmd.manager.scheduler.filters.expressions import parse_expression
from swarmd.manager.scheduler.snapshot import ContainerSnapshot
from swarmd.common import logs
from swarmd.common.stage_times import OFF, stages

log = logs.get("manager.placement")

# engine answers that say the request itself is wrong: another node would refuse it alike
NOT_RETRIED = frozenset({400, 409})

_VALID_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


class PlacementError(Exception):
    """A container the placement will not create; `str()` is the text the client sees."""


class InvalidName(PlacementError):
    """The requested name is not one the engine accepts."""

    def __init__(self, name: str):
        super().__init__(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")


class NameInUse(PlacementError):
    """The name belongs to a container, or to one being created right now."""

    def __init__(self, name: str, holder: ContainerRecord | None):
        cid = holder.id if holder else "(being created)"
        super().__init__(f'Conflict. The container name "/{name}" is already in use by container "{cid}". '
                         "You have to remove (or rename) that container to be able to reuse that name.")
        self.name = name
        self.holder = holder


class InvalidCreate(PlacementError):
    """The create request itself is malformed: no image, bad swarm rules, wrongly typed fields."""


class NoNodeFits(PlacementError):
    """The scheduler found no node for the container."""


def check_name(name: str) -> str:
    """The requested name without its leading slash; InvalidName when the engine would refuse it."""
    if not _VALID_NAME.match(name):
        raise InvalidName(name)
    return name.lstrip("/")


def with_swarm_id(body: dict, taken: Callable[[str], bool]) -> dict:
    """The create body carrying classic's `com.docker.swarm.id` label: the one the client (or a
    rescheduled container's own configuration) gave, else a new random one no container holds,
    as classic's cluster/swarm/cluster.go `createContainer` did."""
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict) or labels.get(SWARM_ID_LABEL):
        return body                    # given already, or malformed: the create refuses it as it is
    while taken(swarm_id := secrets.token_hex(SWARM_ID_LENGTH // 2)):
        pass
    return {**body, "Labels": {**labels, SWARM_ID_LABEL: swarm_id}}


def pending_placeholder(name: str, body: dict) -> ContainerSnapshot:
    """What a container being created reserves on its node, read from the engine's create body."""
    hc = body.get("HostConfig") or {}
    cpus = reserved_cpus(body, hc)
    return ContainerSnapshot(
        id=f"pending:{name}:{id(body)}", name=name, image=str(body.get("Image") or ""), image_id="",
        state="created", labels=dict(body.get("Labels") or {}),
        ports=requested_bindings({"HostConfig": hc, "ExposedPorts": body.get("ExposedPorts")}), cpus=cpus,
        memory=int(hc.get("Memory") or 0),
    )


@dataclass(frozen=True)
class Placed:
    """A container placement created: the engine's create answer and the node it is on."""

    result: dict          # {"Id": ..., "Warnings": [...]}, as the engine answered
    node: NodeView

    @property
    def id(self) -> str:
        return self.result["Id"]


class Placement:
    """Creates containers where the scheduler says; owns the names being created right now."""

    def __init__(self, cluster: ClusterView, scheduler: Scheduler):
        self.cluster = cluster
        self.scheduler = scheduler
        self._names_in_flight: set[str] = set()

    @property
    def names_in_flight(self) -> frozenset[str]:
        """Names reserved by creates that have not finished yet."""
        return frozenset(self._names_in_flight)

    def is_reserved(self, name: str) -> bool:
        return name in self._names_in_flight

    def _check_free(self, name: str, replacing: ContainerRecord | None) -> None:
        holder = self.cluster.name_in_use(name)
        held_by_other = holder is not None and (replacing is None or holder.id != replacing.id)
        if held_by_other or name in self._names_in_flight:
            raise NameInUse(name, holder)

    def _decide(self, name: str, body: dict, failed: frozenset[str] = frozenset(),
                image_affinity: bool = False) -> tuple[NodeView, dict]:
        """The node the scheduler picks (never one of `failed`, the node IDs a create of this
        container already failed on) and the body for its engine, counted in the scheduling metrics.
        `image_affinity` adds `affinity:image==IMAGE` to this decision only (never to the container)."""
        if not body.get("Image"):
            raise InvalidCreate("No command specified" if not body.get("Cmd") else "image is required")
        started, started_cpu = time.perf_counter(), time.thread_time()
        try:
            body = pinned_to_network_node(body, self.cluster.node_by_name)   # `--net node/name`
            spec = ContainerSpec.from_create(body, name or None)
            if image_affinity:
                spec = _with_image_affinity(spec)
            snapshots = self.cluster.snapshots()
            if failed:
                snapshots = [s for s in snapshots if s.id not in failed]
            node = self.scheduler.select(spec, snapshots)
            engine_body = spec.normalized_create_body(body, node.total_cpus)
        except NoSuitableNode as exc:
            metrics.SCHEDULING.labels("no_suitable_node").inc()
            raise NoNodeFits(str(exc)) from None
        except SchedulerError as exc:
            metrics.SCHEDULING.labels("invalid").inc()
            raise InvalidCreate(str(exc)) from None
        metrics.SCHEDULING.labels("placed").inc()
        metrics.SCHEDULING_LATENCY.observe(time.perf_counter() - started)
        metrics.SCHEDULING_CPU.observe(time.thread_time() - started_cpu)
        return self.cluster.nodes[node.id], engine_body

    async def create(self, name: str, body: dict, replacing: ContainerRecord | None = None,
                     answer_first: bool = False) -> Placed:
        """Creates the container (`name` may be empty: the engine picks one) on the node the scheduler
        picks, and returns once the cluster view shows it. `replacing` is the record a rescheduled
        container takes over from: its name is not a conflict. Agent errors pass through as ApiError;
        one from a node that could not get the image is retried on a node holding it (classic's image
        affinity: `docker build` or `docker import` leave an image on some nodes only). With
        `answer_first` it returns as soon as the engine has created the container, before the view
        shows it (ClusterView.settled waits for that), unless the container reschedules."""
        if name:
            name = check_name(name)
        clock = stages("place")
        body = with_swarm_id(body, lambda sid: self.cluster.by_swarm_id(sid) is not None)
        failed: set[str] = set()
        last_error: ApiError | None = None
        while True:
            if name:
                self._check_free(name, replacing)
            try:
                view, engine_body = self._decide(name, body, frozenset(failed))
            except NoNodeFits:
                if last_error is None:
                    raise
                raise last_error from None    # no other node to try: the engine's own words
            clock.mark("decide")
            try:
                return await self._create_on(view, name, engine_body, clock, answer_first)
            except ApiError as exc:
                error = exc
            # as classic swarm's Cluster.CreateContainer: the chosen node could not get the image
            # (built or imported on another node, in no registry): once more, on a node holding it
            holder = self._image_holder(name, body, view)
            if holder is not None:
                holder_view, holder_body = holder
                if name:
                    self._check_free(name, replacing)
                return await self._create_on(holder_view, name, holder_body)
            # classic's swarm.createretry: a create that failed on its node is tried on another
            if len(failed) >= self.scheduler.create_retry or error.status in NOT_RETRIED:
                raise error
            log.warning("create failed; trying another node", name=name or "(engine-named)", node=view.name,
                        error=error.message)
            failed.add(view.id)
            last_error = error

    def _image_holder(self, name: str, body: dict, failed: NodeView) -> tuple[NodeView, dict] | None:
        """The node (and its engine body) to retry a failed create on: one holding the image when
        `failed` does not and no node constraint was given (classic's condition); None otherwise."""
        spec = _with_image_affinity(ContainerSpec.from_create(body, name or None))
        if any(e.key == "node" for e in spec.constraints):
            return None
        try:
            self.scheduler.candidates(spec, [failed.snapshot()], soft=False)
            return None                       # the failed node holds the image: not an image problem
        except NoSuitableNode:
            pass
        try:
            return self._decide(name, body, image_affinity=True)
        except PlacementError:
            return None

    async def _create_on(self, view: NodeView, name: str, engine_body: dict, clock=OFF,
                         answer_first: bool = False) -> Placed:
        # no await since the name check: the reservation and the decision are one step for other creates
        placeholder = pending_placeholder(name, engine_body)
        view.hold(placeholder)
        if name:
            self._names_in_flight.add(name)

        def settled() -> None:             # the record stands for the container from now on
            view.release(placeholder)
            self._names_in_flight.discard(name)

        # read-your-writes: the agent answers with the container as created, on the same call
        answer_first = answer_first and ON_NODE_FAILURE not in reschedule_policies(engine_body)
        with view.change_asked():
            try:
                result, done_at, read_back = await view.client.create_then_read(name, engine_body)
            except BaseException:
                settled()
                raise
            clock.mark("rpc_create")
            if answer_first:
                # answered before the read-back: reads of the view wait for it (ClusterView.settled),
                # and the placeholder and the name hold the container's place until it is stored
                self.cluster.store_read_back_later(view, result["Id"], done_at, read_back, finished=settled)
        if answer_first:
            clock.done(log)
            return Placed(result, view)
        try:
            rec = await self.cluster.store_read_back(view, result["Id"], done_at, read_back)
            clock.mark("store")
        finally:
            settled()
        await self.cluster.keep_container_intent(rec)     # durable before the client hears of it
        clock.mark("intent")
        clock.done(log)
        return Placed(result, view)


def _with_image_affinity(spec: ContainerSpec) -> ContainerSpec:
    """`spec` with `affinity:image==IMAGE` added, as classic swarm added it for its retry."""
    affinity = parse_expression("affinity", f"image=={spec.image}")
    return dataclasses.replace(spec, affinities=spec.affinities + (affinity,))
