"""Affinities place a container next to (`==`) or away from (`!=`) other containers or images.

`container==NAME|ID` (nodes running such a container), `image==REF` (nodes holding the image by
repository, tag or ID), any other key a container label (`com.example.tier==db`: nodes running a
container with that label value). Soft rules (`==~`, `!=~`) are dropped when they would leave no
candidate.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from swarmd.manager.scheduler.filters import ExpressionFilter
from swarmd.manager.scheduler.filters.expressions import EQ, Expression
from swarmd.manager.scheduler.snapshot import is_hex, normalize_reference

if TYPE_CHECKING:
    from swarmd.manager.scheduler.container_spec import ContainerSpec
    from swarmd.manager.scheduler.snapshot import NodeSnapshot


def _container_test(expr: Expression) -> Callable[[NodeSnapshot], bool]:
    if expr.is_plain:
        v = expr.value.lstrip("/")
        hexlike = is_hex(v)

        def test(node: NodeSnapshot) -> bool:
            idx = node.index
            return (v in idx.container_names or v in idx.container_id_set
                    or (hexlike and any(i.startswith(v) for i in idx.container_ids)))
        return test
    return lambda node: expr.matches_any(node.index.container_names) or expr.matches_any(node.index.container_ids)


def _image_test(expr: Expression) -> Callable[[NodeSnapshot], bool]:
    if expr.is_plain:
        refs = {expr.value, normalize_reference(expr.value)}

        def test(node: NodeSnapshot) -> bool:
            idx = node.index
            return not refs.isdisjoint(idx.image_refs) or idx.has_image_id(expr.value)
        return test
    return lambda node: expr.matches_any(node.index.image_refs) or expr.matches_any(node.index.image_ids)


def _label_test(expr: Expression) -> Callable[[NodeSnapshot], bool]:
    key, value = expr.key, expr.value
    if expr.is_plain:
        return lambda node: value in node.index.label_values(key)
    return lambda node: expr.matches_any(node.index.label_values(key))


def predicate(expr: Expression) -> Callable[[NodeSnapshot], bool]:
    """Whether a node satisfies `expr`, operator included."""
    if expr.key == "container":
        hit = _container_test(expr)
    elif expr.key == "image":
        hit = _image_test(expr)
    else:
        hit = _label_test(expr)
    if expr.operator == EQ:
        return hit
    return lambda node: not hit(node)


class AffinityFilter(ExpressionFilter):
    name = "affinity"

    def rules(self, spec: ContainerSpec) -> tuple:
        return spec.affinities

    def describe(self, expr: Expression) -> str:
        # classic swarm's scheduler/filter/affinity.go (GetFilters) says whether a rule was soft
        return f"{expr.key}{expr.operator}{expr.value} (soft={'true' if expr.soft else 'false'})"

    def predicate(self, expr: Expression) -> Callable[[NodeSnapshot], bool]:
        return predicate(expr)
