"""A campaigning manager's heartbeats: leadership lasts only while the manager proves it is alive.

The discovery daemon holds the leader key for a `token://` manager while that manager's Campaign
stream is open. An open TCP connection does not prove the manager works (a hung or stopped process
keeps it open), so the manager sends a numbered heartbeat every third of the confirmation window
and `while_alive` ends the campaign when none arrived within the window. `Heartbeats.before` names
the heartbeat each confirmation answers, which lets the manager count its leadership from when it
sent that heartbeat rather than from when the confirmation reached it.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator

from swarmd.common.membership.etcd_election import LeaderState

KEEP = 64   # heartbeats remembered: many confirmation windows' worth


class Heartbeats:
    """The heartbeats received from one manager: their numbers and when they arrived."""

    def __init__(self, first: int = 0):
        self._received: deque[tuple[float, int]] = deque([(time.monotonic(), first)], maxlen=KEEP)
        self.silent = False     # set when the campaign ended for want of a heartbeat

    def record(self, number: int, at: float | None = None) -> None:
        self._received.append((time.monotonic() if at is None else at, number))

    @property
    def last_at(self) -> float:
        return self._received[-1][0]

    def before(self, when: float | None) -> int:
        """The number of the last heartbeat received at or before `when` (monotonic; None: now).
        0 (the first request, sent before any heartbeat) when none that old is remembered."""
        if when is None:
            return self._received[-1][1]
        for at, number in reversed(self._received):
            if at <= when:
                return number
        return 0


async def _record(requests: AsyncIterator, heartbeats: Heartbeats) -> None:
    async for request in requests:
        heartbeats.record(request.heartbeat)


async def while_alive(states: AsyncIterator[LeaderState], requests: AsyncIterator, heartbeats: Heartbeats,
                      window: float) -> AsyncIterator[LeaderState]:
    """Passes on `states` while a heartbeat from `requests` arrives at least every `window` seconds.

    Ends quietly when the manager closes its side or `states` ends; ends with `heartbeats.silent`
    set when the manager fell silent. The caller closes `states` (releasing leadership).
    """
    reader = asyncio.ensure_future(_record(requests, heartbeats))
    iterator = states.__aiter__()
    pending: asyncio.Future | None = None
    try:
        while True:
            timeout = heartbeats.last_at + window - time.monotonic()
            if timeout <= 0:
                heartbeats.silent = True
                return
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({pending, reader}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                reader.result()     # a broken stream raises; a closed one ends the campaign
                return
            if pending in done:
                task, pending = pending, None
                try:
                    state = task.result()
                except StopAsyncIteration:
                    return
                yield state
    finally:
        for task in (pending, reader):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (pending, reader) if t is not None), return_exceptions=True)
