"""The etcd layout of membership, shared by the discovery daemon and the `etcd://` scheme.

Keys (values are protobuf `swarm.v1.Node` bytes unless said otherwise):

    /swarmd/clusters/<sha256(token) hex>                 JSON {"created": RFC 3339}
    /swarmd/clusters/<hash>/nodes/<node_id>              Node, attached to the node's lease
    /swarmd/clusters/<hash>/names/<node name>            node_id, same lease (unique names)
    <PREFIX>/nodes/<node_id>, <PREFIX>/names/<name>      the same under an etcd:// prefix

A node is alive while its lease is: an agent that stops heartbeating disappears when the lease
expires, and every key it holds goes with it. Tokens are never stored, only their hash.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import time
from typing import AsyncIterator, Awaitable, Callable, TypeVar

import aetcd
import aetcd.exceptions
import grpc

from swarmd.proto.swarm.v1 import types_pb2
from swarmd.common import logs
from swarmd.common.etcd_tls import EtcdTLS
from swarmd.common.membership.etcd_secure_client import open_client
from swarmd.common.membership.lease_keeper import LeaseKeepers

log = logs.get("membership.etcd")

CLUSTERS_ROOT = "/swarmd/clusters"
MIN_TTL_SECONDS = 2
T = TypeVar("T")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.lower().encode()).hexdigest()


def cluster_key(token: str) -> str:
    """The cluster's own key, which is also the base of its node keys."""
    return f"{CLUSTERS_ROOT}/{token_hash(token)}"


def nodes_prefix(base: str) -> str:
    return f"{base}/nodes/"


def node_key(base: str, node_id: str) -> str:
    return f"{base}/nodes/{node_id}"


def name_key(base: str, name: str) -> str:
    return f"{base}/names/{name}"


def intent_prefix(base: str) -> str:
    """Where a cluster's intent records live (see swarmd.common.membership.intents)."""
    return f"{base.rstrip('/')}/intent/"


def node_intent_key(node_id: str) -> str:
    """The key of one node's intent record, relative to intent_prefix."""
    return f"nodes/{node_id}"


def is_removed(value: bytes | None) -> bool:
    """Whether a node intent record (JSON) says the node was removed (`docker node rm`)."""
    if not value:
        return False
    try:
        return bool(json.loads(value).get("removed"))
    except (ValueError, AttributeError):
        return False


def removed_message(node_id: str) -> str:
    return (f"node {node_id} was removed from the cluster (docker node rm): its ID is retired. To join "
            "this host again as a new node, remove the node-id file from the agent's --state-dir and "
            "start the agent: it gets an ID of its own")


def lease_seconds(ttl: float) -> int:
    """etcd leases are whole seconds; never below what a single etcd member accepts."""
    return max(MIN_TTL_SECONDS, math.ceil(ttl))


