"""The `token://` scheme: membership through the discovery daemon's gRPC service. An agent's
heartbeats go as messages on one Heartbeats stream it keeps open (HeartbeatStream), or as Heartbeat
calls to a daemon that predates the stream."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import grpc

from swarmd.proto.swarm.v1 import discovery_pb2, discovery_pb2_grpc, types_pb2
from swarmd.common import logs
from swarmd.common.membership import (Membership, MemberEvent, MembershipError, MembershipUnavailable)
from swarmd.common.membership.registrar import LeaseRegistrar, RegistrationLost
from swarmd.common.membership.spread import spread
from swarmd.common.membership.watch import converging_watch
from swarmd.common.tls import RenewingChannel, open_channel

log = logs.get("membership.token")

CALL_TIMEOUT = 5.0
CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 5_000),
)
# Answers that will not change by asking again.
REFUSALS = {
    grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNIMPLEMENTED,
}

_KINDS = {
    discovery_pb2.NodeEvent.KIND_JOINED: "joined",
    discovery_pb2.NodeEvent.KIND_UPDATED: "updated",
    discovery_pb2.NodeEvent.KIND_LEFT: "left",
    discovery_pb2.NodeEvent.KIND_SYNCED: "synced",
}


def fingerprint(token: str) -> str:
    """What may be logged of a token."""
    return token[:4] + "…"


def translate(err: grpc.RpcError, addr: str) -> Exception:
    """A gRPC failure as MembershipError (refused) or MembershipUnavailable (try again)."""
    code = err.code()
    details = err.details() or code.name.lower()
    if code in REFUSALS:
        return MembershipError(details)
    return MembershipUnavailable(f"discovery at {addr}: {details}")


class _Client:
    def __init__(self, token: str, addr: str, tls=None):
        self.token = token
        self.addr = addr               # as given: one daemon, or several (A,B,C)
        self.tls = tls
        self._channel: grpc.aio.Channel | None = None
        self._stub: discovery_pb2_grpc.DiscoveryStub | None = None

    def _open(self, spread_key: str = "") -> discovery_pb2_grpc.DiscoveryStub:
        """The stub, its channel opened on first use over `addr` started at `spread_key`'s daemon
        (see membership.spread: agents spread their heartbeats over the daemons of a list)."""
        if self._stub is None:
            self._channel = open_channel(spread(self.addr, spread_key), self.tls, options=CHANNEL_OPTIONS,
                                         verify_as=self.addr)
            self._stub = discovery_pb2_grpc.DiscoveryStub(self._channel)
        return self._stub

    @property
    def stub(self) -> discovery_pb2_grpc.DiscoveryStub:
        return self._open()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


class TokenMembership(_Client, Membership):
    async def list_nodes(self) -> list[types_pb2.Node]:
        try:
            reply = await self.stub.ListNodes(discovery_pb2.ListNodesRequest(token=self.token),
                                              timeout=CALL_TIMEOUT)
        except grpc.RpcError as err:
            raise translate(err, self.addr) from None
        return list(reply.nodes)

    def watch(self) -> AsyncIterator[MemberEvent]:
        return converging_watch(self._session, f"token://{fingerprint(self.token)} via {self.addr}", log)

    async def _session(self):
        call = self.stub.WatchNodes(discovery_pb2.WatchNodesRequest(token=self.token))
        try:
            async for event in call:
                kind = _KINDS.get(event.kind)
                if kind is None:
                    continue
                yield kind, (event.node if kind != "synced" else None)
        except grpc.RpcError as err:
            raise translate(err, self.addr) from None
        finally:
            call.cancel()


class _StreamEnded(Exception):
    """The daemon ended a Heartbeats stream without an error (it shut down between two heartbeats)."""


class HeartbeatStream:
    """One agent's Heartbeats stream (discovery.proto): opened by the first heartbeat that needs it
    and kept open, each heartbeat one request and its answer on it instead of a new Heartbeat call
    (about half the CPU of a call, on both sides). A heartbeat that fails or is given up on (its
    timeout, a cancellation) drops the stream, so that no answer is ever read for another
    heartbeat's request: the next heartbeat opens a new one."""

    def __init__(self) -> None:
        self._call = None
        self._via = None                   # the connection the open stream went over
        self._lock = asyncio.Lock()        # one heartbeat on the stream at a time: answers in order

    async def exchange(self, stub: discovery_pb2_grpc.DiscoveryStub, request: discovery_pb2.HeartbeatRequest,
                       timeout: float, via: object = None) -> discovery_pb2.HeartbeatResponse:
        """The answer to `request`; raises grpc.aio.AioRpcError as the stream failed (UNIMPLEMENTED:
        the daemon predates it), TimeoutError, or _StreamEnded. `via`: the channel a new call would
        take now; a stream opened over another one is replaced (see TokenRegistrar._heartbeat)."""
        async with self._lock:
            if self._call is not None and (self._call.done() or via is not self._via):
                self.drop()
            if self._call is None:
                self._call, self._via = stub.Heartbeats(), via
            call = self._call
            try:
                async with asyncio.timeout(timeout):
                    try:
                        await call.write(request)
                    except asyncio.InvalidStateError:
                        pass                 # the stream had already ended: the read says how
                    reply = await call.read()
                if reply is grpc.aio.EOF:
                    raise _StreamEnded("discovery ended the heartbeat stream")
                return reply
            except BaseException:
                if self._call is call:
                    self.drop()
                raise

    def drop(self) -> None:
        """Cancels the stream, if one is open (the daemon sees the agent's stream end)."""
        call, self._call, self._via = self._call, None, None
        if call is not None:
            call.cancel()


