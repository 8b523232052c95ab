"""Garbage collection for a manager holding 150,000 containers: no pause walks the whole heap.

The cluster view keeps millions of objects that live as long as their containers. A full
collection walks every tracked object, and on this 2-CPU machine that costs about 1.3 µs per
tracked object once the heap is large (cache misses: each object's header is read): the view of
5,000 nodes / 150,000 containers makes the collector track 0.6 million objects (a
`ContainerRecord` and a scheduler `ContainerSnapshot` per container, ~60 objects per node: its
view, follow task, coroutines, event queue, lists and client) and a full walk over it took 1.3 s; the
manager's own modules alone (~40,000 objects) take ~35 ms. CPython starts a full
collection whenever the objects that outlived the young generations reach a quarter of the last
full collection's survivors: during the initial sync, and during every few `docker ps -a` over
150,000 containers, whose entries outlive the young collections while the reply is built.

The policy: the survivors of every full collection are frozen (`gc.freeze`), so the next full
collection walks only what was allocated since; frozen objects are never walked again. Objects
without reference cycles (records, snapshots, inspect documents) are still freed by reference
counting when they die, frozen or not; only a reference cycle that becomes garbage while one of
its objects is frozen would stay.

Why no walk of the frozen objects is ever needed (the choice, against the alternatives):
- This used to unfreeze everything every hour so that such cycles got collected: a pause of
  1.3 s at 150,000 containers, and one that grows with the cluster. Making the per-container
  objects untracked instead (records as exact tuples of atomic values) would not bound it: the
  scheduler's snapshots, the per-node objects and the manager's modules alone exceed 50 ms at
  5,000 nodes here, and CPython 3.11 cannot walk a part of the frozen objects (no incremental
  collection, `gc.unfreeze` hands all of them back at once), so a thaw cannot be spread.
- So the frozen objects hold no garbage cycles, by construction and by test: only what a
  collection has just found reachable is frozen (after a full collection; `keep_long_lived`
  collects the young generations first when they are small, so a cycle that has just become
  garbage is freed rather than frozen, and runs at most every KEEP_EVERY seconds); and the
  manager's long-lived objects do not form cycles when they are dropped (tests/unit/
  test_gc_cycles.py churns a real `ClusterView`: containers created and destroyed, nodes lost,
  back, moved to a new address and removed; and Docker API calls through the HTTP server, an
  event stream the client leaves included; then it hands the frozen objects back and finds no
  garbage among them). The churn found three such cycles, now broken where they form: a node
  view dropped with its cancelled follow task, a streamed request with its cancelled handler,
  and every asyncio socket transport of CPython < 3.12, which keeps a bound method of itself
  after its connection is lost (python/cpython gh-100348, fixed in 3.12 only: `install`
  applies the same fix, `_release_transport_cycles`).
- The fallback, a thaw every `thaw_every` seconds, is off by default, and is not bounded:
  on CPython 3.11 no walk of a manager's frozen objects fits in 50 ms here (its modules alone
  take ~35 ms), so a thaw would be the one pause over the target. It is for a small manager,
  or one suspected of holding a cycle the tests do not cover; bench/memory.py shows its cost
  ("the fallback thaw" row) beside the "thaw path" row the default policy is judged on.

A full collection then walks what reached the oldest generation since the last one. These settings
keep that small (bench/memory.py measures the pauses; docs/benchmarks.md, "Memory at scale"):
- at install, what the process holds is frozen, and a second collection (which walks nothing)
  starts the collector's count of long-lived objects from zero, so the first full collection of
  the initial sync does not walk everything read until then (~0.4 s at 30,000 containers);
- a full collection runs after every FULL_EVERY collections of the middle generation (CPython:
  10), so it walks at most that many middle collections' survivors: during a sync or a
  `docker ps -a` over 150,000 containers nearly every object survives, and ten at a time took
  ~60 ms;
- a bulk read (a node's containers, read when it joins) is frozen as soon as it is stored
  (`keep_long_lived`), so the records of a 5,000-node sync are never walked by the young and
  middle collections at all, let alone a full one; and what the caller builds right after (the
  node's event stream) is frozen by one more freeze KEEP_SETTLE after the last call;
- after a middle collection, an old generation holding OLD_MAX unfrozen objects is frozen
  (`old_too_many`): what a burst leaves there (at the end of a 2,000-node sync, every node
  starting its event stream at once, 55,000 gRPC objects within half a second) is never walked,
  and a full collection walks at most about OLD_MAX objects plus one middle generation's
  survivors. Every `gc.freeze` restarts CPython's count towards the next full collection, so
  during such a burst none runs; between bursts, where most objects die young, the old
  generation grows slowly and full collections run as before, collecting what became garbage
  there. What a burst freeze could keep (a cycle that died in the old generation since it
  got there) is what tests/unit/test_gc_cycles.py looks for, as for `keep_long_lived`.
"""
from __future__ import annotations

