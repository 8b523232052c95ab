"""Remembered placements: what one kind of container needs, kept up to date node by node.

Successive decisions see almost the same cluster: between two creates only the nodes whose
containers changed have new snapshots. For one placement signature (the spec's hard rules, ports
with compose's service identity, and requested resources) a `Placement` keeps, per node position, its verdict on the snapshot it
judged there and a heap of the accepted positions by strategy key. A decision re-judges only the
positions holding another snapshot, then reads the heap top: O(changed nodes · log n) instead of
every filter over every node.

Finding the changed positions must not cost a Python step per node: at 5,000 nodes even a
`map(operator.is_not, …)` over the list (a C call and two reference counts per node, each node
object a likely cache miss) was most of a decision. The node list is compared in blocks of
BLOCK positions with list equality, which compares the blocks' pointers in C and reads a node
object only where the pointers differ; only the blocks that differ are looked at node by node.
A replaced snapshot equal to the one judged (dataclass equality: every field) needs no new
verdict, since a verdict reads nothing but the snapshot's fields.

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

# positions compared at once: a block that holds no new snapshot costs one C comparison of its
# pointers; one that does is read node by node (at most BLOCK identity checks)
BLOCK = 64

_NO_ENTRY = -1          # `_live` of a position whose node was rejected (no heap entry)
_UNJUDGED = object()    # a verdict not known yet (None is a verdict: rejected)


def blocks_of(nodes: list[NodeSnapshot]) -> list[list[NodeSnapshot]]:
    """`nodes` cut into lists of BLOCK positions (the last one shorter)."""
    return [nodes[i:i + BLOCK] for i in range(0, len(nodes), BLOCK)]


class Placement:
    """One placement signature's verdicts over the last node list it saw."""

    __slots__ = ("_judge", "_blocks", "_size", "_keys", "_live", "_heap", "_pushes")

    def __init__(self, judge: Judge):
        self._judge = judge
        self._blocks: list[list[NodeSnapshot]] = []   # the snapshots judged, by position, in blocks
        self._size = -1
        self._keys: list = []           # by position: the verdict on the snapshot judged there
        # by position: the push number of its live heap entry, or _NO_ENTRY. Heap entries are
        # (key, position, push number); one whose push number is not its position's is stale and
        # dropped when it reaches the top. The entries hold no snapshot: stale snapshots are freed
        # as soon as the caller lets them go
        self._live: list[int] = []
        self._heap: list[tuple] = []
        self._pushes = itertools.count()

    def best(self, nodes: list[NodeSnapshot]) -> int | None:
        """The position in `nodes` of the node to choose (the first one among equal keys), or None."""
        if len(nodes) != self._size:
            self._rebuild(nodes)
        else:
            blocks = self._blocks
            for b, start in enumerate(range(0, len(nodes), BLOCK)):
                block = nodes[start:start + BLOCK]
                was = blocks[b]
                # the block judged is let go right away: its nodes, mostly the very objects just
                # sliced, are still in the CPU's cache (let go later, they cost another miss each)
                blocks[b] = block
                if block != was:
                    self._judge_changed(block, was, start)
            if len(self._heap) > 2 * self._size + 64:     # mostly stale entries: keep the live ones
                live = self._live
                entries = [e for e in self._heap if live[e[1]] == e[2]]
                heapq.heapify(entries)
                self._heap = entries
        heap, live = self._heap, self._live
        while heap:
            _, pos, push = heap[0]
            if live[pos] == push:
                return pos
            heapq.heappop(heap)
        return None

    def _rebuild(self, nodes: list[NodeSnapshot]) -> None:
        """Judges a node list of another length (nodes joined or left): a snapshot judged before,
        at whatever position, keeps its verdict."""
        previous = self._blocks      # kept alive until the end: no id() below is reused meanwhile
        known = dict(zip(map(id, itertools.chain.from_iterable(previous)), self._keys))
        judge, pushes = self._judge, self._pushes
        keys: list = []
        live = [_NO_ENTRY] * len(nodes)
        heap = []
        for pos, node in enumerate(nodes):
            key = known.get(id(node), _UNJUDGED)
            if key is _UNJUDGED:
                key = judge(node)
            keys.append(key)
            if key is not None:
                push = next(pushes)
                heap.append((key, pos, push))
                live[pos] = push
        heapq.heapify(heap)
        self._heap, self._keys, self._live = heap, keys, live
        self._blocks, self._size = blocks_of(nodes), len(nodes)
        del previous

    def _judge_changed(self, block: list[NodeSnapshot], was: list[NodeSnapshot], base: int) -> None:
        """Judges the snapshots of `block` (positions from `base`) that are not the ones judged."""
        judge, heap, keys, live, pushes = self._judge, self._heap, self._keys, self._live, self._pushes
        for j in itertools.compress(itertools.count(), map(operator.is_not, block, was)):
            pos = base + j
            key = keys[pos] = judge(block[j])
            if key is None:
                live[pos] = _NO_ENTRY
            else:
                push = live[pos] = next(pushes)
                heapq.heappush(heap, (key, pos, push))


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