class TokenRegistrar(_Client, LeaseRegistrar):
    source = "discovery"

    def __init__(self, token: str, addr: str, tls=None):
        _Client.__init__(self, token, addr, tls)
        LeaseRegistrar.__init__(self)
        self.lease_id = 0
        self.heartbeats = HeartbeatStream()
        self.heartbeat_stream = True     # False once the daemon answered that it lacks the Heartbeats stream

    async def _register(self, info: types_pb2.NodeInfo, ttl: float) -> float | None:
        self.heartbeats.drop()           # a new lease: its heartbeats go on a new stream
        request = discovery_pb2.RegisterRequest(token=self.token, node=info, ttl_ms=int(ttl * 1000))
        try:
            reply = await self._open(info.id).Register(request, timeout=CALL_TIMEOUT)
        except grpc.RpcError as err:
            raise translate(err, self.addr) from None
        self.lease_id = reply.lease_id
        return reply.heartbeat_period_ms / 1000 if reply.heartbeat_period_ms > 0 else None

    async def _heartbeat(self) -> float | None:
        request = discovery_pb2.HeartbeatRequest(token=self.token, node_id=self.node_id or "",
                                                 lease_id=self.lease_id)
        # over the channel the registration used (membership.spread): the same daemon
        stub = self._open(self.node_id or "")
        try:
            reply = await self._streamed_heartbeat(stub, request) if self.heartbeat_stream else None
            if reply is None:
                reply = await stub.Heartbeat(request, timeout=CALL_TIMEOUT)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise RegistrationLost(err.details() or "lease not found") from None
            raise translate(err, self.addr) from None
        return reply.heartbeat_period_ms / 1000 if reply.heartbeat_period_ms > 0 else None

    async def _streamed_heartbeat(self, stub, request) -> discovery_pb2.HeartbeatResponse | None:
        """The answer on the Heartbeats stream; None when the daemon predates the stream (the
        registrar then keeps to the Heartbeat call, as an older agent did). Raises grpc.RpcError
        as the Heartbeat call would, MembershipUnavailable for a timeout or an ended stream."""
        # bootstrap mode: a renewed certificate opens a new channel (tls.RenewingChannel), and the
        # daemon checks the caller's certificate on every message, so the stream follows it there;
        # kept on the old connection, it would present the old certificate until a CA rotation
        # made the daemon refuse it
        via = self._channel.current() if isinstance(self._channel, RenewingChannel) else self._channel
        try:
            return await self.heartbeats.exchange(stub, request, CALL_TIMEOUT, via)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
            log.info("discovery predates the heartbeat stream; heartbeats go as calls", discovery=self.addr)
            self.heartbeat_stream = False
            return None
        except TimeoutError:
            raise MembershipUnavailable(f"discovery at {self.addr}: heartbeat not answered "
                                        f"within {CALL_TIMEOUT:.0f}s") from None
        except _StreamEnded as exc:
            raise MembershipUnavailable(f"discovery at {self.addr}: {exc}") from None

    async def _deregister(self, node_id: str) -> None:
        self.heartbeats.drop()
        try:
            await self._open(node_id).Deregister(discovery_pb2.DeregisterRequest(token=self.token, node_id=node_id),
                                                 timeout=CALL_TIMEOUT)
        except grpc.RpcError as err:
            raise translate(err, self.addr) from None

    async def close(self) -> None:
        self.heartbeats.drop()
        await _Client.close(self)
