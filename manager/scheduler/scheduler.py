"""The scheduler: filters narrow the nodes, a strategy picks one. Pure: no I/O, no clock.

As in classic swarm, soft rules (`==~`, `!=~`) are applied while they leave candidates, and when
the decision fails with them it is made again without them.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

from manager.scheduler.container_spec import ContainerSpec
from manager.scheduler.errors import NO_HEALTHY_NODE, NoSuitableNode
from manager.scheduler.filters import Filter
from manager.scheduler.filters.affinity import AffinityFilter
from manager.scheduler.filters.constraint import ConstraintFilter
from manager.scheduler.filters.containerslots import ContainerSlotsFilter
from manager.scheduler.filters.dependency import DependencyFilter
from manager.scheduler.filters.health import HealthFilter
from manager.scheduler.filters.port import PortFilter
from manager.scheduler.snapshot import NodeSnapshot
from manager.scheduler.strategies import Strategy
from manager.scheduler.strategies.binpack import BinpackStrategy
from manager.scheduler.strategies.random_strategy import RandomStrategy
from manager.scheduler.strategies.spread import SpreadStrategy

# in the order they run when every filter is enabled (classic swarm's default order)
FILTERS: dict[str, type] = {
    "health": HealthFilter,
    "port": PortFilter,
    "containerslots": ContainerSlotsFilter,
    "dependency": DependencyFilter,
    "affinity": AffinityFilter,
    "constraint": ConstraintFilter,
}
STRATEGIES = ("spread", "binpack", "random")


def _strategy(name: str, rng: random.Random | None) -> Strategy:
    if name == "spread":
        return SpreadStrategy()
    if name == "binpack":
        return BinpackStrategy()
    if name == "random":
        return RandomStrategy(rng)
    raise ValueError(f'unknown scheduling strategy "{name}": valid strategies are {", ".join(STRATEGIES)}')


def _filters(names: Sequence[str] | None) -> list[Filter]:
    if names is None:
        return [cls() for cls in FILTERS.values()]
    out: list[Filter] = []
    seen: set[str] = set()
    for raw in names:
        for name in str(raw).split(","):   # "--filter health,port" as well as repeated flags
            name = name.strip().lower()
            if not name or name in seen:
                continue
            if name not in FILTERS:
                raise ValueError(f'unknown scheduler filter "{name}": valid filters are {", ".join(FILTERS)}')
            seen.add(name)
            out.append(FILTERS[name]())
    return out


class Scheduler:
    """Chooses the node for a new container.

    `filters` None enables every filter in the default order; otherwise the named ones run in
    the order given. `rng` seeds the random strategy.
    """

    def __init__(self, strategy: str = "spread", filters: list[str] | None = None, *,
                 rng: random.Random | None = None):
        self._strategy = _strategy(str(strategy).strip().lower(), rng)
        self._filters = _filters(filters)

    @property
    def strategy_name(self) -> str:
        return self._strategy.name

    @property
    def filter_names(self) -> list[str]:
        return [f.name for f in self._filters]

    def candidates(self, spec: ContainerSpec, nodes: Sequence[NodeSnapshot], *, soft: bool = True) -> list[NodeSnapshot]:
        """The nodes every filter accepts (raises NoSuitableNode naming the filter that left none)."""
        cluster = list(nodes)
        if not cluster:
            raise NoSuitableNode(NO_HEALTHY_NODE, filter="health", conditions=("healthy node",))
        found = cluster
        for f in self._filters:
            found = f.filter(spec, found, soft=soft, cluster=cluster)
        return found

    def rank(self, spec: ContainerSpec, nodes: Sequence[NodeSnapshot]) -> list[NodeSnapshot]:
        """Every node that could take the container, best first."""
        try:
            return self._strategy.rank(spec, self.candidates(spec, nodes, soft=True))
        except NoSuitableNode:
            if not spec.has_soft_rules:
                raise
            return self._strategy.rank(spec, self.candidates(spec, nodes, soft=False))

    def select(self, spec: ContainerSpec, nodes: Sequence[NodeSnapshot]) -> NodeSnapshot:
        """The node to create the container on; NoSuitableNode says why there is none."""
        try:
            return self._strategy.pick(spec, self.candidates(spec, nodes, soft=True))
        except NoSuitableNode:
            if not spec.has_soft_rules:
                raise
            return self._strategy.pick(spec, self.candidates(spec, nodes, soft=False))
