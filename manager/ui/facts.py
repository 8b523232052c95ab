"""The cluster view (manager.cluster) read into the plain facts manager.ui.summary works on.

A node's container facts are read again only when the node changed (`NodeView.generation`): a page
pushed every half second over 30,000 containers would otherwise rebuild every container's
summary each time, though almost none changed.
"""
from __future__ import annotations

from swarmd.manager.api.context import ManagerContext
from swarmd.manager.cluster import NodeView
from swarmd.manager.ui.summary import ClusterFacts, ContainerFacts, NodeFacts, port_text


# node id -> (the view read, its generation then, its container facts): the view itself is kept so
# that a node's new view (a node that left and came back) is never taken for the old one
_CONTAINER_FACTS: dict[str, tuple[NodeView, int, tuple[ContainerFacts, ...]]] = {}


def container_facts(view: NodeView) -> tuple[ContainerFacts, ...]:
    cached = _CONTAINER_FACTS.get(view.id)
    if cached is not None and cached[0] is view and cached[1] == view.generation:
        return cached[2]
    containers = []
    for rec in view.containers.values():
        entry = rec.summary()
        containers.append(ContainerFacts(
            id=rec.id, name=rec.name, image=entry.get("Image") or "", state=entry.get("State") or "",
            ports=tuple(port_text(p) for p in entry.get("Ports") or ()), created=int(entry.get("Created") or 0)))
    facts = tuple(containers)
    _CONTAINER_FACTS[view.id] = (view, view.generation, facts)
    return facts


def node_facts(view: NodeView) -> NodeFacts:
    snap = view.snapshot()
    containers = container_facts(view)
    return NodeFacts(id=view.id, name=view.name, addr=view.addr, status=view.status,
                     availability=view.availability, labels=view.labels(), cpus=snap.total_cpus,
                     reserved_cpus=snap.reserved_cpus, memory=snap.total_memory,
                     reserved_memory=snap.reserved_memory, containers=containers)


def cluster_facts(ctx: ManagerContext) -> ClusterFacts:
    for gone in _CONTAINER_FACTS.keys() - ctx.cluster.nodes.keys():
        del _CONTAINER_FACTS[gone]
    return ClusterFacts(strategy=ctx.scheduler.strategy_name, filters=tuple(ctx.scheduler.filter_names),
                        nodes=tuple(node_facts(v) for v in ctx.cluster.nodes.values()))
