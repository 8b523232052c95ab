"""Static node lists (`nodes://`, `file://`): no registration, no leases.

A node's health comes from its agent: the gRPC health service (`grpc.health.v1`, service "")
says whether it serves, and `Agent.GetEngineInfo` says who it is (ID, name, resources). A file
list is read again on every round, so editing the file adds and removes nodes.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from swarmd.proto.swarm.v1 import agent_pb2, agent_pb2_grpc, types_pb2
from swarmd.common import logs
from swarmd.common.membership import Membership, MemberEvent, MembershipError, Registrar, urls
from swarmd.common.membership.watch import converging_watch, left_node
from swarmd.common.tls import open_channel

log = logs.get("membership.static")

CHECK_INTERVAL = 2.0
CHECK_TIMEOUT = 2.0


class StaticMembership(Membership):
    def __init__(self, url: urls.NodesURL | urls.FileURL, interval: float = CHECK_INTERVAL,
                 timeout: float = CHECK_TIMEOUT, tls=None):
        self.url = url
        self.tls = tls
        self.interval = interval
        self.timeout = timeout
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._last_addrs: list[str] = []

    @property
    def where(self) -> str:
        if isinstance(self.url, urls.FileURL):
            return f"file://{self.url.path}"
        return "nodes://" + ",".join(self.url.addrs)

    def addresses(self) -> list[str]:
        """The current list; raises MembershipError if a file list cannot be read or parsed."""
        if isinstance(self.url, urls.NodesURL):
            return list(self.url.addrs)
        try:
            return urls.read_address_file(Path(self.url.path))
        except urls.URLError as exc:
            raise MembershipError(str(exc)) from None

    def _channel(self, addr: str) -> grpc.aio.Channel:
        channel = self._channels.get(addr)
        if channel is None:
            channel = open_channel(addr, self.tls, options=(
                ("grpc.initial_reconnect_backoff_ms", 250), ("grpc.max_reconnect_backoff_ms", 2_000)))
            self._channels[addr] = channel
        return channel

    async def probe(self, addr: str) -> types_pb2.Node:
        """Checks one agent: HEALTHY, PENDING (answers but not serving) or UNHEALTHY (with why)."""
        channel = self._channel(addr)
        try:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=self.timeout)
            reply = await agent_pb2_grpc.AgentStub(channel).GetEngineInfo(
                agent_pb2.GetEngineInfoRequest(), timeout=self.timeout)
        except grpc.RpcError as err:
            detail = err.details() or err.code().name.lower()
            return types_pb2.Node(info=types_pb2.NodeInfo(name=addr, addr=addr),
                                  state=types_pb2.NODE_STATE_UNHEALTHY,
                                  error=f"agent at {addr} unreachable: {detail}")
        info = types_pb2.NodeInfo()
        info.CopyFrom(reply.node)
        info.addr = addr                      # the address this list reaches it at
        if not info.name:
            info.name = addr
        if health.status == health_pb2.HealthCheckResponse.SERVING:
            return types_pb2.Node(info=info, state=types_pb2.NODE_STATE_HEALTHY)
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
        return types_pb2.Node(info=info, state=types_pb2.NODE_STATE_PENDING,
                              error=f"agent health is {status}")

    async def _probe_all(self, addrs: list[str]) -> list[types_pb2.Node]:
        return list(await asyncio.gather(*(self.probe(a) for a in addrs)))

    async def list_nodes(self) -> list[types_pb2.Node]:
        return await self._probe_all(self.addresses())

    def watch(self) -> AsyncIterator[MemberEvent]:
        return converging_watch(self._session, self.where, log)

    async def _session(self):
        """Nodes the list has reached at least once, by ID; never fails by itself."""
        by_addr: dict[str, types_pb2.Node] = {}     # last known node (with an ID) per address
        unreachable: set[str] = set()
        first = True
        while True:
            try:
                addrs = self.addresses()
                self._last_addrs = addrs
            except MembershipError as exc:
                if first:
                    raise
                log.warning("cannot read the node list; keeping the previous one", error=str(exc))
                addrs = self._last_addrs
            changes: list[tuple[str, types_pb2.Node]] = []
            for addr in list(by_addr):
                if addr not in addrs:
                    changes.append(("left", left_node(by_addr.pop(addr), "removed from the node list")))
            for addr, node in zip(addrs, await self._probe_all(addrs)):
                old = by_addr.get(addr)
                if node.info.id:
                    unreachable.discard(addr)
                    if old is not None and old.info.id != node.info.id:
                        changes.append(("left", left_node(old, f"another agent answers at {addr}")))
                    by_addr[addr] = node
                    changes.append(("updated", node))
                elif old is not None:
                    down = types_pb2.Node()
                    down.CopyFrom(old)
                    down.state = types_pb2.NODE_STATE_UNHEALTHY
                    down.error = node.error
                    by_addr[addr] = down
                    changes.append(("updated", down))
                elif addr not in unreachable:
                    unreachable.add(addr)
                    log.warning("static node not reachable yet", addr=addr, error=node.error)
            for kind, node in changes:
                yield kind, node
            if first:
                yield "synced", None
                first = False
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()


class StaticRegistrar(Registrar):
    """Nothing to register: the manager checks the agent itself."""

    async def register(self, node: types_pb2.NodeInfo, ttl: float) -> None:
        return None

    async def keep_alive(self, node, heartbeat: float, ttl: float) -> None:
        log.info("static node list: nothing to register; the manager checks this agent directly")
        await asyncio.Event().wait()
