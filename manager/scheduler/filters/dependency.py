"""Containers linked to, sharing volumes with, or sharing the network stack of another container
(`--link`, `--volumes-from`, `--net container:X`) go to the node holding that container. When
none can, the no-fit error says why on one more line after classic's (which dependency is missing)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from swarmd.manager.scheduler.errors import unsatisfied
from swarmd.manager.scheduler.filters import NOT_NODE_LOCAL

if TYPE_CHECKING:
    from swarmd.manager.scheduler.container_spec import ContainerSpec
    from swarmd.manager.scheduler.snapshot import NodeSnapshot


class DependencyFilter:
    name = "dependency"

    def conditions(self, spec: ContainerSpec) -> list[str]:
        """`--volumes-from=db`, `--link=db:alias`, `--net=container:db`, as classic swarm listed them."""
        return [d.option for d in spec.dependencies]

    def filter(self, spec: ContainerSpec, nodes: list[NodeSnapshot], *, soft: bool,
               cluster: list[NodeSnapshot]) -> list[NodeSnapshot]:
        deps = spec.dependencies
        if not deps:
            return nodes
        together: set[int] | None = None     # id() of the nodes holding every dependency so far
        for dep in deps:
            held_by = {id(n) for n in cluster if n.index.has_container(dep.container)}
            if not held_by:
                raise unsatisfied(self.name, self.conditions(spec),
                                  detail=f'no container "{dep.container}" in the cluster ({dep.option})')
            together = held_by if together is None else together & held_by
        holders = [n for n in nodes if id(n) in together]
        if not holders:
            why = ("the node holding it cannot take the container" if len(deps) == 1
                   else "no eligible node holds all of them")
            raise unsatisfied(self.name, self.conditions(spec), detail=why)
        return holders

    def node_test(self, spec: ContainerSpec):
        return NOT_NODE_LOCAL if spec.dependencies else None
