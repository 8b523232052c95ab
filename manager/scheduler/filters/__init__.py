"""Filters: each narrows the candidate nodes for one kind of requirement.

A filter is a small object with a `name` and
`filter(spec, nodes, *, soft, cluster) -> nodes`: `nodes` are the candidates left by the filters
before it, `cluster` every node the decision started from, `soft` whether soft (`~`) rules are
applied. A filter returns the input list itself when it has nothing to check, and raises
NoSuitableNode, saying which conditions failed, rather than return an empty list.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from manager.scheduler.container_spec import ContainerSpec
    from manager.scheduler.snapshot import NodeSnapshot


class Filter(Protocol):
    name: str

    def filter(self, spec: ContainerSpec, nodes: list[NodeSnapshot], *, soft: bool,
               cluster: list[NodeSnapshot]) -> list[NodeSnapshot]: ...
