"""A node labelled `containerslots=N` takes at most N containers (a label that is not a number is ignored)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from swarmd.manager.scheduler.errors import unsatisfied

if TYPE_CHECKING:
    from swarmd.manager.scheduler.container_spec import ContainerSpec
    from swarmd.manager.scheduler.snapshot import NodeSnapshot

LABEL = "containerslots"
CONDITION = "available container slots"


def _has_free_slot(node: NodeSnapshot) -> bool:
    idx = node.index
    slots = idx.container_slots
    return slots is None or idx.count < slots


def _may_take_one(node: NodeSnapshot) -> bool:
    return LABEL not in node.labels or _has_free_slot(node)


class ContainerSlotsFilter:
    name = "containerslots"

    def conditions(self, spec: ContainerSpec) -> list[str]:
        # classic swarm's scheduler/filter/slots.go (GetFilters) lists it for every container
        return [CONDITION]

    def filter(self, spec: ContainerSpec, nodes: list[NodeSnapshot], *, soft: bool,
               cluster: list[NodeSnapshot]) -> list[NodeSnapshot]:
        free = [n for n in nodes if LABEL not in n.labels or _has_free_slot(n)]
        if not free:
            raise unsatisfied(self.name, [CONDITION])
        return nodes if len(free) == len(nodes) else free

    def node_test(self, spec: ContainerSpec):
        return _may_take_one
