"""Per-stage times of one call on the hot path, logged when SWARMD_STAGE_TIMES=1.

`stages("create")` gives a clock whose `mark(name)` records the microseconds since the previous
mark; `done(log)` logs them as one line, `stage times what=create decide=85us rpc=2110us …`,
which bench/latency.py reads back. Switched off (the default) it is a shared no-op object, so a
call pays one method call per mark and nothing else.
"""
from __future__ import annotations

import os
import time

ENV = "SWARMD_STAGE_TIMES"
ENABLED = os.environ.get(ENV, "") not in ("", "0")


class _Off:
    def mark(self, name: str) -> None:
        pass

    def done(self, log, **fields) -> None:
        pass


class StageClock:
    """The stages of one call, each the time since the previous mark (or since it was made)."""

    def __init__(self, what: str, began: int = 0):
        self.what = what
        # CLOCK_MONOTONIC: one clock for every process, so lines of two daemons line up
        self.last = self.began = began or time.perf_counter_ns()
        self.marks: list[tuple[str, int]] = []

    def mark(self, name: str) -> None:
        now = time.perf_counter_ns()
        self.marks.append((name, now - self.last))
        self.last = now

    def fields(self) -> dict[str, str]:
        return {name: f"{ns // 1000}us" for name, ns in self.marks}

    def done(self, log, **fields) -> None:
        log.info("stage times", what=self.what, **fields, **self.fields(), began=self.began)


OFF = _Off()     # what a caller passes where no call is being timed


def stages(what: str, began: int = 0) -> StageClock | _Off:
    """A clock for the call `what` when stage times are on, else the shared no-op; `began`, a
    time.perf_counter_ns() reading, starts it earlier than now (when the request came)."""
    return StageClock(what, began) if ENABLED else OFF
