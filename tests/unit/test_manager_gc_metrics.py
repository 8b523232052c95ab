"""The manager's garbage collector pauses, as its /metrics shows them."""
from __future__ import annotations

import gc

from prometheus_client import generate_latest

from swarmd.manager import metrics


def _count(text: str, generation: str) -> float:
    prefix = f'swarmd_manager_gc_pause_seconds_count{{generation="{generation}"}} '
    return sum(float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix))


def test_every_collection_is_timed_and_the_longest_kept():
    pauses = metrics.watch_gc()
    assert metrics.watch_gc() is pauses                       # installed once
    before = _count(generate_latest(metrics.REGISTRY).decode(), "2")
    garbage = [[i] for i in range(200_000)]                   # something for a full collection to walk
    gc.collect()
    text = generate_latest(metrics.REGISTRY).decode()
    assert _count(text, "2") >= before + 1
    assert pauses.longest > 0
    shown = [float(line.split()[1]) for line in text.splitlines()
             if line.startswith("swarmd_manager_gc_pause_max_seconds ")]
    assert shown == [pauses.longest]
    # the same pause in CPU time: the collector's own work, never more than the wall pause by much
    cpu = [float(line.split()[1]) for line in text.splitlines()
           if line.startswith("swarmd_manager_gc_pause_cpu_max_seconds ")]
    assert cpu == [pauses.longest_cpu] and 0 < pauses.longest_cpu
    del garbage


def test_the_scheduling_histogram_resolves_two_milliseconds():
    # the scale bench reads placement p99 from these buckets against a 2 ms target
    for histogram in (metrics.SCHEDULING_LATENCY, metrics.SCHEDULING_CPU):
        bounds = histogram._upper_bounds
        assert 0.002 in bounds and 0.0015 in bounds and 0.003 in bounds


def test_a_long_pause_is_logged_from_the_event_loop_with_its_generation_cpu_and_what_it_freed(caplog, monkeypatch):
    import asyncio

    def logged() -> list[dict]:
        return [r.fields for r in caplog.records if r.getMessage() == "long garbage collection pause"]

    async def collect_then_let_the_loop_run() -> int:
        cycle = [[]]
        cycle[0].append(cycle)
        del cycle
        gc.collect(1)                                             # a middle collection, freeing the cycle
        during = len(logged())                                    # nothing logged inside the collection
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return during

    pauses = metrics.GcPauses()
    monkeypatch.setattr(metrics, "LONG_GC_PAUSE", 0.0)             # every pause is long
    caplog.set_level("WARNING")
    pauses.install()
    try:
        during = asyncio.run(collect_then_let_the_loop_run())
        gc.collect(1)                                             # outside a loop: counted, not logged
    finally:
        pauses.uninstall()
    middle = [e for e in logged() if e["generation"] == 1 and e["collected"] >= 2]
    assert during == 0 and middle
    assert middle[0]["cpu_ms"] >= 0 and middle[0]["wall_ms"] >= 0
    monkeypatch.setattr(metrics, "LONG_GC_PAUSE", 3600.0)          # none is long: nothing logged
    caplog.clear()
    pauses.install()
    try:
        asyncio.run(collect_then_let_the_loop_run())
    finally:
        pauses.uninstall()
    assert not logged()
