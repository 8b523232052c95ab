"""Leader election in etcd: one lease-bound key per cluster, held by the primary manager.

Used by the discovery daemon (for `token://` clusters) and by managers of `etcd://` clusters.

    /swarmd/clusters/<hash>/replication/leader   the primary's advertised address (token://)
    <PREFIX>/replication/leader                   the same under an etcd:// prefix

A candidate puts the key only if it does not exist (create revision 0), under its own lease, and
renews the lease every third of its TTL. It is leader while the key holds its lease. A leader
that has not renewed for two thirds of the TTL says so (`elected=False`) before etcd could let
anyone else in, so two managers never both believe they are primary. Others watch the key and
campaign again as soon as it is deleted (lease revoked or expired).

Each elected state carries `confirmed_at`, the monotonic time the lease was granted or its
renewal started: the lease is known to outlive `confirmed_at + confirm_within(ttl)`, so a reader
may act as leader until then and no longer.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aetcd
import aetcd.exceptions
import aetcd.rtypes

from swarmd.common import logs
from swarmd.common.membership.etcd_store import EtcdStore, StoreUnavailable, lease_seconds

log = logs.get("membership.election")

CONFIRM_SLACK = 0.2      # seconds a confirmation may take to travel from where the lease is renewed


def confirm_within(ttl: float) -> float:
    """How long a leader may act on its last confirmation: two thirds of the lease plus a little
    slack, well before etcd could let another candidate in. The discovery daemon also waits this
    long for a manager's heartbeat before it releases that manager's leadership."""
    return lease_seconds(ttl) * 2 / 3 + CONFIRM_SLACK


def heartbeat_period(ttl: float) -> float:
    """How often a campaigning manager proves it is alive: three heartbeats per confirmation
    window, so one late heartbeat never costs leadership."""
    return confirm_within(ttl) / 3


def leader_key(base: str) -> str:
    return f"{base.rstrip('/')}/replication/leader"


@dataclass(frozen=True)
class LeaderState:
    """Who leads now ("" while unknown) and whether that is the candidate itself; while elected,
    `confirmed_at` (monotonic, this process) is when the lease was last known to be renewed
    (None: at the moment the state is read). Equality ignores `confirmed_at`."""

    leader: str
    elected: bool
    confirmed_at: float | None = field(default=None, compare=False)


class _Lost(Exception):
    """Leadership could not be confirmed in time, or the key is no longer ours."""


async def campaign(store: EtcdStore, key: str, candidate: str, ttl: float,
                   retry: float = 0.5) -> AsyncIterator[LeaderState]:
    """Runs until closed: campaigns for `key` and yields every change of leadership.

    While elected it also yields a state after each successful renewal, so a reader can tell
    a confirmed leadership from a silent one. When closed while elected it revokes its lease,
    which hands leadership over at once.
    """
    seconds = lease_seconds(ttl)
    renew_every = seconds / 3
    confirm_within = seconds * 2 / 3
    bkey, value = key.encode(), candidate.encode()
    lease_id = 0
    last: LeaderState | None = None
    try:
        while True:
            try:
                granted = time.monotonic()
                lease_id = await store.run(lambda c: _grant(c, seconds))
                won = await store.run(lambda c: _try_acquire(c, bkey, value, lease_id))
                if won:
                    log.info("elected primary", candidate=candidate, ttl=f"{seconds}s")
                    last = LeaderState(candidate, True, granted)
                    yield last
                    async with contextlib.aclosing(
                            _hold(store, bkey, lease_id, candidate, renew_every, confirm_within)) as held:
                        async for state in held:
                            yield state
                    # _hold only returns by raising _Lost
                await _revoke(store, lease_id)
                lease_id = 0
                async with contextlib.aclosing(_observe(store, bkey, seconds)) as holders:
                    async for holder in holders:
                        if holder == candidate:
                            # a lease of ours from before (etcd restarted, or this address restarted):
                            # nobody else can be using the address, so free the key and campaign again
                            await store.run(lambda c: _release(c, bkey, value))
                            break
                        state = LeaderState(holder, False)
                        if state != last:
                            last = state
                            yield state
                        if not holder:
                            break
            except _Lost as exc:
                log.warning("leadership lost", candidate=candidate, reason=str(exc))
                last = LeaderState("", False)
                yield last
                with contextlib.suppress(Exception):
                    await _revoke(store, lease_id)
                lease_id = 0
                await asyncio.sleep(retry)
            except StoreUnavailable as exc:
                if last is None or last.leader or last.elected:
                    log.warning("election: etcd unavailable", error=str(exc))
                    last = LeaderState("", False)
                    yield last
                await asyncio.sleep(retry)
    finally:
        if lease_id:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(_revoke(store, lease_id), 1.0)


async def _grant(c: aetcd.Client, seconds: int) -> int:
    return (await c.lease(seconds)).id


async def _try_acquire(c: aetcd.Client, key: bytes, value: bytes, lease_id: int) -> bool:
    tx = c.transactions
    ok, _ = await c.transaction(compare=[tx.create(key) == 0], success=[tx.put(key, value, lease=lease_id)],
                                failure=[])
    return bool(ok)


async def _release(c: aetcd.Client, key: bytes, value: bytes) -> None:
    tx = c.transactions
    await c.transaction(compare=[tx.value(key) == value], success=[tx.delete(key)], failure=[])


async def _revoke(store: EtcdStore, lease_id: int) -> None:
    if not lease_id:
        return

    async def op(c: aetcd.Client) -> None:
        try:
            await c.revoke_lease(lease_id)
        except aetcd.exceptions.ClientError as exc:
            if "not found" not in str(exc).lower():
                raise
    await store.run(op)


async def _hold(store: EtcdStore, key: bytes, lease_id: int, candidate: str, renew_every: float,
                confirm_within: float) -> AsyncIterator[LeaderState]:
    """Renews the lease; yields a confirmation each time; raises _Lost when it cannot."""
    confirmed = time.monotonic()
    while True:
        await asyncio.sleep(renew_every)
        started = time.monotonic()
        remaining = confirm_within - (started - confirmed)
        if remaining <= 0:
            raise _Lost(f"lease not renewed for {confirm_within:.1f}s")

        async def renew(c: aetcd.Client) -> None:
            reply = await c.refresh_lease(lease_id)
            if reply is None or reply.TTL <= 0:
                raise _Lost(f"lease {lease_id:x} expired")
            kv = await c.get(key)
            if kv is None or kv.lease != lease_id:
                raise _Lost("the leader key is no longer held by this lease")
        try:
            await asyncio.wait_for(store.run(renew), remaining)
        except (StoreUnavailable, asyncio.TimeoutError) as exc:
            if time.monotonic() - confirmed >= confirm_within:
                raise _Lost(f"cannot renew the leader lease: {exc or 'timed out'}") from None
            continue
        confirmed = started
        yield LeaderState(candidate, True, started)


async def _observe(store: EtcdStore, key: bytes, seconds: int) -> AsyncIterator[str]:
    """The current holder, then each change. Ends after yielding "" (the key is free), or
    quietly after a lease period without news, so the caller checks again with a fresh read."""
    holder, revision = await store.run(lambda c: _read(c, key))
    yield holder
    if not holder:
        return
    watch = store.watch_prefix(key, revision + 1)
    try:
        while True:
            try:
                event = await asyncio.wait_for(watch.__anext__(), seconds)
            except asyncio.TimeoutError:
                return
            except StopAsyncIteration:
                raise StoreUnavailable("leader watch ended") from None
            if event.kind == aetcd.rtypes.EventKind.DELETE:
                yield ""
                return
            yield event.kv.value.decode(errors="replace")
    finally:
        await watch.aclose()


async def _read(c: aetcd.Client, key: bytes) -> tuple[str, int]:
    """(holder or "", the store revision the read saw)."""
    listing = await c.get_prefix(key)
    for kv in listing:
        if kv.key == key:
            return kv.value.decode(errors="replace"), listing.header.revision
    return "", listing.header.revision


async def current_leader(store: EtcdStore, key: str) -> str:
    """The leader's address, or "" when there is none."""
    holder, _ = await store.run(lambda c: _read(c, key.encode()))
    return holder
