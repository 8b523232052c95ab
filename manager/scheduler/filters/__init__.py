"""Filters: each narrows the candidate nodes for one kind of requirement.

A filter is a small object with a `name` and
`filter(spec, nodes, *, soft, cluster) -> nodes`: `nodes` are the candidates left by the filters
before it, `cluster` every node the decision started from, `soft` whether soft (`~`) rules are
applied. A filter returns the input list itself when it has nothing to check, and raises
NoSuitableNode, saying which conditions failed, rather than return an empty list.

A filter whose verdict on a node depends on that node alone also has
`node_test(spec) -> predicate | None`: the hard rules of `filter` as one test of a node (None when
it checks nothing for `spec`); the scheduler combines these to remember verdicts per node
snapshot. A filter that looks at other nodes (dependency) returns NOT_NODE_LOCAL when `spec`
needs it to.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from manager.scheduler.container_spec import ContainerSpec
    from manager.scheduler.snapshot import NodeSnapshot


NodeTest = Callable[["NodeSnapshot"], bool]

# returned by `node_test` when the verdict on a node depends on other nodes too
NOT_NODE_LOCAL = object()


class Filter(Protocol):
    name: str

    def filter(self, spec: ContainerSpec, nodes: list[NodeSnapshot], *, soft: bool,
               cluster: list[NodeSnapshot]) -> list[NodeSnapshot]: ...

    def node_test(self, spec: ContainerSpec) -> NodeTest | None | object: ...


def all_of(tests: list[NodeTest]) -> NodeTest | None:
    """One test passing when every test passes (None for no test)."""
    if not tests:
        return None
    if len(tests) == 1:
        return tests[0]
    return lambda node: all(t(node) for t in tests)
