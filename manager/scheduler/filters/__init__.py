"""Filters: each narrows the candidate nodes for one kind of requirement.

A filter is a small object with a `name`, `conditions(spec) -> [str]` (classic swarm's
`GetFilters`: what the spec asks of this filter, as the no-fit error lists it) and
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

from swarmd.manager.scheduler.errors import unsatisfied

if TYPE_CHECKING:
    from swarmd.manager.scheduler.container_spec import ContainerSpec
    from swarmd.manager.scheduler.snapshot import NodeSnapshot


NodeTest = Callable[["NodeSnapshot"], bool]

# returned by `node_test` when the verdict on a node depends on other nodes too
NOT_NODE_LOCAL = object()


class Filter(Protocol):
    name: str

    def conditions(self, spec: ContainerSpec) -> list[str]: ...

    def filter(self, spec: ContainerSpec, nodes: list[NodeSnapshot], *, soft: bool,
               cluster: list[NodeSnapshot]) -> list[NodeSnapshot]: ...

    def node_test(self, spec: ContainerSpec) -> NodeTest | None | object: ...


def all_of(tests: list[NodeTest]) -> NodeTest | None:
    """One test passing when every test passes, tried in order (None for no test).

    A plain loop, not `all()` over a generator: this runs once per node and signature, over
    every node when a signature is new, and the generator's frame cost as much as two tests."""
    if not tests:
        return None
    if len(tests) == 1:
        return tests[0]
    tests = tuple(tests)

    def every(node: NodeSnapshot) -> bool:
        for test in tests:
            if not test(node):
                return False
        return True
    return every


class ExpressionFilter:
    """A filter of `KEY==VALUE` rules applied in order (constraint, affinity). A hard rule that
    keeps no node fails the decision, naming the rules applied so far and itself; a soft one
    (`==~`, `!=~`) is skipped instead. Subclasses say which rules a spec has, how one rule
    tests a node and how the no-fit error words it."""

    name = ""

    def rules(self, spec: ContainerSpec) -> tuple:
        raise NotImplementedError

    def describe(self, expr) -> str:
        """A rule as classic swarm listed it: KEY, operator and value, without the soft marker."""
        return f"{expr.key}{expr.operator}{expr.value}"

    def conditions(self, spec: ContainerSpec) -> list[str]:
        return [self.describe(e) for e in self.rules(spec)]

    def predicate(self, expr) -> NodeTest:
        raise NotImplementedError

    def filter(self, spec: ContainerSpec, nodes: list[NodeSnapshot], *, soft: bool,
               cluster: list[NodeSnapshot]) -> list[NodeSnapshot]:
        for expr in self.rules(spec):
            if expr.soft and not soft:
                continue
            test = self.predicate(expr)
            kept = [n for n in nodes if test(n)]
            if not kept:
                if expr.soft:
                    continue
                raise unsatisfied(self.name, self.conditions(spec))
            nodes = kept
        return nodes

    def node_test(self, spec: ContainerSpec) -> NodeTest | None:
        """The hard rules only: soft ones depend on which nodes are left (see `filter`)."""
        return all_of([self.predicate(e) for e in self.rules(spec) if not e.soft])
