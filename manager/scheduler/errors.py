"""What can go wrong when placing a container; the API maps these to HTTP statuses once."""
from __future__ import annotations


class SchedulerError(Exception):
    """Any scheduling failure."""


class InvalidSpec(SchedulerError):
    """The create request itself is malformed (a bad constraint, affinity or policy): HTTP 400."""


class NoSuitableNode(SchedulerError):
    """No node can take the container (HTTP 500, as classic swarm answered).

    `filter` names the filter (or "resources" for the strategies' fit check) that left no
    candidate; `conditions` are the conditions it could not satisfy.
    """

    def __init__(self, message: str, *, filter: str = "", conditions: tuple[str, ...] = ()):
        super().__init__(message)
        self.filter = filter
        self.conditions = tuple(conditions)


NO_HEALTHY_NODE = "no healthy node available in the cluster"


def unsatisfied(filter_name: str, conditions: list[str] | tuple[str, ...]) -> NoSuitableNode:
    """The classic wording: `unable to find a node that satisfies the following conditions [...]`."""
    return NoSuitableNode(
        f"unable to find a node that satisfies the following conditions [{', '.join(conditions)}]",
        filter=filter_name, conditions=tuple(conditions))
