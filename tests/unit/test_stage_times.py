"""Stage times: off by default (a shared no-op), on: one line of per-stage microseconds a call."""
from __future__ import annotations

import re
import time

from swarmd.common import stage_times
from swarmd.common.stage_times import OFF, StageClock


class Captured:
    def __init__(self):
        self.lines = []

    def info(self, msg, **fields):
        self.lines.append((msg, fields))


def test_off_unless_the_environment_asks():
    assert stage_times.ENV == "SWARMD_STAGE_TIMES"
    if not stage_times.ENABLED:
        assert stage_times.stages("create") is OFF
    log = Captured()
    OFF.mark("decide")
    OFF.done(log)
    assert log.lines == []


def test_each_mark_is_the_time_since_the_one_before():
    clock = StageClock("create")
    clock.mark("decide")
    clock.mark("rpc")
    assert [name for name, _ in clock.marks] == ["decide", "rpc"]
    assert all(ns >= 0 for _, ns in clock.marks)
    log = Captured()
    clock.done(log, node="n1")
    msg, fields = log.lines[0]
    assert msg == "stage times" and fields["what"] == "create" and fields["node"] == "n1"
    assert re.fullmatch(r"\d+us", fields["decide"]) and re.fullmatch(r"\d+us", fields["rpc"])
    # when the clock began, on the clock every process shares: lines of two daemons line up
    assert isinstance(fields["began"], int) and fields["began"] <= time.perf_counter_ns()