import asyncio
import gc
import sys
import time
from asyncio import selector_events
from collections.abc import Callable

THAW_EVERY = 3600.0     # the fallback's period, when a caller turns it on (`GcPolicy(thaw_every=…)`)
FULL_EVERY = 2
KEEP_EVERY = 0.5        # s: `keep_long_lived` collects and freezes at most this often under the policy
KEEP_SETTLE = 1.0       # s: … and once more this long after its last call (see `keep_due`)
KEEP_WALK_MAX = 10_000  # young objects `keep_long_lived` collects before freezing (~10 ms here)
OLD_MAX = 20_000        # unfrozen old objects a middle collection leaves before they are frozen
_installed: list[GcPolicy] = []      # the policy installed in this process, if any


def keep_long_lived() -> None:
    """Moves every object alive now out of the collector's generations (`gc.freeze`): called
    right after a bulk of long-lived objects was built. When the young generations are small, a
    collection of them runs first, so a reference cycle that has just become garbage (an
    exception and its traceback, a finished task) is freed rather than frozen forever. They are
    not always small: CPython counts a young allocation off for every tracked object freed, old
    or young, so while a sync frees documents the young generation grows unwalked (40,000
    objects, a 44 ms walk, at the end of a 5,000-node sync); those are frozen unwalked, as
    before, and what could hide among them is left to the tests (tests/unit/test_gc_cycles.py).
    Under the policy, a call within KEEP_EVERY of the last freeze is put off, so 5,000 nodes
    ending their sync do not add 5,000 collections; and every call is followed by one more freeze
    KEEP_SETTLE later (see `keep_due`): what the caller builds right after its bulk (a node's
    event stream, started once its records are stored: ~70 gRPC objects) is frozen too, rather
    than walked by the next full collection (at the end of a 2,000-node sync, 55,000 objects)."""
    policy = _installed[0] if _installed else None
    if policy is not None and not policy.ask_keep():
        return
    _keep()


def _keep() -> None:
    young = gc.get_objects(0)
    small = len(young) + len(gc.get_objects(1)) <= KEEP_WALK_MAX     # counting is not walking: ~1 ms
    del young
    if small:
        gc.collect(1)
    gc.freeze()


def keep_now(now: float, frozen_at: float, every: float = KEEP_EVERY) -> bool:
    """Whether a `keep_long_lived` call at `now` freezes at once: not within `every` of the last
    freeze (the policy's own, or a full collection's)."""
    return now - frozen_at >= every


def keep_due(frozen_at: float, asked_at: float, settle: float = KEEP_SETTLE,
             every: float = KEEP_EVERY) -> float | None:
    """When the policy's next freeze of its own is due, or None: every `keep_long_lived` call (the
    last at `asked_at`) is followed by a freeze at least `settle` after it, and none comes within
    `every` of the last freeze (`frozen_at`)."""
    if frozen_at >= asked_at + settle:
        return None
    return max(asked_at + settle, frozen_at + every)


def old_too_many(unfrozen_old: int, limit: int = OLD_MAX) -> bool:
    """Whether the old generation's unfrozen objects, after a middle collection, are to be frozen
    at once: a full collection walks them all (~0.7–1.3 µs each here), and in a burst of
    long-lived objects (the end of a large sync, where every node starts its event stream: ~70
    gRPC objects each, 55,000 at 2,000 nodes) they reach tens of thousands within one
    KEEP_EVERY. Frozen when they reach `limit`, a full collection walks at most about that many
    plus one middle generation's survivors."""
    return unfrozen_old >= limit


