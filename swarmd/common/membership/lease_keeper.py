"""Lease renewals through one etcd `LeaseKeepAlive` stream, shared by every lease of a client.

A discovery daemon renews one lease per heartbeat of every node it serves: 2,500 a second for
5,000 nodes at the default 2 s period. aetcd's `refresh_lease` opens a new bidirectional stream
for each renewal and closes it after the one answer, which costs the daemon more CPU than the
renewal itself. etcd answers the requests of one stream in order, each answer naming its lease,
so one long-lived stream carries many renewals: a request is queued, its answer goes to the
oldest caller waiting on that lease.

`LeaseKeepers` spreads the leases over a few such streams, a lease always on the same one. etcd
serves the requests of one stream one after another, and a renewal there can wait: for the
leader's apply loop to catch up with the writes committed before it, and, for a lease that has
run out but is not revoked yet, for its revocation, which etcd paces. On a single stream every
renewal behind such a one waits too. At 5,000 nodes heartbeating every 2 s while others
registered, that queue reached 3,000 renewals in flight, the leases waiting there ran out, and
their renewals then waited on revocations in turn: thousands of nodes lost at once.
"""
from __future__ import annotations

import asyncio
from collections import deque

from aetcd import rpc

STREAMS = 32    # keep-alive streams per client


class LeaseKeeper:
    """Renews leases through one keep-alive stream of `client` (an aetcd.Client, connected)."""

    def __init__(self, client):
        self.client = client
        self._requests: asyncio.Queue[int] = asyncio.Queue()
        self._waiting: dict[int, deque[asyncio.Future]] = {}
        self._task: asyncio.Task | None = None

    async def refresh(self, lease_id: int) -> int:
        """Renews `lease_id`; its remaining seconds (0: the lease is gone). Raises the error the
        stream failed with (a grpc.RpcError, or ConnectionError when it ended)."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        answer = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(lease_id, deque()).append(answer)
        self._requests.put_nowait(lease_id)
        # a caller that gives up (its deadline) leaves its future cancelled: the answer meant for it
        # is then dropped when it comes, and later callers of the same lease keep their order
        return await answer

    @property
    def in_flight(self) -> int:
        """Renewals sent on the stream and not answered yet (those of callers that gave up included:
        etcd still has them to answer)."""
        return sum(map(len, self._waiting.values()))

    async def _stream(self, requests: asyncio.Queue):
        while True:
            yield rpc.LeaseKeepAliveRequest(ID=await requests.get())

    async def _run(self) -> None:
        error: BaseException = ConnectionError("etcd closed the lease keep-alive stream")
        requests = self._requests
        try:
            stub = getattr(self.client, "leasestub", None)
            if stub is None:      # a client closed (another operation reset the connection) or not connected
                raise ConnectionError("the etcd client is closed")
            call = stub.LeaseKeepAlive(self._stream(requests), metadata=self.client.metadata)
            async for reply in call:
                waiting = self._waiting.get(reply.ID)
                if not waiting:
                    continue          # an answer to a request made before the stream was replaced
                answer = waiting.popleft()
                if not waiting:
                    del self._waiting[reply.ID]
                if not answer.done():
                    answer.set_result(reply.TTL)
        except asyncio.CancelledError:
            error = ConnectionError("the lease keep-alive stream was closed")
            raise
        except Exception as exc:  # handed to every waiting caller, which maps it (store.run)
            error = exc
        finally:
            self._fail(error, requests)

    def _fail(self, error: BaseException, requests: asyncio.Queue) -> None:
        waiting, self._waiting = self._waiting, {}
        if self._requests is requests:
            self._requests = asyncio.Queue()     # the next stream starts with only new requests
        for answers in waiting.values():
            for answer in answers:
                if not answer.done():
                    answer.set_exception(error)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


class LeaseKeepers:
    """Renews leases through `streams` keep-alive streams of `client`, each lease on one of them."""

    def __init__(self, client, streams: int = STREAMS):
        self.client = client
        self._keepers = [LeaseKeeper(client) for _ in range(streams)]

    async def refresh(self, lease_id: int) -> int:
        """As LeaseKeeper.refresh, on the lease's own stream (its renewals answered in order)."""
        return await self._keepers[lease_id % len(self._keepers)].refresh(lease_id)

    @property
    def in_flight(self) -> int:
        return sum(k.in_flight for k in self._keepers)

    def close(self) -> None:
        for k in self._keepers:
            k.close()
