"""Which manager is primary: leader election for `swarm manage --replication`.

The leader key lives in etcd under a lease (swarmd.common.membership.etcd_election): for `token://`
clusters the discovery daemon holds it for the manager while the manager's `Campaign` stream
lives and its heartbeats keep arriving; for `etcd://` clusters the manager campaigns in etcd
itself. Either way a manager reads a stream of LeaderState, and `follow_leadership` turns it into
role changes, stepping down on its own when an elected state is not confirmed in time (etcd or the
discovery daemon lost, or this process was stopped), so a primary that cannot renew its lease
never keeps acting as one.

Every confirmation is counted from when the lease renewal it reports began (etcd://) or from when
this manager sent the heartbeat the discovery daemon names in it (token://), never from when it
arrived: a confirmation that sat in a socket buffer while the process was frozen is already stale.
"""
from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from swarmd.proto.swarm.v1 import discovery_pb2
from swarmd.common import logs
from swarmd.common.membership import Membership, MembershipError
from swarmd.common.membership.etcd_election import LeaderState, campaign, confirm_within, heartbeat_period, leader_key
from swarmd.common.membership.etcd_store import EtcdStore
from swarmd.common.membership.watch import Backoff

log = logs.get("manager.election")

DEFAULT_TTL = 3.0
UNKNOWN = LeaderState("", False)
SENT_KEPT = 64           # heartbeats whose send times are remembered
_REFUSED = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNIMPLEMENTED}


class Election(abc.ABC):
    """A candidate's view of the election: every change of leader, and confirmations while elected."""

    def __init__(self, candidate: str, ttl: float):
        self.candidate = candidate
        self.ttl = ttl

    @abc.abstractmethod
    def states(self) -> AsyncIterator[LeaderState]:
        """Runs until cancelled; raises MembershipError only when the cluster refuses the campaign."""

    async def close(self) -> None:
        return None


class EtcdElection(Election):
    """`etcd://` clusters: the manager holds the lease-bound leader key itself."""

    def __init__(self, endpoints, base: str, candidate: str, ttl: float, etcd_tls=None):
        super().__init__(candidate, ttl)
        self.store = EtcdStore(list(endpoints), tls=etcd_tls)
        self.key = leader_key(base)

    async def states(self) -> AsyncIterator[LeaderState]:
        gen = campaign(self.store, self.key, self.candidate, self.ttl)
        try:
            async for state in gen:
                yield state
        finally:
            await gen.aclose()

    async def close(self) -> None:
        await self.store.close()


class TokenElection(Election):
    """`token://` clusters: the discovery daemon campaigns in etcd while our stream to it lives and
    our heartbeats (one every `heartbeat_period(ttl)`) keep arriving."""

    def __init__(self, stub, token: str, where: str, candidate: str, ttl: float):
        super().__init__(candidate, ttl)
        self.stub = stub
        self.token = token
        self.where = where

    async def _beat(self, call, sent: dict[int, float]) -> None:
        """Sends the campaign request (heartbeat 0), then a numbered heartbeat every period,
        remembering when each was sent."""
        period = heartbeat_period(self.ttl)
        number = 0
        sent[number] = time.monotonic()
        await call.write(discovery_pb2.CampaignRequest(
            token=self.token, candidate=self.candidate, ttl_ms=int(self.ttl * 1000), heartbeat=number))
        while True:
            await asyncio.sleep(period)
            number += 1
            sent[number] = time.monotonic()
            sent.pop(number - SENT_KEPT, None)
            await call.write(discovery_pb2.CampaignRequest(heartbeat=number))

    async def states(self) -> AsyncIterator[LeaderState]:
        backoff = Backoff(0.25, 2.0)
        last: LeaderState | None = None
        while True:
            call = self.stub.Campaign()
            sent: dict[int, float] = {}
            beating = asyncio.ensure_future(self._beat(call, sent))
            try:
                async for event in call:
                    backoff.reset()
                    # an unknown heartbeat number confirms nothing: -inf is always stale
                    confirmed = sent.get(event.heartbeat, float("-inf")) if event.elected else None
                    last = LeaderState(event.leader, event.elected, confirmed)
                    yield last
                error = "campaign stream ended"
            except grpc.aio.AioRpcError as err:
                if err.code() in _REFUSED:
                    raise MembershipError(f"discovery at {self.where} refused the campaign: {err.details()}") \
                        from None
                error = err.details() or err.code().name
            finally:
                beating.cancel()
                await asyncio.gather(beating, return_exceptions=True)
                call.cancel()
            if last != UNKNOWN:
                log.warning("election: campaign interrupted", discovery=self.where, error=error)
                last = UNKNOWN
                yield last
            await asyncio.sleep(backoff.next())


