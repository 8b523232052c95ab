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
        keeps = p.keeps
        late = [[i] for i in range(2000)]                # made right after: the next call is too soon
        gc_policy.keep_long_lived()
        assert gc.get_freeze_count() == kept and _in_generations(late[-1])
        now[0] += gc_policy.KEEP_SETTLE                  # the interval (and the settle) is over
        await _until(lambda: p.keeps > keeps)
        assert not _in_generations(late[-1])              # frozen
        assert gc.get_freeze_count() > kept
    finally:
        p.uninstall()
        gc.unfreeze()


async def test_what_is_made_right_after_a_keep_is_frozen_once_the_settle_is_over():
    """A node's event stream starts once its records are kept: it is frozen by the freeze that
    follows the last call, not walked by the next full collection."""
    from swarmd.manager import gc_policy
    now = [100.0]
    p = GcPolicy(clock=lambda: now[0])
    gc.unfreeze()
    p.install()
    try:
        gc_policy.keep_long_lived()                      # not too soon: kept at once
        assert p.keeps == 1
        stream = [[i] for i in range(2000)]              # made right after, and no call follows
        assert _in_generations(stream[-1])
        now[0] += gc_policy.KEEP_SETTLE
        await _until(lambda: p.keeps == 2)
        assert not _in_generations(stream[-1])
        assert p._timer is None                          # nothing more is due: no freeze without a call
    finally:
        p.uninstall()
        gc.unfreeze()


async def test_uninstall_cancels_the_freeze_that_was_due():
    from swarmd.manager import gc_policy
    p = GcPolicy()
    gc.unfreeze()
    p.install()
    try:
        gc_policy.keep_long_lived()
        timer = p._timer
        assert timer is not None
    finally:
        p.uninstall()
        gc.unfreeze()
    assert timer.cancelled() and p._timer is None


def test_a_keep_is_done_at_once_unless_within_keep_every_of_the_last_freeze():
    from swarmd.manager.gc_policy import KEEP_EVERY, keep_now
    assert keep_now(100.0, float("-inf"))
    assert not keep_now(100.0 + KEEP_EVERY / 2, 100.0)
    assert keep_now(100.0 + KEEP_EVERY, 100.0)


def test_every_keep_is_followed_by_a_freeze_settle_seconds_later_but_not_sooner_than_keep_every():
    from swarmd.manager.gc_policy import KEEP_EVERY, KEEP_SETTLE, keep_due
    assert keep_due(frozen_at=100.0, asked_at=100.0) == 100.0 + KEEP_SETTLE     # the call's own freeze
    assert keep_due(frozen_at=float("-inf"), asked_at=5.0) == 5.0 + KEEP_SETTLE
    # calls keep coming (a sync): due after the last of them
    assert keep_due(frozen_at=100.0, asked_at=100.4) == 100.4 + KEEP_SETTLE
    # a freeze (a full collection's) came after the settle: nothing more is due
    assert keep_due(frozen_at=100.0 + KEEP_SETTLE, asked_at=100.0) is None
    # … and a freeze that came just before the settle's end puts the next one KEEP_EVERY after it
    assert keep_due(frozen_at=100.9, asked_at=100.0, settle=1.0, every=0.5) == 101.4
    assert keep_due(frozen_at=100.2, asked_at=100.0, settle=1.0, every=0.5) == 101.0


def test_the_old_generation_is_frozen_after_a_middle_collection_once_it_holds_old_max_objects():
    from swarmd.manager.gc_policy import OLD_MAX, old_too_many
    assert not old_too_many(OLD_MAX - 1)
    assert old_too_many(OLD_MAX)
    assert old_too_many(5, limit=5)


def test_a_burst_of_long_lived_objects_is_frozen_by_a_middle_collection_not_walked_by_a_full_one():
    from swarmd.manager.gc_policy import OLD_MAX
    p = GcPolicy()
    gc.unfreeze()
    p.install()
    gc.disable()                                   # only this test's collections
    try:
        few = [[i] for i in range(OLD_MAX // 4)]
        gc.collect(1)                              # survivors to the old generation: not enough yet
        assert p.old_freezes == 0 and _in_generations(few[-1])
        burst = [[i] for i in range(OLD_MAX)]      # the event streams of a sync's last nodes
        gc.collect(1)
        assert p.old_freezes == 1 and p.freezes == 0
        assert not _in_generations(burst[-1]) and not _in_generations(few[-1])
    finally:
        gc.enable()
        p.uninstall()
        gc.unfreeze()


def test_after_the_fallback_thaw_middle_collections_leave_the_old_generation_to_the_full_one(policy):
    from swarmd.manager.gc_policy import OLD_MAX
    kept = [[i] for i in range(OLD_MAX)]
    gc.collect()
    policy.now[0] = 11                              # thaw due
    gc.collect()
    assert policy.thaws == 1 and gc.get_freeze_count() == 0
    gc.collect(1)                                   # far more than OLD_MAX old objects: left alone
    assert policy.old_freezes == 0 and gc.get_freeze_count() == 0 and _in_generations(kept[-1])
    gc.collect()                                    # the full collection walks them, then freezes
    assert gc.get_freeze_count() >= len(kept)
    gc.collect(1)
    assert policy.old_freezes == 0                  # nothing left unfrozen to count


async def _until(cond, timeout: float = 10.0) -> None:
    """Waits for the policy's freeze, which runs in this event loop."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "the freeze that was due did not come"
        await asyncio.sleep(0.02)


def _in_generations(obj) -> bool:
    """Whether the collector still walks `obj` (it is in generation 0, 1 or 2, not frozen)."""
    return any(o is obj for g in (0, 1, 2) for o in gc.get_objects(g))
