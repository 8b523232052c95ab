"""The cluster view (manager.cluster) read into the plain facts manager.ui.summary works on."""
from __future__ import annotations

from swarmd.manager.api.context import ManagerContext
from swarmd.manager.cluster import NodeView
from swarmd.manager.ui.summary import ClusterFacts, ContainerFacts, NodeFacts, port_text


def node_facts(view: NodeView) -> NodeFacts:
    snap = view.snapshot()
    containers = []
    for rec in view.containers.values():
        entry = rec.summary()
        containers.append(ContainerFacts(
            id=rec.id, name=rec.name, image=entry.get("Image") or "", state=entry.get("State") or "",
            ports=tuple(port_text(p) for p in entry.get("Ports") or ()), created=int(entry.get("Created") or 0)))
    return NodeFacts(id=view.id, name=view.name, addr=view.addr, status=view.status,
                     availability=view.availability, labels=view.labels(), cpus=snap.total_cpus,
                     reserved_cpus=snap.reserved_cpus, memory=snap.total_memory,
                     reserved_memory=snap.reserved_memory, containers=tuple(containers))


def cluster_facts(ctx: ManagerContext) -> ClusterFacts:
    return ClusterFacts(strategy=ctx.scheduler.strategy_name, filters=tuple(ctx.scheduler.filter_names),
                        nodes=tuple(node_facts(v) for v in ctx.cluster.nodes.values()))
