"""Containers linked to, sharing volumes with, or sharing the network stack of another container
(`--link`, `--volumes-from`, `--net container:X`) go to the node holding that container."""
from __future__ import annotations

from typing import TYPE_CHECKING

from swarmd.manager.scheduler.errors import NoSuitableNode
from swarmd.manager.scheduler.filters import NOT_NODE_LOCAL

if TYPE_CHECKING:
    from swarmd.manager.scheduler.container_spec import ContainerSpec
    from swarmd.manager.scheduler.snapshot import NodeSnapshot

_PREFIX = "unable to find a node that satisfies the following conditions"


class DependencyFilter:
    name = "dependency"

    def filter(self, spec: ContainerSpec, nodes: list[NodeSnapshot], *, soft: bool,
               cluster: list[NodeSnapshot]) -> list[NodeSnapshot]:
        deps = spec.dependencies
        if not deps:
            return nodes
        conditions = tuple(d.option for d in deps)
        listed = ", ".join(conditions)
        together: set[int] | None = None     # id() of the nodes holding every dependency so far
        for dep in deps:
            held_by = {id(n) for n in cluster if n.index.has_container(dep.container)}
            if not held_by:
                raise NoSuitableNode(
                    f'{_PREFIX} [{listed}]: no container "{dep.container}" in the cluster ({dep.option})',
                    filter=self.name, conditions=conditions)
            together = held_by if together is None else together & held_by
        holders = [n for n in nodes if id(n) in together]
        if not holders:
            why = ("the node holding it cannot take the container" if len(deps) == 1
                   else "no eligible node holds all of them")
            raise NoSuitableNode(f"{_PREFIX} [{listed}]: {why}", filter=self.name, conditions=conditions)
        return holders

    def node_test(self, spec: ContainerSpec):
        return NOT_NODE_LOCAL if spec.dependencies else None
