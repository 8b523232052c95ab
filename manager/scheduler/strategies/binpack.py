"""Binpack: the fullest node the container still fits on, so whole nodes stay free.

Order: highest weight (the share of CPU and memory in use once placed), then most containers,
then highest existing reservations, then name and ID for a deterministic choice.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from swarmd.manager.scheduler.strategies import KeyedStrategy, requests_resources, weight

if TYPE_CHECKING:
    from swarmd.manager.scheduler.container_spec import ContainerSpec
    from swarmd.manager.scheduler.snapshot import NodeSnapshot


def _idle_key(n: NodeSnapshot):
    idx = n.index
    return -idx.count, -idx.load, n.name, n.id


class BinpackStrategy(KeyedStrategy):
    name = "binpack"

    def sort_key(self, spec: ContainerSpec):
        """The order of `rank`, as a key of one node (smallest first)."""
        if not requests_resources(spec):
            return _idle_key

        def key(n: NodeSnapshot):
            idx = n.index
            return -weight(spec, n, self.overcommit), -idx.count, -idx.load, n.name, n.id
        return key
