"""Constraints pin a container to nodes by name/ID (`node==node1`) or by node label
(`region==us-east`, `storagedriver==overlay2`, …), with `!=`, globs, `/regex/` and soft `==~`.

A node without the label compares as the empty string, as in classic swarm (so `region!=us`
accepts it). Node labels (`docker node update --label-add`) are among the node's labels, so
`zone==east` matches them as it matches engine labels; `node.labels.zone==east` (swarm mode's form)
reads the same label.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from swarmd.manager.scheduler.filters import ExpressionFilter
from swarmd.manager.scheduler.filters.expressions import EQ, Expression

if TYPE_CHECKING:
    from swarmd.manager.scheduler.container_spec import ContainerSpec
    from swarmd.manager.scheduler.snapshot import NodeSnapshot

# engine facts the caller normally merges into the labels; read from the snapshot when it did not
NODE_LABELS_PREFIX = "node.labels."
_FACTS = {"kernelversion": "kernel_version", "operatingsystem": "operating_system", "ostype": "os",
          "architecture": "architecture"}


def label_value(node: NodeSnapshot, key: str) -> str:
    labels = node.labels
    value = labels.get(key)
    if value is not None:
        return value
    for k, v in labels.items():   # label keys compare case-insensitively
        if k.lower() == key:
            return v
    attr = _FACTS.get(key)
    return getattr(node, attr) if attr else ""


def predicate(expr: Expression) -> Callable[[NodeSnapshot], bool]:
    """Whether a node satisfies `expr`, operator included."""
    key, value, one = expr.key, expr.value, expr.matches_one
    if key.lower().startswith(NODE_LABELS_PREFIX):
        key = key[len(NODE_LABELS_PREFIX):]
    if key == "node":
        if expr.is_plain:
            hit = lambda node: value == node.name or value == node.id  # noqa: E731
        else:
            hit = lambda node: one(node.name) or one(node.id)  # noqa: E731
    else:
        hit = lambda node: one(label_value(node, key))  # noqa: E731
    if expr.operator == EQ:
        return hit
    return lambda node: not hit(node)


class ConstraintFilter(ExpressionFilter):
    name = "constraint"

    def rules(self, spec: ContainerSpec) -> tuple:
        return spec.constraints

    def predicate(self, expr: Expression) -> Callable[[NodeSnapshot], bool]:
        return predicate(expr)
