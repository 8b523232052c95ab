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
"""
from __future__ import annotations

import gc
import time
from collections.abc import Callable

THAW_EVERY = 3600.0


class GcPolicy:
    """Installs itself as a `gc.callbacks` entry; `freezes`/`thaws` count what it did."""

    def __init__(self, thaw_every: float = THAW_EVERY, clock: Callable[[], float] = time.monotonic):
        self.thaw_every = thaw_every
        self._clock = clock
        self._thaw_at = clock() + thaw_every
        self.freezes = 0
        self.thaws = 0

    def install(self) -> None:
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

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
