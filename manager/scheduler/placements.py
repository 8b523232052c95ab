"""Remembered placements: what one kind of container needs, kept up to date node by node.

Successive decisions see almost the same cluster: between two creates only the nodes whose
containers changed have new snapshots. For one placement signature (the spec's hard rules, ports
and requested resources) a `Placement` keeps, per node position, the serial of the snapshot it
judged and a heap of the accepted nodes by strategy key. A decision re-judges only the positions
whose serial changed, then reads the heap top: O(changed nodes · log n) instead of every filter
over every node.

A decision is answered here only when the filters and the fit check are node-local and the
strategy orders nodes by a key (spread, binpack), with no soft rules; otherwise, and whenever no
node is accepted (to word the error), the scheduler runs its filters in order.
"""
from __future__ import annotations

import heapq
import operator
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from swarmd.manager.scheduler.snapshot import serials

if TYPE_CHECKING:
    from swarmd.manager.scheduler.snapshot import NodeSnapshot

# (accepted by every filter and fits) -> strategy key, else None
Judge = Callable[["NodeSnapshot"], "tuple | None"]


class Placement:
    """One placement signature's verdicts over the last node list it saw."""

    __slots__ = ("_judge", "_serials", "_heap")

    def __init__(self, judge: Judge):
        self._judge = judge
        self._serials: list[int] = []
        self._heap: list[tuple] = []    # (key, position, serial); stale when the position's serial moved on

    def best(self, nodes: list[NodeSnapshot]) -> int | None:
        """The position in `nodes` of the node to choose (the first one among equal keys), or None."""
        current = serials(nodes)
        old = self._serials
        if len(current) != len(old):
            self._rebuild(nodes, current)
        elif current != old:
            self._update(nodes, current, old)
        heap = self._heap
        while heap:
            _, pos, serial = heap[0]
            if current[pos] == serial:
                return pos
            heapq.heappop(heap)
        return None

    def _rebuild(self, nodes: list[NodeSnapshot], current: list[int]) -> None:
        judge = self._judge
        heap = []
        for pos, node in enumerate(nodes):
            key = judge(node)
            if key is not None:
                heap.append((key, pos, current[pos]))
        heapq.heapify(heap)
        self._heap = heap
        self._serials = current

    def _update(self, nodes: list[NodeSnapshot], current: list[int], old: list[int]) -> None:
        changed = list(map(operator.ne, current, old))
        if changed.count(True) * 4 > len(current):
            self._rebuild(nodes, current)
            return
        judge, heap = self._judge, self._heap
        pos = -1
        while True:
            try:
                pos = changed.index(True, pos + 1)
            except ValueError:
                break
            key = judge(nodes[pos])
            if key is not None:
                heapq.heappush(heap, (key, pos, current[pos]))
        self._serials = current
        if len(heap) > 2 * len(current) + 64:     # mostly stale entries: keep the live ones
            live = [e for e in heap if current[e[1]] == e[2]]
            heapq.heapify(live)
            self._heap = live


class Placements:
    """The `Placement`s of the most recently used signatures (at most `capacity`)."""

    def __init__(self, capacity: int = 32):
        self._capacity = capacity
        self._items: OrderedDict[object, Placement] = OrderedDict()

    def get(self, signature: object, make_judge: Callable[[], Judge]) -> Placement:
        p = self._items.get(signature)
        if p is None:
            p = self._items[signature] = Placement(make_judge())
            if len(self._items) > self._capacity:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(signature)
        return p

    def __len__(self) -> int:
        return len(self._items)
