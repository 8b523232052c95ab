"""Strategies: rank the nodes left by the filters and pick one.

A strategy has a `name`, `rank(spec, nodes) -> nodes` (best first) and `pick(spec, nodes) -> node`.
All of them first keep the nodes the container fits on (`fitting`), as classic swarm did: a node
fits when its reservations plus the requested memory and CPUs stay within its totals, enlarged by
the strategy's `overcommit` ratio (`--cluster-opt swarm.overcommit`: 0.05 lets 5% more be reserved).
A strategy whose choice is the smallest node under a key of one node also has
`sort_key(spec) -> key` (spread, binpack): the scheduler then remembers keys per node snapshot.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from swarmd.manager.scheduler.errors import NoSuitableNode

if TYPE_CHECKING:
    from swarmd.manager.scheduler.container_spec import ContainerSpec
    from swarmd.manager.scheduler.snapshot import NodeSnapshot

_EPSILON = 1e-9


class Strategy(Protocol):
    name: str
    overcommit: float

    def rank(self, spec: ContainerSpec, nodes: list[NodeSnapshot]) -> list[NodeSnapshot]: ...

    def pick(self, spec: ContainerSpec, nodes: list[NodeSnapshot]) -> NodeSnapshot: ...


def requests_resources(spec: ContainerSpec) -> bool:
    return spec.memory > 0 or spec.cpus > 0


def fits(spec: ContainerSpec, node: NodeSnapshot, overcommit: float = 0.0) -> bool:
    idx = node.index
    scale = 1.0 + overcommit
    if spec.memory > 0 and idx.reserved_memory + spec.memory > node.total_memory * scale:
        return False
    if spec.cpus > 0 and idx.reserved_cpus + spec.cpus > node.total_cpus * scale + _EPSILON:
        return False
    return True


def weight(spec: ContainerSpec, node: NodeSnapshot, overcommit: float = 0.0) -> float:
    """Classic swarm's weight: percent of the node's CPUs plus percent of its memory in use once the
    container is placed, each counted as 100 when the container does not ask for it."""
    idx = node.index
    scale = 1.0 + overcommit
    cpu = (idx.reserved_cpus + spec.cpus) * 100 / (node.total_cpus * scale) if spec.cpus > 0 else 100.0
    mem = (idx.reserved_memory + spec.memory) * 100 / (node.total_memory * scale) if spec.memory > 0 else 100.0
    return cpu + mem


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" or n == int(n) else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def no_resources(spec: ContainerSpec, nodes: list[NodeSnapshot], overcommit: float = 0.0) -> NoSuitableNode:
    asked = []
    if spec.cpus > 0:
        asked.append(f"{spec.cpus:g} CPUs")
    if spec.memory > 0:
        asked.append(f"{_human_bytes(spec.memory)} of memory")
    scale = 1.0 + overcommit
    free_cpus = max((n.total_cpus * scale - n.index.reserved_cpus for n in nodes), default=0.0)
    free_mem = max((int(n.total_memory * scale) - n.index.reserved_memory for n in nodes), default=0)
    most = []
    if spec.cpus > 0:
        most.append(f"{max(free_cpus, 0):g} CPUs")
    if spec.memory > 0:
        most.append(f"{_human_bytes(max(free_mem, 0))} of memory")
    return NoSuitableNode(
        f"no resources available to schedule container: it requests {' and '.join(asked)}; "
        f"the most free on any candidate node is {' and '.join(most)}",
        filter="resources", conditions=tuple(asked))


def fitting(spec: ContainerSpec, nodes: list[NodeSnapshot], overcommit: float = 0.0) -> list[NodeSnapshot]:
    """The nodes the container fits on; NoSuitableNode when there is none."""
    if not requests_resources(spec):
        return nodes
    out = [n for n in nodes if fits(spec, n, overcommit)]
    if not out:
        raise no_resources(spec, nodes, overcommit)
    return out


class KeyedStrategy:
    """A strategy that orders the nodes with room by one key per node (`sort_key`)."""

    overcommit = 0.0

    def sort_key(self, spec: ContainerSpec):
        raise NotImplementedError

    def rank(self, spec: ContainerSpec, nodes: list[NodeSnapshot]) -> list[NodeSnapshot]:
        return sorted(fitting(spec, nodes, self.overcommit), key=self.sort_key(spec))

    def pick(self, spec: ContainerSpec, nodes: list[NodeSnapshot]) -> NodeSnapshot:
        return min(fitting(spec, nodes, self.overcommit), key=self.sort_key(spec))
