"""Only healthy nodes (connected, heartbeating) whose availability is active can take containers.

A paused or drained node (`docker node update --availability pause|drain`) takes no new container;
when the only healthy nodes left are such nodes, the no-fit error says so.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from swarmd.manager.scheduler.errors import NO_HEALTHY_NODE, NoSuitableNode, unsatisfied

if TYPE_CHECKING:
    from swarmd.manager.scheduler.container_spec import ContainerSpec
    from swarmd.manager.scheduler.snapshot import NodeSnapshot

ACTIVE_CONDITION = "node availability active (other healthy nodes are paused or drained)"


class HealthFilter:
    name = "health"

    def conditions(self, spec: ContainerSpec) -> list[str]:
        return []      # its failure has its own words (NO_HEALTHY_NODE), as in classic swarm

    def filter(self, spec: ContainerSpec, nodes: list[NodeSnapshot], *, soft: bool,
               cluster: list[NodeSnapshot]) -> list[NodeSnapshot]:
        healthy = [n for n in nodes if n.healthy]
        if not healthy:
            raise NoSuitableNode(NO_HEALTHY_NODE, filter=self.name, conditions=("healthy node",))
        usable = [n for n in healthy if accepts_containers(n)]
        if not usable:
            raise unsatisfied(self.name, [ACTIVE_CONDITION])
        return nodes if len(usable) == len(nodes) else usable

    def node_test(self, spec: ContainerSpec):
        return _usable


def accepts_containers(node: NodeSnapshot) -> bool:
    """A node's availability lets new containers on it (pause and drain do not)."""
    return node.availability == "active"


def _usable(node: NodeSnapshot) -> bool:
    return node.healthy and node.availability == "active"
