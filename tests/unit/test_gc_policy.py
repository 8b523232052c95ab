"""The manager's garbage-collection policy, on this process's real collector."""
import asyncio
import gc
import weakref

import pytest

from swarmd.manager.gc_policy import GcPolicy


class Node:
    def __init__(self):
        self.other = self      # a reference cycle: only the collector frees it


@pytest.fixture
def policy():
    now = [0.0]
    p = GcPolicy(thaw_every=10, clock=lambda: now[0])
    p.now = now
    gc.unfreeze()
    p.install()
    yield p
    p.uninstall()
    gc.unfreeze()


def test_survivors_of_a_full_collection_are_frozen_and_young_collections_leave_them(policy):
    kept = [[i] for i in range(1000)]
    gc.collect()
    assert policy.freezes == 1 and policy.thaws == 0
    assert gc.get_freeze_count() >= len(kept)
    gc.collect(0)
    gc.collect(1)
    assert policy.freezes == 1


def test_a_cycle_among_frozen_objects_is_freed_after_the_thaw(policy):
    cycle = Node()
    alive = weakref.ref(cycle)
    gc.collect()                   # the cycle survives (still referenced) and is frozen
    del cycle
    gc.collect()                   # walks only what is not frozen
    assert alive() is not None and policy.freezes == 2
    policy.now[0] = 11             # thaw due: this full collection hands the frozen objects back
    gc.collect()
    assert policy.thaws == 1 and gc.get_freeze_count() == 0
    gc.collect()                   # walks everything once, then freezes again
    assert alive() is None
    assert policy.freezes == 3 and gc.get_freeze_count() > 0


def test_install_is_idempotent_and_uninstall_removes_it():
    p = GcPolicy()
    p.install()
    p.install()
    assert gc.callbacks.count(p._on_gc) == 1
    p.uninstall()
    assert p._on_gc not in gc.callbacks


async def test_a_keep_too_soon_after_the_last_is_done_once_the_interval_is_over():
    from swarmd.manager import gc_policy
    now = [100.0]
    p = GcPolicy(clock=lambda: now[0])
    gc.unfreeze()
    p.install()
    try:
        gc_policy.keep_long_lived()                      # kept now
        kept = gc.get_freeze_count()
        late = [[i] for i in range(2000)]                # made right after: the next call is too soon
        gc_policy.keep_long_lived()
        assert gc.get_freeze_count() == kept and _in_generations(late[-1])
        now[0] += gc_policy.KEEP_EVERY                   # the interval is over when the deferred keep runs
        await asyncio.sleep(gc_policy.KEEP_EVERY + 0.1)
        assert not _in_generations(late[-1])              # frozen
        assert gc.get_freeze_count() > kept
    finally:
        p.uninstall()
        gc.unfreeze()


def _in_generations(obj) -> bool:
    """Whether the collector still walks `obj` (it is in generation 0, 1 or 2, not frozen)."""
    return any(o is obj for g in (0, 1, 2) for o in gc.get_objects(g))
