"""Spread: the least loaded node, so containers are spread over the cluster.

Order: lowest weight (the share of the node's CPUs and memory in use once the container is placed,
for the resources it asks for), then fewest containers, then lowest existing reservations, then name and ID so equal nodes
are picked deterministically. With no resources requested, the node with fewest containers wins.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from swarmd.manager.scheduler.strategies import KeyedStrategy, requests_resources, weight

if TYPE_CHECKING:
    from swarmd.manager.scheduler.container_spec import ContainerSpec
    from swarmd.manager.scheduler.snapshot import NodeSnapshot


def _idle_key(n: NodeSnapshot):
    idx = n.index
    return idx.count, idx.load, n.name, n.id


class SpreadStrategy(KeyedStrategy):
    name = "spread"

    def sort_key(self, spec: ContainerSpec):
        """The order of `rank`, as a key of one node (smallest first)."""
        if not requests_resources(spec):
            return _idle_key

        def key(n: NodeSnapshot):
            idx = n.index
            return weight(spec, n, self.overcommit), idx.count, idx.load, n.name, n.id
        return key
