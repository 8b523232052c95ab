"""The scheduler: filters narrow the nodes, a strategy picks one. Pure: no I/O, no clock.

As in classic swarm, soft rules (`==~`, `!=~`) are applied while they leave candidates, and when
the decision fails with them it is made again without them.

`select` remembers, per placement signature, its verdict on each node snapshot (see
placements.py), so a decision over a cluster where few nodes changed costs little more than
reading which ones did. The choice is the one the filters in order and the strategy would make.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

from swarmd.manager.scheduler.container_spec import ContainerSpec
from swarmd.manager.scheduler.errors import NO_HEALTHY_NODE, NoSuitableNode, unsatisfied
from swarmd.manager.scheduler.filters import NOT_NODE_LOCAL, Filter, all_of
from swarmd.manager.scheduler.filters.affinity import AffinityFilter
from swarmd.manager.scheduler.filters.constraint import ConstraintFilter
from swarmd.manager.scheduler.filters.containerslots import ContainerSlotsFilter
from swarmd.manager.scheduler.filters.dependency import DependencyFilter
from swarmd.manager.scheduler.filters.health import HealthFilter
from swarmd.manager.scheduler.filters.port import PortFilter
from swarmd.manager.scheduler.placements import Judge, Placements
from swarmd.manager.scheduler.snapshot import NodeSnapshot
from swarmd.manager.scheduler.strategies import Strategy, fits, requests_resources
from swarmd.manager.scheduler.strategies.binpack import BinpackStrategy
from swarmd.manager.scheduler.strategies.random_strategy import RandomStrategy
from swarmd.manager.scheduler.strategies.spread import SpreadStrategy

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
    the order given. `rng` seeds the random strategy. `overcommit` (classic's
    `swarm.overcommit`) lets that share more than a node's CPUs and memory be reserved;
    `create_retry` (classic's `swarm.createretry`) is how many times the placement tries another
    node when a create fails on the chosen one.
    """

    def __init__(self, strategy: str = "spread", filters: list[str] | None = None, *,
                 rng: random.Random | None = None, overcommit: float = 0.0, create_retry: int = 0):
        if not overcommit > -1:
            raise ValueError(f"overcommit {overcommit}: must be more than -1")
        if create_retry < 0:
            raise ValueError(f"create_retry {create_retry}: must be 0 or more")
        self._strategy = _strategy(str(strategy).strip().lower(), rng)
        self._strategy.overcommit = overcommit
        self._filters = _filters(filters)
        self._placements = Placements()
        self.overcommit = overcommit
        self.create_retry = create_retry

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
        for i, f in enumerate(self._filters):
            try:
                found = f.filter(spec, found, soft=soft, cluster=cluster)
            except NoSuitableNode as exc:
                if f.name == "health":
                    raise
                # as classic swarm: the conditions of every filter applied so far, a line each
                listed = [g.conditions(spec) for g in self._filters[:i + 1]]
                raise unsatisfied(exc.filter or f.name, exc.conditions, listed, exc.detail) from None
        return found

    def _signature(self, spec: ContainerSpec) -> tuple | None:
        """What the verdict on a node depends on, from the spec; None when a decision needs the
        filters in order (soft rules, dependencies) or the strategy has no key (random)."""
        if spec.has_soft_rules or not hasattr(self._strategy, "sort_key"):
            return None
        if spec.dependencies and any(f.name == "dependency" for f in self._filters):
            return None
        # the port filter also reads compose's labels (the container a recreate replaces gives its
        # ports to its replacement): with ports asked, specs of other services judge nodes apart
        identity = spec.compose_identity if spec.ports else ()
        return spec.constraints, spec.affinities, spec.ports, spec.memory, spec.cpus, identity

    def _judge(self, spec: ContainerSpec) -> Judge:
        """A node's strategy key when every filter accepts it and the container fits, else None."""
        tests = []
        for f in self._filters:
            test = f.node_test(spec)
            if test is NOT_NODE_LOCAL:
                raise AssertionError(f"filter {f.name} is not node-local for this spec")
            if test is not None:
                tests.append(test)
        if requests_resources(spec):
            overcommit = self.overcommit
            tests.append(lambda node: fits(spec, node, overcommit))
        accepted = all_of(tests)
        key = self._strategy.sort_key(spec)   # type: ignore[attr-defined]
        if accepted is None:
            return key
        return lambda node: key(node) if accepted(node) else None

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
        nodes = nodes if isinstance(nodes, list) else list(nodes)
        signature = self._signature(spec)
        if signature is not None:
            pos = self._placements.get(signature, lambda: self._judge(spec)).best(nodes)
            if pos is not None:
                return nodes[pos]
            # no node takes it: the filters in order say why
        try:
            return self._strategy.pick(spec, self.candidates(spec, nodes, soft=True))
        except NoSuitableNode:
            if not spec.has_soft_rules:
                raise
            return self._strategy.pick(spec, self.candidates(spec, nodes, soft=False))