def _release_transport_cycles() -> None:
    """CPython 3.11's `_SelectorSocketTransport` keeps `_read_ready_cb`, a bound method of itself,
    after its connection is lost: each connection ends as a reference cycle, which is kept forever
    once frozen (the manager's HTTP connections, and any other). This is the fix CPython 3.12
    made (gh-100348, PR gh-100349: "Fix ref cycle in _SelectorSocketTransport by removing
    _read_ready_cb in close"), applied where every way a connection ends passes."""
    cls = selector_events._SelectorSocketTransport
    if sys.version_info >= (3, 12) or getattr(cls, "_swarmd_releases_cycle", False):
        return
    lost = cls._call_connection_lost

    def _call_connection_lost(self, exc):
        try:
            lost(self, exc)
        finally:
            self._read_ready_cb = None       # nothing reads a lost connection again

    cls._call_connection_lost = _call_connection_lost
    cls._swarmd_releases_cycle = True


class GcPolicy:
    """Installs itself as a `gc.callbacks` entry; `freezes`/`thaws` count what it did.
    `thaw_every`: None (the default) never hands the frozen objects back (see the module
    docstring); seconds: the fallback, a full walk of every object that often."""

    def __init__(self, thaw_every: float | None = None, clock: Callable[[], float] = time.monotonic,
                 full_every: int = FULL_EVERY, old_max: int = OLD_MAX):
        self.thaw_every = thaw_every
        self.old_max = old_max
        self.full_every = full_every
        self._thresholds: tuple[int, int, int] | None = None
        self._clock = clock
        self._thaw_at = None if thaw_every is None else clock() + thaw_every
        self.frozen_at = float("-inf")      # clock time of the last freeze
        self.freezes = 0
        self.thaws = 0
        self.keeps = 0                      # freezes `keep_long_lived` made under the policy
        self.old_freezes = 0                # freezes after a middle collection (`old_too_many`)
        self._thawed = False                # the fallback handed the frozen objects back
        self._asked_at = float("-inf")      # clock time of the last `keep_long_lived` call
        self._timer: asyncio.TimerHandle | None = None     # the freeze `keep_due` asks for …
        self._timer_loop: asyncio.AbstractEventLoop | None = None    # … in this loop

    def ask_keep(self) -> bool:
        """A `keep_long_lived` call: whether it freezes now; the freeze that follows it is armed
        in the running event loop (none outside one: a caller without a loop freezes at once or
        leaves it to the next call or full collection)."""
        now = self._clock()
        self._asked_at = now
        keep = keep_now(now, self.frozen_at)
        if keep:
            self.frozen_at = now
            self.keeps += 1
        self._arm(now)
        return keep

    def _arm(self, now: float) -> None:
        due = keep_due(self.frozen_at, self._asked_at)
        if due is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._timer is not None and self._timer_loop is loop:
            return                   # armed: it arms itself again for a later call when it runs
        self._timer_loop = loop      # (a timer left in a loop that has ended never runs)
        self._timer = loop.call_later(max(0.0, due - now), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_loop = None
        if self not in _installed:
            return
        now = self._clock()
        due = keep_due(self.frozen_at, self._asked_at)
        if due is not None and now >= due:
            self.frozen_at = now
            self.keeps += 1
            _keep()
        self._arm(now)

    def install(self) -> None:
        if self._on_gc in gc.callbacks:
            return
        _release_transport_cycles()
        gc.collect()
        gc.freeze()
        gc.collect()                 # walks nothing: the count of long-lived objects starts at zero
        self._thresholds = gc.get_threshold()
        young, middle, _ = self._thresholds
        gc.set_threshold(young, middle, self.full_every)
        gc.callbacks.append(self._on_gc)
        _installed[:] = [self]

    def uninstall(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_loop = None
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self in _installed:
            _installed.clear()
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None

    def _on_gc(self, phase: str, info: dict) -> None:
        # called by the collector, in whatever thread triggered it: no allocation-heavy work here
        if phase != "stop":
            return
        if info.get("generation") == 1:
            # the middle collection has just moved its survivors to the old generation and left the
            # young ones empty; counting the old one lists at most OLD_MAX objects (~0.1 ms)
            if not self._thawed and old_too_many(len(gc.get_objects(2)), self.old_max):
                gc.freeze()
                self.old_freezes += 1
                self.frozen_at = self._clock()
            return
        if info.get("generation") != 2:
            return
        self._thawed = False
        if self._thaw_at is not None:
            now = self._clock()
            if now >= self._thaw_at:
                self._thaw_at = now + self.thaw_every
                gc.unfreeze()        # the next full collection looks at every object once
                self._thawed = True  # (and no middle collection freezes them before it)
                self.thaws += 1
                return
        gc.freeze()
        self.freezes += 1
        self.frozen_at = self._clock()
