"""What can go wrong when placing a container; the API maps these to HTTP statuses once."""
from __future__ import annotations

from collections.abc import Iterable, Sequence


class SchedulerError(Exception):
    """Any scheduling failure."""


class InvalidSpec(SchedulerError):
    """The create request itself is malformed (a bad constraint, affinity or policy): HTTP 400."""


class NoSuitableNode(SchedulerError):
    """No node can take the container (HTTP 500, as classic swarm answered).

    `filter` names the filter (or "resources" for the strategies' fit check) that left no
    candidate; `conditions` are the conditions it could not satisfy.
    """

    def __init__(self, message: str, *, filter: str = "", conditions: tuple[str, ...] = (), detail: str = ""):
        super().__init__(message)
        self.filter = filter
        self.conditions = tuple(conditions)
        self.detail = detail


NO_HEALTHY_NODE = "no healthy node available in the cluster"

# classic swarm's scheduler/filter/filter.go (ApplyFilters), word for word, trailing space included:
# scripts written for classic match this line, then one `[…]` line per filter
UNSATISFIED = "Unable to find a node that satisfies the following conditions "


def conditions_text(groups: Iterable[Sequence[str]]) -> str:
    """Classic's listAllFilters: one line per filter holding conditions, each as Go prints a
    []string (`[a b]`, space separated); filters without conditions add no line."""
    return "".join(f"\n[{' '.join(group)}]" for group in groups if group)


def unsatisfied(filter_name: str, conditions: list[str] | tuple[str, ...],
                listed: Iterable[Sequence[str]] | None = None, detail: str = "") -> NoSuitableNode:
    """The classic wording: `Unable to find a node that satisfies the following conditions `, then
    the conditions of each filter applied (`listed`; by default only `conditions`), a line each.
    `detail`, when a filter can say more (which dependency is missing), is one more last line."""
    groups = [conditions] if listed is None else listed
    text = UNSATISFIED + conditions_text(groups) + (f"\n{detail}" if detail else "")
    return NoSuitableNode(text, filter=filter_name, conditions=tuple(conditions), detail=detail)
