"""What an etcd call that ends in CancelledError means, and the discovery daemon's check of etcd:
a call cut off by another operation's reset of the connection is etcd's failure, a caller that
is cancelled stays cancelled, and a check that does not end is reported as unreachable."""
from __future__ import annotations

import asyncio

import pytest

from swarmd.common.membership.etcd_store import EtcdStore, StoreUnavailable
from swarmd.discovery.daemon import check_etcd


async def _cut_off(client):
    raise asyncio.CancelledError()             # what a call on a channel closed meanwhile raises


async def test_a_call_cut_off_by_a_closed_channel_is_etcd_unavailable():
    store = EtcdStore([("127.0.0.1", 1)], timeout=1.0)
    try:
        with pytest.raises(StoreUnavailable, match="its connection was reset"):
            await store.run(_cut_off)
    finally:
        await store.close()


async def test_a_cancelled_caller_stays_cancelled():
    store = EtcdStore([("127.0.0.1", 1)], timeout=5.0)
    started = asyncio.Event()

    async def waits(client):
        started.set()
        await asyncio.sleep(10)

    try:
        call = asyncio.create_task(store.run(waits))
        await started.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    finally:
        await store.close()


class Pinged:
    """A store whose ping answers, fails, hangs or is cut off, as told."""

    endpoint = "127.0.0.1:2379"
    timeout = 0.05

    def __init__(self, how: str):
        self.how, self.pings = how, 0
        self.release = asyncio.Event()

    async def ping(self) -> None:
        self.pings += 1
        if self.how == "hangs":
            await self.release.wait()
        elif self.how == "cut off":
            raise asyncio.CancelledError()
        elif self.how == "fails":
            raise StoreUnavailable("etcd at 127.0.0.1:2379 unavailable: refused")


async def test_the_check_reports_what_the_ping_did_and_never_waits_past_its_deadline():
    assert (await check_etcd(Pinged("answers"), None))[1] == ""
    assert "refused" in (await check_etcd(Pinged("fails"), None))[1]
    assert (await check_etcd(Pinged("cut off"), None))[1] == "the etcd check was cut off"
    hung = Pinged("hangs")
    pending, error = await asyncio.wait_for(check_etcd(hung, None), 2)
    assert "did not answer a check within" in error and not pending.done()
    _, error = await asyncio.wait_for(check_etcd(hung, pending), 2)     # waits on it, starts none
    assert hung.pings == 1 and error
    hung.release.set()
    assert (await check_etcd(hung, pending))[1] == ""


async def test_a_watch_cut_off_by_a_closed_channel_is_etcd_unavailable(monkeypatch):
    store = EtcdStore([("127.0.0.1", 1)], timeout=1.0)

    class CutOffWatch:
        def __aiter__(self):
            return self

        async def __anext__(self):
            raise asyncio.CancelledError()

        async def cancel(self):
            pass

    async def watch_prefix(prefix, start_revision):
        return CutOffWatch()

    async def raft_term(client):
        return 1

    client, _ = store._current()
    monkeypatch.setattr(client, "watch_prefix", watch_prefix)
    monkeypatch.setattr(store, "_raft_term", raft_term)
    try:
        with pytest.raises(StoreUnavailable, match="its connection was reset"):
            async for _ in store.watch_prefix(b"/x", 1):
                pass
    finally:
        await store.close()
