"""Random: any node the container fits on, uniformly (mostly for testing and debugging)."""
from __future__ import annotations

import random
from typing import TYPE_CHECKING

from swarmd.manager.scheduler.strategies import fitting

if TYPE_CHECKING:
    from swarmd.manager.scheduler.container_spec import ContainerSpec
    from swarmd.manager.scheduler.snapshot import NodeSnapshot


class RandomStrategy:
    name = "random"
    overcommit = 0.0

    def __init__(self, rng: random.Random | None = None):
        self._rng = rng or random.Random()

    def rank(self, spec: ContainerSpec, nodes: list[NodeSnapshot]) -> list[NodeSnapshot]:
        out = list(fitting(spec, nodes, self.overcommit))
        self._rng.shuffle(out)
        return out

    def pick(self, spec: ContainerSpec, nodes: list[NodeSnapshot]) -> NodeSnapshot:
        return self._rng.choice(fitting(spec, nodes, self.overcommit))
