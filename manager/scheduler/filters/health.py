"""Only healthy nodes (connected, heartbeating) can take containers."""
from __future__ import annotations

from typing import TYPE_CHECKING

from swarmd.manager.scheduler.errors import NO_HEALTHY_NODE, NoSuitableNode

if TYPE_CHECKING:
    from swarmd.manager.scheduler.container_spec import ContainerSpec
    from swarmd.manager.scheduler.snapshot import NodeSnapshot


class HealthFilter:
    name = "health"

    def conditions(self, spec: ContainerSpec) -> list[str]:
        return []      # its failure has its own words (NO_HEALTHY_NODE), as in classic swarm

    def filter(self, spec: ContainerSpec, nodes: list[NodeSnapshot], *, soft: bool,
               cluster: list[NodeSnapshot]) -> list[NodeSnapshot]:
        healthy = [n for n in nodes if n.healthy]
        if not healthy:
            raise NoSuitableNode(NO_HEALTHY_NODE, filter=self.name, conditions=("healthy node",))
        return nodes if len(healthy) == len(nodes) else healthy

    def node_test(self, spec: ContainerSpec):
        return _healthy


def _healthy(node: NodeSnapshot) -> bool:
    return node.healthy
