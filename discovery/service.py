"""The Discovery gRPC service: cluster tokens and node membership, kept in etcd under leases.

With an `Authority` (bootstrap mode, `swarm discovery --ca-dir`), the request's `token` field holds
the cluster's ID, and every call first passes `_guard`: the caller's certificate must name that
cluster and a role the call allows (discovery.ca.refusal); a node's calls must name its own node ID,
which must not have been removed from the cluster. Certificates are issued against join tokens
(IssueCertificate) and renewed against the current certificate (RenewCertificate).
"""
from __future__ import annotations

import asyncio
import contextlib

import grpc

from swarmd.common import ca_rotation as rotation
from swarmd.discovery import leases, metrics, tokens
from swarmd.discovery.ca import Authority, refusal, valid_common_name
from swarmd.discovery.holders import REFRESH_EVERY, Holders
from swarmd.discovery.rotation_driver import RotationDriver
from swarmd.discovery.liveness import Heartbeats, while_alive
from swarmd.proto.swarm.v1 import discovery_pb2, discovery_pb2_grpc
from swarmd.common import join_tokens, logs
from swarmd.common.grpc_metrics import code_name
from swarmd.common.pki import NODE_ROLES, ROLE_ADMIN, ROLE_MANAGER, ROLE_WORKER, PKIError, csr_common_name, load_csr
from swarmd.common.membership.etcd_election import campaign, confirm_within, current_leader, leader_key
from swarmd.common.membership.etcd_store import (EtcdStore, IdTaken, LeaseGone, NameTaken, NodeRemoved, NodeSet,
                                          StoreUnavailable, cluster_key, intent_prefix, invalid_node_info,
                                          UnknownCluster, is_removed, node_intent_key, removed_message)
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


# A registration costs etcd three calls (two of them writes, each waiting for a raft commit) and
# this daemon several times a renewal's CPU. A burst of them (a fleet starting, or nodes that lost
# their lease registering again) goes through a few at a time, so that the heartbeats of the
# nodes already registered keep being answered within their lease: were renewals queued behind
# thousands of registrations, leases would run out, their nodes register again, and the queue
# grow faster than it drains. Paired at 5,000 nodes every 2 s on one daemon (docs/benchmarks.md,
# "Fifth pass"), 8 at a time lost 103 and 357 leases in 20 s where 32 lost 916 and 408.
REGISTERING_AT_ONCE = 8

MANAGERS = (ROLE_MANAGER,)
NODES = (ROLE_WORKER, ROLE_MANAGER)
NOT_A_CA = "this discovery daemon issues no certificates: start it with --ca-dir"


