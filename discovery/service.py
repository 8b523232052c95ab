"""The Discovery gRPC service: cluster tokens and node membership, kept in etcd under leases."""
from __future__ import annotations

import contextlib

import grpc

from swarmd.discovery import tokens
from swarmd.discovery.liveness import Heartbeats, while_alive
from swarmd.proto.swarm.v1 import discovery_pb2, discovery_pb2_grpc
from swarmd.common import logs
from swarmd.common.membership.etcd_election import campaign, confirm_within, current_leader, leader_key
from swarmd.common.membership.etcd_store import (EtcdStore, IdTaken, LeaseGone, NameTaken, NodeRemoved, NodeSet,
                                          StoreUnavailable, cluster_key, invalid_node_info)
from swarmd.common.membership.intents import IntentRecords, valid_key
from swarmd.common.membership.watch import apply

log = logs.get("discovery")

DEFAULT_LEADER_TTL = 3.0

UNKNOWN_TOKEN = "unknown cluster token"
MALFORMED_TOKEN = "malformed token: a cluster token is 32 hexadecimal characters as printed by `swarm create`"

_KINDS = {
    "joined": discovery_pb2.NodeEvent.KIND_JOINED,
    "updated": discovery_pb2.NodeEvent.KIND_UPDATED,
    "left": discovery_pb2.NodeEvent.KIND_LEFT,
}


