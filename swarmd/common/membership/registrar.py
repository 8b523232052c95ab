"""The agent's side of a lease: register, heartbeat, register again when the lease is gone.

`LeaseRegistrar` holds the loop shared by the `token://` and `etcd://` schemes; a scheme only
says how to register, heartbeat and deregister once.
"""
from __future__ import annotations

import abc
import asyncio
import contextlib

from swarmd.proto.swarm.v1 import types_pb2
from swarmd.common import logs
from swarmd.common.membership import MembershipUnavailable, NodeSource, Registrar
from swarmd.common.membership.watch import Backoff

log = logs.get("membership.registrar")

DEREGISTER_TIMEOUT = 3.0


class RegistrationLost(Exception):
    """The node's lease or record is gone (expired, or removed): register again."""


class LeaseRegistrar(Registrar):
    """Registration under a lease, kept alive by heartbeats. Subclasses talk to the store."""

    source = "discovery"

    def __init__(self) -> None:
        self.node_id: str | None = None
        self.period: float | None = None      # heartbeat period the store asked for, seconds
        # shared by registrars that start together (a process hosting many hollow nodes): at most
        # its size register at once, so a burst of joins queues here instead of timing out at the
        # discovery daemon and retrying on top of the queue
        self.gate: asyncio.Semaphore | None = None

    @abc.abstractmethod
    async def _register(self, info: types_pb2.NodeInfo, ttl: float) -> float | None:
        """Registers once; returns the heartbeat period asked for (s), if any.

        Raises MembershipError when refused, MembershipUnavailable when unreachable."""

    @abc.abstractmethod
    async def _heartbeat(self) -> float | None:
        """Renews the lease once; raises RegistrationLost, MembershipUnavailable."""

    @abc.abstractmethod
    async def _deregister(self, node_id: str) -> None:
        ...

    async def register(self, node: types_pb2.NodeInfo, ttl: float) -> None:
        self.node_id = node.id        # set first: a stop during registration still deregisters
        self.period = await self._register(node, ttl)

    async def keep_alive(self, node: NodeSource, heartbeat: float, ttl: float) -> None:
        backoff = Backoff(0.25, max(0.25, min(5.0, heartbeat)))
        registered = False
        unavailable_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                if not registered:
                    info = await node() if callable(node) else node
                    async with self.gate or contextlib.nullcontext():
                        await self.register(info, ttl)
                    registered = True
                    log.info("node registered", source=self.source, node=info.name, id=info.id[:12],
                             addr=info.addr, ttl=ttl)
                else:
                    period = await self._heartbeat()
                    if period:
                        self.period = period
                if unavailable_since is not None:
                    log.info("discovery reachable again", source=self.source,
                             after=f"{loop.time() - unavailable_since:.1f}s")
                    unavailable_since = None
                backoff.reset()
                await asyncio.sleep(self.period or heartbeat)
            except RegistrationLost as exc:
                log.warning("registration lost; registering again", source=self.source, reason=str(exc))
                registered = False
            except MembershipUnavailable as exc:
                if unavailable_since is None:
                    unavailable_since = loop.time()
                    log.warning("discovery unavailable; retrying with backoff", source=self.source,
                                error=str(exc))
                await asyncio.sleep(backoff.next())

    async def renew_once(self) -> None:
        if not self.node_id:
            return
        try:
            await asyncio.wait_for(self._heartbeat(), DEREGISTER_TIMEOUT)
        except Exception as exc:  # best effort: the lease then runs from the last heartbeat
            log.info("last lease renewal failed", source=self.source, error=str(exc) or type(exc).__name__)

    async def leave(self, node_id: str) -> bool:
        await asyncio.wait_for(self._deregister(node_id), DEREGISTER_TIMEOUT)
        log.info("node left the cluster", source=self.source, id=node_id[:12])
        return True

    async def deregister(self) -> None:
        if not self.node_id:
            return
        try:
            await asyncio.wait_for(self._deregister(self.node_id), DEREGISTER_TIMEOUT)
            log.info("node deregistered", source=self.source, id=self.node_id[:12])
        except Exception as exc:  # best effort: the lease expires on its own
            log.warning("deregistration failed; the lease will expire on its own", source=self.source,
                        error=str(exc) or type(exc).__name__)
