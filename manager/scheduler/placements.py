"""Remembered placements: what one kind of container needs, kept up to date node by node.

Successive decisions see almost the same cluster: between two creates only the nodes whose
containers changed have new snapshots. For one placement signature (the spec's hard rules, ports
and requested resources) a `Placement` keeps, per node position, the snapshot it judged and a heap
of the accepted nodes by strategy key. A decision re-judges only the positions holding another
snapshot object, then reads the heap top: O(changed nodes · log n) instead of every filter
over every node.

A decision is answered here only when the filters and the fit check are node-local and the
strategy orders nodes by a key (spread, binpack), with no soft rules; otherwise, and whenever no
node is accepted (to word the error), the scheduler runs its filters in order.
"""
from __future__ import annotations

import heapq
import itertools
import operator
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swarmd.manager.scheduler.snapshot import NodeSnapshot

# (accepted by every filter and fits) -> strategy key, else None
Judge = Callable[["NodeSnapshot"], "tuple | None"]


class Placement:
    """One placement signature's verdicts over the last node list it saw."""

    __slots__ = ("_judge", "_nodes", "_heap", "_pushes")

    def __init__(self, judge: Judge):
        self._judge = judge
        self._nodes: list[NodeSnapshot] = []   # the snapshots judged, by position
        # (key, position, push number, snapshot); stale when the position holds another snapshot.
        # The push number orders a position's stale and live entries of equal key (snapshots
        # themselves are not ordered)
        self._heap: list[tuple] = []
        self._pushes = itertools.count()

    def best(self, nodes: list[NodeSnapshot]) -> int | None:
        """The position in `nodes` of the node to choose (the first one among equal keys), or None."""
        old = self._nodes
        if len(nodes) != len(old):
            self._rebuild(nodes)
        else:
            # snapshots are immutable, so a position whose object is the one judged is judged: a
            # comparison of references, which reads none of the 1,000s of node objects
            changed = list(map(operator.is_not, nodes, old))
            if True in changed:
                self._update(nodes, changed)
        heap = self._heap
        while heap:
            _, pos, _, judged = heap[0]
            if nodes[pos] is judged:
                return pos
            heapq.heappop(heap)
        return None

    def _rebuild(self, nodes: list[NodeSnapshot]) -> None:
        judge, pushes = self._judge, self._pushes
        heap = []
        for pos, node in enumerate(nodes):
            key = judge(node)
            if key is not None:
                heap.append((key, pos, next(pushes), node))
        heapq.heapify(heap)
        self._heap = heap
        self._nodes = list(nodes)

    def _update(self, nodes: list[NodeSnapshot], changed: list[bool]) -> None:
        if changed.count(True) * 4 > len(nodes):
            self._rebuild(nodes)
            return
        judge, heap = self._judge, self._heap
        pos = -1
        while True:
            try:
                pos = changed.index(True, pos + 1)
            except ValueError:
                break
            node = nodes[pos]
            key = judge(node)
            if key is not None:
                heapq.heappush(heap, (key, pos, next(self._pushes), node))
        self._nodes = list(nodes)
        if len(heap) > 2 * len(nodes) + 64:     # mostly stale entries: keep the live ones
            live = [e for e in heap if nodes[e[1]] is e[3]]
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