def heartbeat_period_ms(lease_ttl_seconds: int) -> int:
    """Three heartbeats per lease: one lost heartbeat never costs a node its lease."""
    return max(1, lease_ttl_seconds * 1000 // 3)


class DiscoveryService(discovery_pb2_grpc.DiscoveryServicer):
    def __init__(self, store: EtcdStore, default_ttl: float = 6.0):
        self.store = store
        self.default_ttl = default_ttl

    async def _nodes(self, token: str, context: grpc.aio.ServicerContext, known: bool = True) -> NodeSet:
        """The cluster's node set; aborts for a malformed or (when `known`) unknown token."""
        if not tokens.well_formed(token):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MALFORMED_TOKEN)
        if known and not await self.store.cluster_exists(token):
            log.warning("request for an unknown cluster token", token=tokens.fingerprint(token))
            await context.abort(grpc.StatusCode.NOT_FOUND, UNKNOWN_TOKEN)
        return NodeSet(self.store, cluster_key(token))

    async def _unavailable(self, context: grpc.aio.ServicerContext, exc: StoreUnavailable) -> None:
        log.warning("etcd unavailable for a request", error=str(exc))
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"discovery cannot reach etcd: {exc}")

    async def CreateCluster(self, request, context):
        token = tokens.new_token()
        try:
            await self.store.create_cluster(token)
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        log.info("cluster created", token=tokens.fingerprint(token))
        return discovery_pb2.CreateClusterResponse(token=token)

    async def Register(self, request, context):
        token = request.token.lower()
        info = request.node
        try:
            nodes = await self._nodes(token, context)
            problem = invalid_node_info(info)
            if problem:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
            ttl = request.ttl_ms / 1000 if request.ttl_ms > 0 else self.default_ttl
            lease_id, seconds = await nodes.register(info, ttl)
        except (NameTaken, IdTaken) as exc:
            log.warning("registration refused", token=tokens.fingerprint(token), reason=str(exc))
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
        except NodeRemoved as exc:
            log.warning("registration refused", token=tokens.fingerprint(token), reason=str(exc))
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        log.info("node registered", token=tokens.fingerprint(token), node=info.name, id=info.id[:12],
                 addr=info.addr, ttl=f"{seconds}s")
        return discovery_pb2.RegisterResponse(lease_id=lease_id, ttl_ms=seconds * 1000,
                                              heartbeat_period_ms=heartbeat_period_ms(seconds))

    async def Heartbeat(self, request, context):
        token = request.token.lower()
        try:
            nodes = await self._nodes(token, context, known=False)
            remaining = await nodes.heartbeat(request.node_id, request.lease_id)
        except LeaseGone as exc:
            log.info("heartbeat for a lost registration", token=tokens.fingerprint(token),
                     id=request.node_id[:12], reason=str(exc))
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{exc}: register again")
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        return discovery_pb2.HeartbeatResponse(heartbeat_period_ms=heartbeat_period_ms(remaining),
                                               remaining_ttl_ms=remaining * 1000)

    async def Deregister(self, request, context):
        token = request.token.lower()
        try:
            nodes = await self._nodes(token, context, known=False)
            existed = await nodes.deregister(request.node_id)
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        if existed:
            log.info("node deregistered", token=tokens.fingerprint(token), id=request.node_id[:12])
        return discovery_pb2.DeregisterResponse()

    async def ListNodes(self, request, context):
        token = request.token.lower()
        try:
            nodes = await self._nodes(token, context)
            listing = await nodes.list()
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        return discovery_pb2.ListNodesResponse(nodes=listing)

    async def WatchNodes(self, request, context):
        token = request.token.lower()
        known = {}
        try:
            nodes = await self._nodes(token, context)
            log.info("membership watch opened", token=tokens.fingerprint(token), peer=context.peer())
            async for kind, node in nodes.session():
                if kind == "synced":
                    yield discovery_pb2.NodeEvent(kind=discovery_pb2.NodeEvent.KIND_SYNCED)
                    continue
                event = apply(known, kind, node)
                if event is not None:
                    yield discovery_pb2.NodeEvent(kind=_KINDS[event.kind], node=event.node)
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)

    async def Campaign(self, request_iterator, context):
        requests = request_iterator.__aiter__()
        try:
            request = await requests.__anext__()
        except StopAsyncIteration:
            return
        token = request.token.lower()
        if not request.candidate:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a candidate address is required")
        try:
            await self._nodes(token, context)
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        ttl = request.ttl_ms / 1000 if request.ttl_ms > 0 else DEFAULT_LEADER_TTL
        fingerprint = tokens.fingerprint(token)
        log.info("manager campaigning", token=fingerprint, candidate=request.candidate, peer=context.peer())
        heartbeats = Heartbeats(request.heartbeat)
        states = campaign(self.store, leader_key(cluster_key(token)), request.candidate, ttl)
        silent = False
        try:
            async with contextlib.aclosing(while_alive(states, requests, heartbeats, confirm_within(ttl))) as alive:
                async for state in alive:
                    acked = heartbeats.before(state.confirmed_at) if state.elected else 0
                    yield discovery_pb2.LeaderEvent(leader=state.leader, elected=state.elected, heartbeat=acked)
            silent = heartbeats.silent
        finally:
            await states.aclose()   # revokes the lease when this candidate led: immediate failover
            log.info("manager campaign ended", token=fingerprint, candidate=request.candidate)
        if silent:
            log.warning("manager campaign dropped: no heartbeat", token=fingerprint, candidate=request.candidate,
                        window=f"{confirm_within(ttl):.1f}s")
            await context.abort(grpc.StatusCode.ABORTED,
                                f"no heartbeat from {request.candidate} within {confirm_within(ttl):.1f}s: "
                                "leadership released")

    async def GetLeader(self, request, context):
        token = request.token.lower()
        try:
            await self._nodes(token, context)
            leader = await current_leader(self.store, leader_key(cluster_key(token)))
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        return discovery_pb2.GetLeaderResponse(leader=leader)

    # -- cluster intent (written by the primary manager, watched by every manager) ---------------

    async def _intents(self, token: str, context: grpc.aio.ServicerContext) -> IntentRecords:
        await self._nodes(token, context)            # refuses malformed and unknown tokens
        return IntentRecords(self.store, cluster_key(token))

    async def ListIntents(self, request, context):
        try:
            records = await (await self._intents(request.token.lower(), context)).list()
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        return discovery_pb2.ListIntentsResponse(
            records=[discovery_pb2.IntentRecord(key=k, value=v) for k, v in records])

    async def PutIntent(self, request, context):
        problem = valid_key(request.record.key)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        try:
            intents = await self._intents(request.token.lower(), context)
            await intents.put(request.record.key, request.record.value)
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        return discovery_pb2.PutIntentResponse()

    async def DeleteIntent(self, request, context):
        problem = valid_key(request.key)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        try:
            await (await self._intents(request.token.lower(), context)).delete(request.key)
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        return discovery_pb2.DeleteIntentResponse()

    async def WatchIntents(self, request, context):
        kinds = {"put": discovery_pb2.IntentEvent.KIND_PUT, "delete": discovery_pb2.IntentEvent.KIND_DELETE,
                 "synced": discovery_pb2.IntentEvent.KIND_SYNCED}
        try:
            intents = await self._intents(request.token.lower(), context)
            async for kind, key, value in intents.session():
                yield discovery_pb2.IntentEvent(kind=kinds[kind],
                                                record=discovery_pb2.IntentRecord(key=key, value=value))
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
