"""Leadership that depends on liveness: the discovery daemon's heartbeat watch on a Campaign stream,
and the manager counting each confirmation from when it sent the heartbeat it answers."""
from __future__ import annotations

import asyncio
import time

from swarmd.discovery.liveness import Heartbeats, while_alive
from swarmd.manager.election import UNKNOWN, follow_leadership
from swarmd.common.membership.etcd_election import LeaderState, confirm_within, heartbeat_period


class Beat:
    def __init__(self, number: int):
        self.heartbeat = number


async def _beats(count: int, every: float, then_hold: float = 60.0):
    for i in range(1, count + 1):
        await asyncio.sleep(every)
        yield Beat(i)
    await asyncio.sleep(then_hold)


async def _states(every: float, count: int = 1000):
    for _ in range(count):
        yield LeaderState("me:1", True, time.monotonic())
        await asyncio.sleep(every)


def _run_alive(requests, heartbeats, window, states=None):
    async def main():
        got = []
        async for state in while_alive(states or _states(0.01), requests, heartbeats, window):
            got.append(state)
        return got
    return asyncio.run(asyncio.wait_for(main(), 10))


def test_heartbeats_name_the_last_one_received_before_a_time():
    hb = Heartbeats()
    t0 = hb.last_at
    hb.record(1, at=t0 + 1)
    hb.record(2, at=t0 + 2)
    assert hb.before(t0 + 1.5) == 1
    assert hb.before(t0 + 2) == 2
    assert hb.before(t0 - 1) == 0        # older than anything remembered: the first request
    assert hb.before(None) == 2


def test_a_silent_manager_loses_the_campaign_and_a_beating_one_keeps_it():
    silent = Heartbeats()
    got = _run_alive(_beats(0, 0.0), silent, window=0.3)
    assert silent.silent and got          # states flowed until the window passed

    alive = Heartbeats()
    got = _run_alive(_beats(20, 0.05, then_hold=0.0), alive, window=0.3, states=_states(0.01))
    # the manager closed its side after 20 beats (~1 s, over 3 windows): a quiet end, not silence
    assert not alive.silent and alive.before(None) == 20 and len(got) > 30


def test_states_ending_ends_the_campaign():
    hb = Heartbeats()
    got = _run_alive(_beats(100, 0.05), hb, window=0.3, states=_states(0.0, count=3))
    assert len(got) == 3 and not hb.silent


def test_a_confirmation_older_than_the_window_does_not_make_a_primary():
    """What a thawed manager reads from its socket buffer: elected states confirmed long ago."""
    stale = LeaderState("me:1", True, time.monotonic() - 10)
    other = LeaderState("other:1", False)
    seen: list[LeaderState] = []

    async def feed():
        for s in (other, stale, stale):
            yield s
    asyncio.run(follow_leadership(feed(), 3.0, seen.append))
    assert seen == [other, UNKNOWN]


def test_a_fresh_confirmation_counts_from_when_it_was_confirmed():
    window = confirm_within(2.0)
    me = LeaderState("me:1", True, time.monotonic() - window + 0.3)    # 0.3 s of leadership left
    seen: list[LeaderState] = []

    async def main():
        async def feed():
            yield me
            await asyncio.sleep(60)
        started = time.monotonic()
        task = asyncio.create_task(follow_leadership(feed(), 2.0, seen.append))
        while len(seen) < 2 and time.monotonic() - started < 5:
            await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    asyncio.run(main())
    assert seen == [me, UNKNOWN]


def test_heartbeats_fit_three_times_in_the_window():
    for ttl in (2.0, 3.0, 10.0):
        assert heartbeat_period(ttl) * 3 <= confirm_within(ttl) < ttl + 1