def default_advertise(listen: list[str]) -> str:
    """The API address to advertise when --advertise is not given: the one TCP address served on
    a specific host (not 0.0.0.0 or ::), or "" when that is ambiguous."""
    import urllib.parse
    found = []
    for addr in listen:
        u = urllib.parse.urlsplit(addr if "://" in addr else f"tcp://{addr}")
        if u.scheme == "tcp" and u.hostname and u.hostname not in ("0.0.0.0", "::") and u.port:
            host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
            found.append(f"{host}:{u.port}")
    return found[0] if len(found) == 1 else ""


def open_election(membership: Membership, candidate: str, ttl: float = DEFAULT_TTL) -> Election:
    """The election that goes with a manager's membership; MembershipError for static schemes."""
    from swarmd.common.membership.etcd_client import EtcdMembership
    from swarmd.common.membership.token_client import TokenMembership
    if not candidate:
        raise MembershipError("--replication needs --advertise HOST:PORT: the address other managers forward to")
    if isinstance(membership, TokenMembership):
        return TokenElection(membership.stub, membership.token, membership.addr, candidate, ttl)
    if isinstance(membership, EtcdMembership):
        return EtcdElection(membership.store.endpoints, membership.nodes.base, candidate, ttl,
                            etcd_tls=membership.store.tls)
    raise MembershipError("--replication needs a token:// or etcd:// discovery URL (leader election is kept in etcd)")


async def follow_leadership(states: AsyncIterator[LeaderState], ttl: float,
                            on_change: Callable[[LeaderState], None]) -> None:
    """Applies every change of leadership to `on_change`; runs until the stream ends.

    An elected state holds only until `confirm_within(ttl)` after its last confirmation (its
    `confirmed_at`, or its arrival when that is None): past that the manager is told it is no
    longer primary, and an elected state that arrives already past it counts as UNKNOWN.
    """
    window = confirm_within(ttl)
    current = UNKNOWN
    deadline = 0.0
    iterator = states.__aiter__()
    pending: asyncio.Task | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            timeout = max(0.0, deadline - time.monotonic()) if current.elected else None
            done, _ = await asyncio.wait({pending}, timeout=timeout)
            if not done:
                log.warning("stepping down: leadership not confirmed in time", window=f"{window:.1f}s")
                current = UNKNOWN
                on_change(current)
                continue
            task, pending = pending, None
            try:
                state = task.result()
            except StopAsyncIteration:
                return
            if state.elected:
                now = time.monotonic()
                deadline = (now if state.confirmed_at is None else state.confirmed_at) + window
                if deadline <= now:
                    if current.elected:
                        log.warning("stepping down: leadership confirmed too late", window=f"{window:.1f}s")
                    state = UNKNOWN
            if state != current:
                current = state
                on_change(current)
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)


class Roles:
    """Applies leadership to the manager: its role and the primary's address (`docker info`),
    the leader metric, and the primary-only work (rescheduling), started and stopped with it."""

    def __init__(self, ctx, primary_work: Callable[[], Awaitable[None]]):
        self.ctx = ctx
        self.primary_work = primary_work
        self._task: asyncio.Task | None = None

    def apply(self, state: LeaderState) -> None:
        from swarmd.manager import metrics
        role = "primary" if state.elected else "replica"
        if role != self.ctx.role or state.leader != self.ctx.primary_addr:
            log.info("manager role", role=role, primary=state.leader or "(none)")
        self.ctx.role = role
        self.ctx.primary_addr = state.leader
        metrics.LEADER.set(1 if state.elected else 0)
        if state.elected and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self.primary_work(), name="primary-work")
        elif not state.elected and self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