class DiscoveryService(discovery_pb2_grpc.DiscoveryServicer):
    def __init__(self, store: EtcdStore, default_ttl: float = 6.0, authority: Authority | None = None):
        self.store = store
        self.default_ttl = default_ttl
        self.authority = authority
        self.join_tokens = tokens.JoinTokens(store)
        self.holders = Holders(store)
        self.rotation = RotationDriver(authority, self.holders) if authority is not None else None
        self.checked = leases.CheckedLeases()     # heartbeats renewed without reading the node first
        # registrations in flight at once; the rest wait their turn (see Register)
        self.registering = asyncio.Semaphore(REGISTERING_AT_ONCE)

    async def _removed(self, cluster: str, node_id: str) -> bool:
        key = (intent_prefix(cluster_key(cluster)) + node_intent_key(node_id)).encode()
        kv = await self.store.run(lambda c: c.get(key))
        return kv is not None and is_removed(kv.value)

    async def _guard(self, context, cluster: str, roles: tuple[str, ...], node_id: str | None = None):
        """Bootstrap mode: aborts unless the caller's certificate may make this call on `cluster`
        (a worker only for its own node ID, never once removed); the caller's identity, or None
        without an authority (no bootstrap mode: the explicit TLS flags decide alone)."""
        if self.authority is None:
            return None
        peer = self.authority.peer(context)
        problem = refusal(peer, cluster.lower(), roles)
        if problem is None and peer.role == ROLE_WORKER:
            if node_id is not None and node_id != peer.common_name:
                problem = "a node certificate acts for its own node only"
            else:
                try:
                    if await self._removed(peer.cluster, peer.common_name):
                        problem = removed_message(peer.common_name)
                except StoreUnavailable as exc:
                    await self._unavailable(context, exc)
        if problem is not None:
            log.warning("call refused", peer=context.peer(), reason=problem,
                        cert=f"{peer.role}/{peer.common_name[:12]}" if peer else "none")
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, problem)
        return peer

    async def _nodes(self, token: str, context: grpc.aio.ServicerContext, known: bool = True) -> NodeSet:
        """The cluster's node set; aborts for a malformed or (when `known`) unknown token."""
        if not tokens.well_formed(token):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, MALFORMED_TOKEN)
        if known and not await self.store.cluster_exists(token):
            await self._unknown_cluster(context, token)
        return NodeSet(self.store, cluster_key(token))

    async def _unknown_cluster(self, context: grpc.aio.ServicerContext, token: str) -> None:
        log.warning("request for an unknown cluster token", token=tokens.fingerprint(token))
        await context.abort(grpc.StatusCode.NOT_FOUND, UNKNOWN_TOKEN)

    async def _unavailable(self, context: grpc.aio.ServicerContext, exc: StoreUnavailable) -> None:
        log.warning("etcd unavailable for a request", error=str(exc))
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"discovery cannot reach etcd: {exc}")

    async def CreateCluster(self, request, context):
        token = tokens.new_token()
        if self.authority is not None:
            await self._guard(context, "", (ROLE_ADMIN,))
        try:
            await self.store.create_cluster(token)
            if self.authority is not None:
                join = join_tokens.new_token(self.authority.digest)
                await self.join_tokens.add(join, token, ROLE_WORKER)
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        log.info("cluster created", token=tokens.fingerprint(token))
        if self.authority is not None:
            return discovery_pb2.CreateClusterResponse(token=str(join), cluster_id=token)
        return discovery_pb2.CreateClusterResponse(token=token)

    async def Register(self, request, context):
        token = request.token.lower()
        info = request.node
        await self._guard(context, token, NODES, node_id=info.id)
        try:
            nodes = await self._nodes(token, context, known=False)     # the cluster is read with the node
            problem = invalid_node_info(info)
            if problem:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
            ttl = request.ttl_ms / 1000 if request.ttl_ms > 0 else self.default_ttl
            async with self.registering:
                lease_id, seconds = await nodes.register(info, ttl, in_cluster=True)
        except UnknownCluster:
            await self._unknown_cluster(context, token)
        except (NameTaken, IdTaken) as exc:
            log.warning("registration refused", token=tokens.fingerprint(token), reason=str(exc))
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
        except NodeRemoved as exc:
            log.warning("registration refused", token=tokens.fingerprint(token), reason=str(exc))
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        self.checked.add(token, info.id, lease_id)
        log.info("node registered", token=tokens.fingerprint(token), node=info.name, id=info.id[:12],
                 addr=info.addr, ttl=f"{seconds}s")
        return discovery_pb2.RegisterResponse(lease_id=lease_id, ttl_ms=seconds * 1000,
                                              heartbeat_period_ms=heartbeat_period_ms(seconds))

    async def _renew(self, request, context) -> discovery_pb2.HeartbeatResponse:
        """One heartbeat answered: the Heartbeat call's and each message's of a Heartbeats stream
        (a refusal aborts the call or ends the stream with the same status and text)."""
        token = request.token.lower()
        await self._guard(context, token, NODES, node_id=request.node_id)
        try:
            nodes = await self._nodes(token, context, known=False)
            if self.checked.holds(token, request.node_id, request.lease_id):
                remaining = await leases.renew(self.store, request.node_id, request.lease_id)
            else:
                remaining = await nodes.heartbeat(request.node_id, request.lease_id)
                self.checked.add(token, request.node_id, request.lease_id)
        except LeaseGone as exc:
            self.checked.forget(token, request.node_id)
            log.info("heartbeat for a lost registration", token=tokens.fingerprint(token),
                     id=request.node_id[:12], reason=str(exc))
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{exc}: register again")
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        return discovery_pb2.HeartbeatResponse(heartbeat_period_ms=heartbeat_period_ms(remaining),
                                               remaining_ttl_ms=remaining * 1000)

    async def _counted_renewal(self, request, context) -> discovery_pb2.HeartbeatResponse:
        """`_renew`, counted by its status code (swarmd_discovery_lease_renewals_total): per
        heartbeat, whether it came as a call or as a message on a stream."""
        try:
            reply = await self._renew(request, context)
        except BaseException as exc:
            metrics.renewal_answered(code_name(context, exc))
            raise
        metrics.renewal_answered("OK")
        return reply

    async def Heartbeat(self, request, context):
        return await self._counted_renewal(request, context)

    async def Heartbeats(self, request_iterator, context):
        # read and written through the context rather than as a generator: one layer less per
        # message, on the path every agent takes every heartbeat
        with metrics.heartbeat_stream_open():
            while (request := await context.read()) is not grpc.aio.EOF:
                await context.write(await self._counted_renewal(request, context))

    async def Deregister(self, request, context):
        token = request.token.lower()
        await self._guard(context, token, NODES, node_id=request.node_id)
        try:
            nodes = await self._nodes(token, context, known=False)
            self.checked.forget(token, request.node_id)
            existed = await nodes.deregister(request.node_id)
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        if existed:
            log.info("node deregistered", token=tokens.fingerprint(token), id=request.node_id[:12])
        return discovery_pb2.DeregisterResponse()

    async def ListNodes(self, request, context):
        token = request.token.lower()
        await self._guard(context, token, (ROLE_MANAGER, ROLE_ADMIN))
        try:
            nodes = await self._nodes(token, context)
            listing = await nodes.list()
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        return discovery_pb2.ListNodesResponse(nodes=listing)

    async def WatchNodes(self, request, context):
        token = request.token.lower()
        await self._guard(context, token, MANAGERS)
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
        await self._guard(context, token, MANAGERS)
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
        await self._guard(context, token, MANAGERS)
        try:
            await self._nodes(token, context)
            leader = await current_leader(self.store, leader_key(cluster_key(token)))
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        return discovery_pb2.GetLeaderResponse(leader=leader)

    # -- cluster intent (written by the primary manager, watched by every manager) ---------------

    async def _intents(self, token: str, context: grpc.aio.ServicerContext) -> IntentRecords:
        await self._guard(context, token, MANAGERS)
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

    # -- bootstrap mode: the certificate authority -------------------------------------------------

    async def _authority(self, context) -> Authority:
        if self.authority is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, NOT_A_CA)
        return self.authority

    async def GetCACertificate(self, request, context):
        authority = await self._authority(context)
        return discovery_pb2.GetCACertificateResponse(bundle_pem=authority.bundle_pem)

    async def _admitted(self, context, offered: str) -> tuple[str, str]:
        """(cluster, role) a join token admits to; aborts (logging the token's digest prefix only)."""
        authority = await self._authority(context)
        try:
            token = join_tokens.parse(offered)
        except join_tokens.TokenError as exc:
            log.warning("join token refused", token=join_tokens.masked_prefix(offered), reason="malformed")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if token.ca_digest not in authority.digests:
            log.warning("join token refused", token=token.masked, reason="it names another CA")
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "the join token names another CA than this cluster's")
        try:
            found = await self.join_tokens.lookup(token)
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        if found is None:
            log.warning("join token refused", token=token.masked, reason="unknown or rotated")
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "invalid join token")
        return found

    async def _csr_name(self, context, csr_pem: bytes) -> str:
        try:
            name = csr_common_name(load_csr(csr_pem))
        except PKIError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if not valid_common_name(name):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "the certificate request's common name must be the node's ID (8 to 64 of [A-Za-z0-9_.-])")
        return name

    async def _sign(self, context, csr_pem: bytes, cluster: str, role: str, name: str) -> bytes:
        try:
            if role == ROLE_WORKER and await self._removed(cluster, name):
                log.warning("certificate refused", cluster=cluster[:12], node=name[:12], reason="node removed")
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, removed_message(name))
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        try:
            cert = self.authority.sign(csr_pem, cluster, role, name)
        except PKIError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return cert

    async def IssueCertificate(self, request, context):
        cluster, role = await self._admitted(context, request.token)
        wanted = request.role or ROLE_WORKER
        if wanted not in NODE_ROLES:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown role {wanted!r}: {' or '.join(NODE_ROLES)}")
        if wanted != role:
            log.warning("certificate refused", cluster=cluster[:12], wanted=wanted, token_role=role)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                "an agent join token cannot obtain a manager certificate" if wanted == ROLE_MANAGER
                                else "a manager join token is for `swarm manage`: join an agent with the agent token")
        name = await self._csr_name(context, request.csr_pem)
        cert = await self._sign(context, request.csr_pem, cluster, role, name)
        log.info("certificate issued", cluster=cluster[:12], role=role, node=name[:12], peer=context.peer())
        return discovery_pb2.IssueCertificateResponse(cert_pem=cert, bundle_pem=self.authority.bundle_pem)

    async def RenewCertificate(self, request, context):
        await self._authority(context)
        peer = self.authority.peer(context)
        cluster = peer.cluster if peer is not None else ""
        await self._guard(context, cluster, NODES)
        name = await self._csr_name(context, request.csr_pem)
        if name != peer.common_name:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "a renewal keeps the certificate's own name")
        cert = await self._sign(context, request.csr_pem, cluster, peer.role, name)
        log.info("certificate renewed", cluster=cluster[:12], role=peer.role, node=name[:12])
        return discovery_pb2.IssueCertificateResponse(cert_pem=cert, bundle_pem=self.authority.bundle_pem)

    async def CreateToken(self, request, context):
        authority = await self._authority(context)
        await self._guard(context, "", (ROLE_ADMIN,))
        role = request.role or ROLE_WORKER
        if role not in NODE_ROLES:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown role {role!r}: {' or '.join(NODE_ROLES)}")
        cluster = request.cluster.strip().lower()
        if join_tokens.is_bootstrap(request.cluster):
            cluster, _ = await self._admitted(context, request.cluster)
        try:
            if not tokens.well_formed(cluster) or not await self.store.cluster_exists(cluster):
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such cluster: give its ID or one of its join tokens")
            token = join_tokens.new_token(authority.digest)
            await self.join_tokens.add(token, cluster, role)
            retired = await self.join_tokens.retire(cluster, role, keep=token) if request.rotate else 0
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        log.info("join token rotated" if request.rotate else "join token created", cluster=cluster[:12], role=role,
                 token=token.masked, retired=retired)
        return discovery_pb2.CreateTokenResponse(token=str(token), cluster_id=cluster)

    async def WatchCertificate(self, request, context):
        authority = await self._authority(context)
        peer = authority.peer(context)
        await self._guard(context, peer.cluster if peer is not None else "", NODES)
        signer = authority.signer_of((context.auth_context().get("x509_pem_cert") or [b""])[0])
        bundle = [d.lower() for d in request.bundle_digests[:8]]
        holder = rotation.Holder(f"{peer.cluster}/{peer.common_name}", signer, frozenset(bundle))
        try:
            lease = await self.holders.hold(peer.cluster, peer.common_name, signer, bundle)
        except StoreUnavailable as exc:
            await self._unavailable(context, exc)
        last = None
        while True:             # until the node closes the stream; its record then runs out (discovery.holders)
            state = authority.state          # phase and roots of one reading of D
            phase = state.phase
            status = (phase, not rotation.holder_current(phase, holder, state.digests))
            if status != last:
                if status[1]:
                    log.info("certificate renewal asked", cluster=peer.cluster[:12], node=peer.common_name[:12],
                             phase=phase)
                yield discovery_pb2.CertificateStatus(phase=status[0], renew=status[1])
                last = status
            await self.rotation.wait_change(REFRESH_EVERY)
            try:
                await self.holders.keep(lease)
            except StoreUnavailable as exc:      # the lease outlives a short outage; said once per try
                log.warning("cannot refresh a certificate holder's lease", error=str(exc))
