"""Garbage collection for a manager holding tens of thousands of inspect documents.

The cluster view keeps millions of objects that live as long as their containers. A full
collection walks every tracked object (about 0.4 s for 30,000 containers on a 2-CPU machine),
and CPython starts one whenever the objects that outlived the young generations reach a quarter
of the last full collection's survivors: during the initial sync, and every few `docker ps -a`
over 30,000 containers, whose entries outlive the young collections while the reply is built.

The policy: the survivors of every full collection are frozen (`gc.freeze`), so the next full
collection walks only what was allocated since. Reference cycles that form later among frozen
objects are not collected while they stay frozen, so every `thaw_every` seconds the frozen
objects are handed back (`gc.unfreeze`) and the full collection after that walks everything
once, then freezes again. Objects without cycles (inspect documents, records, snapshots) are
freed by reference counting whether frozen or not.

A full collection then walks what reached the oldest generation since the last one. Two settings
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
  middle collections at all, let alone a full one.
"""
from __future__ import annotations

import gc
import time
from collections.abc import Callable

THAW_EVERY = 3600.0
FULL_EVERY = 2


def keep_long_lived() -> None:
    """Moves every object alive now out of the collector's generations (`gc.freeze`): called
    right after a bulk of long-lived objects was built. Cheap (the generations' lists are
    spliced); what is garbage among them is still freed by reference counting, and cycles after
    the policy's next thaw."""
    gc.freeze()


class GcPolicy:
    """Installs itself as a `gc.callbacks` entry; `freezes`/`thaws` count what it did."""

    def __init__(self, thaw_every: float = THAW_EVERY, clock: Callable[[], float] = time.monotonic,
                 full_every: int = FULL_EVERY):
        self.thaw_every = thaw_every
        self.full_every = full_every
        self._thresholds: tuple[int, int, int] | None = None
        self._clock = clock
        self._thaw_at = clock() + thaw_every
        self.freezes = 0
        self.thaws = 0

    def install(self) -> None:
        if self._on_gc in gc.callbacks:
            return
        gc.collect()
        gc.freeze()
        gc.collect()                 # walks nothing: the count of long-lived objects starts at zero
        self._thresholds = gc.get_threshold()
        young, middle, _ = self._thresholds
        gc.set_threshold(young, middle, self.full_every)
        gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None

    def _on_gc(self, phase: str, info: dict) -> None:
        # called by the collector, in whatever thread triggered it: no allocation-heavy work here
        if phase != "stop" or info.get("generation") != 2:
            return
        now = self._clock()
        if now >= self._thaw_at:
            self._thaw_at = now + self.thaw_every
            gc.unfreeze()        # the next full collection looks at every object once
            self.thaws += 1
            return
        gc.freeze()
        self.freezes += 1