def cluster_record() -> bytes:
    return json.dumps({"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()


def name_taken_message(name: str, holder_id: str, holder_addr: str) -> str:
    return f'node name "{name}" is already held by live node {holder_id[:12]} at {holder_addr}'


def same_instance(held: types_pb2.NodeInfo, newcomer: types_pb2.NodeInfo) -> bool:
    """Whether a registration of a live node's ID comes from the same agent (the same address and
    engine: a restart, which resumes) rather than from a copy of its ID elsewhere (a clone)."""
    engines_agree = not held.engine_id or not newcomer.engine_id or held.engine_id == newcomer.engine_id
    return held.addr == newcomer.addr and engines_agree


def id_taken_message(held: types_pb2.NodeInfo, newcomer: types_pb2.NodeInfo) -> str:
    """Classic swarm logged a cloned engine ID as "ID duplicated"; this says which two hosts share
    the node ID and how to give the clone its own."""
    def where(info: types_pb2.NodeInfo) -> str:
        return f"{info.addr} (engine {info.engine_id[:12] or 'unknown'})"
    return (f"ID duplicated: node ID {held.id} is held by live node {held.name!r} at {where(held)}, "
            f"and this agent at {where(newcomer)} carries the same ID (a cloned host or a copied state "
            "directory). On the clone, remove the node-id file from the agent's --state-dir and start "
            "it again: it gets an ID of its own")


def invalid_node_info(info: types_pb2.NodeInfo) -> str | None:
    """Why a registration cannot be stored, or None if it can."""
    missing = [f for f in ("id", "name", "addr") if not getattr(info, f)]
    if missing:
        return f"node registration is missing its {', '.join(missing)}"
    if "/" in info.id:
        return f"invalid node ID {info.id!r}: must not contain '/'"
    return None


class StoreUnavailable(ConnectionError):
    """etcd could not be reached (or did not answer in time)."""


class NameTaken(Exception):
    """Another live node (a different node ID) holds the name."""


class IdTaken(Exception):
    """A live registration from another address or engine holds the node ID: a clone."""


class UnknownCluster(Exception):
    """A registration under a cluster key that is not there (no cluster with that token)."""


class NodeRemoved(Exception):
    """The node ID was retired by `docker node rm`: it may not register again."""


class _Raced(Exception):
    """A registration's transaction lost to a concurrent registration of the same node ID."""


RACE_RETRIES = 3


class LeaseGone(Exception):
    """The node's registration or lease no longer exists: register again."""


WATCH_CHECK_EVERY = 2.0                   # seconds a quiet watch waits before checking etcd
WATCH_CHECK_KEY = b"/swarmd/watch-check/"  # never written: reading it costs etcd nothing


class EtcdStore:
    """One etcd client over a list of endpoints; a failed call resets it onto the next endpoint."""

    def __init__(self, endpoints: list[tuple[str, int]] | tuple[tuple[str, int], ...], timeout: float = 5.0,
                 tls: EtcdTLS | None = None):
        if not endpoints:
            raise ValueError("no etcd endpoint")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.tls = tls                     # None: plain gRPC; else TLS (see swarmd.common.etcd_tls)
        self._index = 0
        self._client: aetcd.Client | None = None
        self._generation = 0
        self._keeper: LeaseKeepers | None = None
        self._answered_at = float("-inf")   # loop time of the last call etcd answered

    @property
    def endpoint(self) -> str:
        host, port = self.endpoints[self._index]
        return f"{host}:{port}"

    def _current(self) -> tuple[aetcd.Client, int]:
        if self._client is None:
            host, port = self.endpoints[self._index]
            self._client = open_client(host, port, self.tls, timeout=self.timeout)
            self._generation += 1
        return self._client, self._generation

    async def _reset(self, generation: int) -> None:
        if generation != self._generation or self._client is None:
            return
        client, self._client = self._client, None
        self._index = (self._index + 1) % len(self.endpoints)
        await _close_quietly(client)

    async def run(self, op: Callable[[aetcd.Client], Awaitable[T]]) -> T:
        """Runs `op(client)` with a deadline; connection failures become StoreUnavailable.

        A call that runs out of time while other calls on the same client were answered meanwhile
        says the process is behind (its event loop, its queue of calls), not that etcd or the
        connection is gone: the client is kept. Resetting it there would fail every call in
        flight, the lease keep-alive stream with them, and turn an overload into an outage."""
        client, generation = self._current()
        endpoint = self.endpoint
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            # asyncio.timeout rather than wait_for: no task of its own per call (a renewal's
            # share of a discovery daemon's CPU was 4 % in wait_for's task and timer)
            async with asyncio.timeout(self.timeout):
                result = await op(client)
        except _TIMED_OUT as exc:
            if self._answered_at > started and generation == self._generation:
                raise StoreUnavailable(f"etcd at {endpoint} did not answer within {self.timeout:g}s: "
                                       "this process is overloaded") from exc
            await self._reset(generation)
            raise StoreUnavailable(f"etcd at {endpoint} unavailable: {_describe(exc)}") from exc
        except _CUT_OFF as exc:
            if caller_cancelled(exc):
                raise
            await self._reset(generation)
            raise StoreUnavailable(f"etcd at {endpoint} unavailable: {_describe(exc)}") from exc
        except Exception:
            self._answered_at = loop.time()     # a refusal (LeaseGone, NameTaken…) is an answer too
            raise
        self._answered_at = loop.time()
        return result

    async def watch_prefix(self, prefix: bytes, start_revision: int) -> AsyncIterator:
        """Events under `prefix` from `start_revision`; raises StoreUnavailable when the watch breaks.

        A watch stream can outlive its etcd silently (a restart between two reads, a client
        reset by another call), so while no event comes the watch checks, every
        WATCH_CHECK_EVERY seconds, that its client is still the store's and that etcd still
        answers as the same raft term: otherwise it ends, and the caller lists and watches anew."""
        client, generation = self._current()
        endpoint = self.endpoint
        try:
            watch = await asyncio.wait_for(
                client.watch_prefix(prefix, start_revision=start_revision), self.timeout)
            term = await self._raft_term(client)
        except _CUT_OFF as exc:
            if caller_cancelled(exc):
                raise
            await self._reset(generation)
            raise StoreUnavailable(f"etcd at {endpoint} unavailable: {_describe(exc)}") from exc
        events = watch.__aiter__()
        pending: asyncio.Future | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(events.__anext__())
                done, _ = await asyncio.wait({pending}, timeout=WATCH_CHECK_EVERY)
                if done:
                    finished, pending = pending, None
                    try:
                        event = finished.result()
                    except StopAsyncIteration:
                        break
                    yield event
                    continue
                if self._client is not client or self._generation != generation:
                    raise StoreUnavailable(f"etcd watch on {endpoint} dropped: the client was reset")
                try:
                    now = await self._raft_term(client)
                except _UNAVAILABLE as exc:
                    await self._reset(generation)
                    raise StoreUnavailable(f"etcd at {endpoint} unavailable: {_describe(exc)}") from exc
                if now != term:
                    raise StoreUnavailable(f"etcd at {endpoint} restarted or changed leader (term {term} -> {now})")
        except StoreUnavailable:
            raise
        except (aetcd.exceptions.ClientError, grpc.RpcError, OSError, asyncio.CancelledError) as exc:
            if caller_cancelled(exc):
                raise
            await self._reset(generation)
            raise StoreUnavailable(f"etcd watch on {endpoint} broke: {_describe(exc)}") from exc
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            try:
                await asyncio.wait_for(watch.cancel(), 1.0)
            except Exception:  # the client may be closed already
                pass
        raise StoreUnavailable(f"etcd watch on {endpoint} ended")

    async def _raft_term(self, client: aetcd.Client) -> int:
        """The raft term etcd answers a cheap read with: it changes when etcd restarts."""
        reply = await asyncio.wait_for(client.get_prefix(WATCH_CHECK_KEY), self.timeout)
        return reply.header.raft_term

    def keeper(self, client: aetcd.Client) -> LeaseKeepers:
        """The lease keep-alive streams of `client` (the one `run` handed out); new ones per client."""
        if self._keeper is None or self._keeper.client is not client:
            if self._keeper is not None:
                self._keeper.close()
            self._keeper = LeaseKeepers(client)
        return self._keeper

    @property
    def renewals_in_flight(self) -> int:
        """Lease renewals sent on the keep-alive streams and not answered yet."""
        return self._keeper.in_flight if self._keeper is not None else 0

    async def ping(self) -> None:
        await self.run(lambda c: c.get(CLUSTERS_ROOT.encode()))

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None
        client, self._client = self._client, None
        self._generation += 1
        if client is not None:
            await _close_quietly(client)

    # -- clusters -------------------------------------------------------------------------------

    async def create_cluster(self, token: str) -> None:
        await self.run(lambda c: c.put(cluster_key(token).encode(), cluster_record()))

    async def cluster_exists(self, token: str) -> bool:
        return await self.run(lambda c: c.get(cluster_key(token).encode())) is not None


# what an etcd operation raises when etcd or the connection to it is gone; grpc.aio.BaseError
# (UsageError "channel closed", InternalError) comes from a channel another operation just reset
_UNAVAILABLE = (aetcd.exceptions.ClientError, grpc.RpcError, grpc.aio.BaseError, asyncio.TimeoutError, OSError)
# a call's own deadline (asyncio's) or the one the client gives each gRPC call (DEADLINE_EXCEEDED)
_TIMED_OUT = (asyncio.TimeoutError, aetcd.exceptions.ConnectionTimeoutError)


# … and what a call ends with when another operation's reset closed its channel: grpc.aio
# cancels the calls of a closed channel, so a CancelledError that is not the caller's own
# (`caller_cancelled`) is etcd's failure, raised as StoreUnavailable like the others
_CUT_OFF = (*_UNAVAILABLE, asyncio.CancelledError)


def caller_cancelled(exc: BaseException) -> bool:
    """Whether `exc`, caught now, is the running task's own cancellation (to be raised as is)."""
    if not isinstance(exc, asyncio.CancelledError):
        return False
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


async def _close_quietly(client: aetcd.Client) -> None:
    try:
        await asyncio.wait_for(client.close(), 2.0)
    except Exception:
        pass


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, asyncio.CancelledError):
        return "its connection was reset"
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def decode_node(value: bytes) -> types_pb2.Node:
    node = types_pb2.Node()
    node.ParseFromString(value)
    return node


class NodeSet:
    """The live nodes under one base key: register, heartbeat, deregister, list, watch."""

    def __init__(self, store: EtcdStore, base: str):
        self.store = store
        self.base = base.rstrip("/")

    async def register(self, info: types_pb2.NodeInfo, ttl: float, in_cluster: bool = False) -> tuple[int, int]:
        """Stores the node under a new lease; returns (lease ID, lease seconds).

        Raises NameTaken when another live node holds the name, IdTaken when a live node of
        another address or engine holds the ID (see `same_instance`), NodeRemoved when the ID
        was removed from the cluster; with `in_cluster` (the base is a cluster's own key),
        UnknownCluster when that key is not there. A node re-registering with the
        same ID from the same agent replaces its previous registration (and releases its previous
        lease): a restarted agent resumes.
        """
        node = types_pb2.Node(info=info, state=types_pb2.NODE_STATE_HEALTHY)
        node.updated_at.GetCurrentTime()
        seconds = lease_seconds(ttl)
        nkey = node_key(self.base, info.id).encode()
        mkey = name_key(self.base, info.name).encode()
        node_id = info.id.encode()
        value = node.SerializeToString()

        removal_key = (intent_prefix(self.base) + node_intent_key(info.id)).encode()

        async def op(c: aetcd.Client) -> int:
            tx = c.transactions
            # the cluster's key, the removal record and the node's previous registration in one round
            # trip: three etcd calls in the common case (this read, the lease grant, the write)
            reads = [tx.get(removal_key), tx.get(nkey)] + ([tx.get(self.base.encode())] if in_cluster else [])
            _, (removals, previous_kvs, *cluster) = await c.transaction(compare=[], success=reads, failure=[])
            if in_cluster and not cluster[0]:
                raise UnknownCluster(self.base)
            if removals and is_removed(removals[0][0]):
                raise NodeRemoved(removed_message(info.id))
            previous = previous_kvs[0][1] if previous_kvs else None
            if previous is not None and not same_instance(decode_node(previous.value).info, info):
                raise IdTaken(id_taken_message(decode_node(previous.value).info, info))
            lease = await c.lease(seconds)
            puts = [tx.put(mkey, node_id, lease=lease.id), tx.put(nkey, value, lease=lease.id)]
            try:
                # the node key as read: a registration racing in between is seen on the next try
                unchanged = (tx.mod(nkey) == previous.mod_revision) if previous is not None \
                    else (tx.version(nkey) == 0)
                ok, responses = await c.transaction(compare=[unchanged, tx.version(mkey) == 0], success=puts,
                                                    failure=[tx.get(mkey)])
                if not ok:
                    holder = responses[0][0][0].decode() if responses and responses[0] else ""
                    if holder == info.id:
                        ok, _ = await c.transaction(compare=[unchanged, tx.value(mkey) == node_id],
                                                    success=puts, failure=[])
                    if not ok and holder in ("", info.id):
                        # the name is free or this node's own: the node key changed since it was read, by
                        # a registration of this very ID racing in (an agent's retry after its first try
                        # timed out on a busy daemon). Not a refusal: read again and retry.
                        raise _Raced()
                    if not ok:
                        holder_kv = await c.get(node_key(self.base, holder).encode()) if holder else None
                        addr = decode_node(holder_kv.value).info.addr if holder_kv else "an unknown address"
                        raise NameTaken(name_taken_message(info.name, holder, addr))
            except BaseException:
                with contextlib.suppress(Exception):
                    await c.revoke_lease(lease.id)
                raise
            if previous is not None and previous.lease and previous.lease != lease.id:
                await _revoke_quietly(c, previous.lease)
            return lease.id

        for _ in range(RACE_RETRIES - 1):
            try:
                return await self.store.run(op), seconds
            except _Raced:
                continue
        try:
            return await self.store.run(op), seconds
        except _Raced:
            raise StoreUnavailable(f"node {info.id[:12]} kept registering concurrently: try again") from None

    async def heartbeat(self, node_id: str, lease_id: int) -> int:
        """Renews the node's lease; returns the remaining seconds. Raises LeaseGone."""
        nkey = node_key(self.base, node_id).encode()

        async def op(c: aetcd.Client) -> int:
            # a serializable read: a stale answer cannot keep a lost node alive, since a registration
            # that replaced or removed this one revoked the lease, and the renewal below reports that
            kv = await c.get(nkey, serializable=True)
            if kv is None or kv.lease != lease_id:
                raise LeaseGone(f"node {node_id[:12]} is not registered under lease {lease_id:x}")
            ttl = await self.store.keeper(c).refresh(lease_id)
            if ttl <= 0:
                raise LeaseGone(f"lease {lease_id:x} of node {node_id[:12]} has expired")
            return ttl

        return await self.store.run(op)

    async def deregister(self, node_id: str) -> bool:
        """Removes the node and its lease at once; False if it was not registered."""
        nkey = node_key(self.base, node_id).encode()

        async def op(c: aetcd.Client) -> bool:
            kv = await c.get(nkey)
            if kv is None:
                return False
            if kv.lease:
                await _revoke_quietly(c, kv.lease)
            await c.delete(nkey)
            return True

        return await self.store.run(op)

    async def list(self) -> list[types_pb2.Node]:
        listing = await self.store.run(lambda c: c.get_prefix(nodes_prefix(self.base).encode()))
        return [n for n in (self._decode(kv.key, kv.value) for kv in listing) if n is not None]

    async def session(self) -> AsyncIterator[tuple[str, types_pb2.Node | None]]:
        """Every node as "joined", then "synced", then live changes; raises StoreUnavailable."""
        prefix = nodes_prefix(self.base).encode()
        listing = await self.store.run(lambda c: c.get_prefix(prefix))
        revision = listing.header.revision
        nodes = [n for n in (self._decode(kv.key, kv.value) for kv in listing) if n is not None]
        for node in nodes:
            yield "joined", node
        yield "synced", None
        async for event in self.store.watch_prefix(prefix, revision + 1):
            node_id = event.kv.key[len(prefix):].decode(errors="replace")
            if event.kind == "DELETE":
                yield "left", types_pb2.Node(info=types_pb2.NodeInfo(id=node_id))
                continue
            node = self._decode(event.kv.key, event.kv.value)
            if node is not None:
                yield "updated", node

    def _decode(self, key: bytes, value: bytes) -> types_pb2.Node | None:
        try:
            node = decode_node(value)
        except Exception as exc:  # a value this version cannot read: skip it, say so
            log.warning("skipping unreadable node record", key=key.decode(errors="replace"), error=str(exc))
            return None
        if not node.info.id:
            log.warning("skipping node record without an ID", key=key.decode(errors="replace"))
            return None
        return node


async def _revoke_quietly(c: aetcd.Client, lease_id: int) -> None:
    try:
        await c.revoke_lease(lease_id)
    except aetcd.exceptions.ClientError as exc:
        if "not found" not in str(exc).lower():
            raise
