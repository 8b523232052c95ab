"""The agent's side of the Heartbeats stream (token_client.TokenRegistrar), against small in-process
discovery servers on real gRPC (no etcd: leases held in a dict): one stream for many heartbeats,
a new one after a failure, a re-registration or a deregistration, nothing left running after
close, and the Heartbeat call kept for good against a daemon that predates the stream."""
from __future__ import annotations

import asyncio
import itertools

import grpc
import pytest

from swarmd.common.membership import MembershipUnavailable
from swarmd.common.membership import token_client
from swarmd.common.membership.registrar import RegistrationLost
from swarmd.common.membership.token_client import TokenRegistrar
from swarmd.common.tls import RenewingChannel
from swarmd.proto.swarm.v1 import discovery_pb2, discovery_pb2_grpc, types_pb2

pytestmark = pytest.mark.timeout(60)

TOKEN = "0" * 32
LOST = "lease of node n1 has expired: register again"


class Leases:
    """What a discovery daemon answers, from memory; counts the calls and streams it served."""

    def __init__(self) -> None:
        self.leases: dict[str, int] = {}
        self.ids = itertools.count(100)
        self.unary = 0                 # Heartbeat calls answered
        self.opened = 0                # Heartbeats streams opened
        self.open = 0                  # ... and still open
        self.streamed = 0              # heartbeats answered on a stream
        self.stalled: set[str] = set()   # node IDs whose next heartbeat is never answered
        self.changed = asyncio.Condition()

    async def Register(self, request, context):
        self.leases[request.node.id] = lease = next(self.ids)
        return discovery_pb2.RegisterResponse(lease_id=lease, heartbeat_period_ms=50, ttl_ms=150)

    async def answer(self, request, context) -> discovery_pb2.HeartbeatResponse:
        if request.node_id in self.stalled:
            self.stalled.discard(request.node_id)
            await asyncio.Event().wait()          # until the caller gives up (its stream cancelled)
        if self.leases.get(request.node_id) != request.lease_id:
            await context.abort(grpc.StatusCode.NOT_FOUND, LOST)
        return discovery_pb2.HeartbeatResponse(heartbeat_period_ms=50, remaining_ttl_ms=150)

    async def Heartbeat(self, request, context):
        self.unary += 1
        return await self.answer(request, context)

    async def Heartbeats(self, request_iterator, context):
        await self._count(opened=1, open=1)
        try:
            while (request := await context.read()) is not grpc.aio.EOF:
                reply = await self.answer(request, context)
                self.streamed += 1
                await context.write(reply)
        finally:
            await self._count(open=-1)

    async def Deregister(self, request, context):
        self.leases.pop(request.node_id, None)
        return discovery_pb2.DeregisterResponse()

    async def _count(self, **delta: int) -> None:
        async with self.changed:
            for name, d in delta.items():
                setattr(self, name, getattr(self, name) + d)
            self.changed.notify_all()

    async def until(self, predicate, what: str) -> None:
        async def wait():
            async with self.changed:
                await self.changed.wait_for(predicate)
        try:
            await asyncio.wait_for(wait(), 10)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None


class CurrentDaemon(Leases, discovery_pb2_grpc.DiscoveryServicer):
    pass


def old_daemon_handler(leases: Leases) -> grpc.GenericRpcHandler:
    """The Discovery service as a daemon from before the Heartbeats stream serves it: the stream is
    not registered at all, so gRPC itself answers UNIMPLEMENTED."""
    def unary(method, request_type, response_type):
        return grpc.unary_unary_rpc_method_handler(method, request_deserializer=request_type.FromString,
                                                   response_serializer=response_type.SerializeToString)
    return grpc.method_handlers_generic_handler("swarm.v1.Discovery", {
        "Register": unary(leases.Register, discovery_pb2.RegisterRequest, discovery_pb2.RegisterResponse),
        "Heartbeat": unary(leases.Heartbeat, discovery_pb2.HeartbeatRequest, discovery_pb2.HeartbeatResponse),
        "Deregister": unary(leases.Deregister, discovery_pb2.DeregisterRequest, discovery_pb2.DeregisterResponse),
    })


async def serve(old: bool = False) -> tuple[grpc.aio.Server, Leases, str]:
    server = grpc.aio.server()
    if old:
        leases = Leases()
        server.add_generic_rpc_handlers((old_daemon_handler(leases),))
    else:
        leases = CurrentDaemon()
        discovery_pb2_grpc.add_DiscoveryServicer_to_server(leases, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, leases, f"127.0.0.1:{port}"


def info(node_id: str = "n1") -> types_pb2.NodeInfo:
    return types_pb2.NodeInfo(id=node_id, name=node_id, addr="127.0.0.1:1")


@pytest.fixture
async def daemon():
    server, leases, addr = await serve()
    yield leases, addr
    await server.stop(None)


async def test_heartbeats_go_as_messages_on_one_stream(daemon):
    leases, addr = daemon
    registrar = TokenRegistrar(TOKEN, addr)
    await registrar.register(info(), 0.15)
    for _ in range(5):
        assert await registrar._heartbeat() == 0.05
    assert (leases.opened, leases.open, leases.streamed, leases.unary) == (1, 1, 5, 0)
    await registrar.close()
    await leases.until(lambda: leases.open == 0, "the stream to end with close()")


async def test_a_new_registration_and_a_deregistration_each_drop_the_stream(daemon):
    leases, addr = daemon
    registrar = TokenRegistrar(TOKEN, addr)
    await registrar.register(info(), 0.15)
    await registrar._heartbeat()
    await registrar.register(info(), 0.15)          # a new lease: the old stream goes
    await leases.until(lambda: leases.open == 0, "the first stream to end")
    await registrar._heartbeat()
    assert (leases.opened, leases.open) == (2, 1)
    await registrar.deregister()
    await leases.until(lambda: leases.open == 0, "the stream to end with the deregistration")
    with pytest.raises(RegistrationLost, match=LOST):
        await registrar._heartbeat()                # on a third stream, which the refusal ends
    assert leases.opened == 3
    await registrar.close()


async def test_a_lost_lease_ends_the_stream_and_the_next_registration_heartbeats_on_a_new_one(daemon):
    leases, addr = daemon
    registrar = TokenRegistrar(TOKEN, addr)
    await registrar.register(info(), 0.15)
    await registrar._heartbeat()
    leases.leases.clear()                           # the lease ran out
    with pytest.raises(RegistrationLost, match=LOST):
        await registrar._heartbeat()
    await leases.until(lambda: leases.open == 0, "the refused stream to end")
    await registrar.register(info(), 0.15)
    await registrar._heartbeat()
    assert (leases.opened, leases.open, leases.unary) == (2, 1, 0)
    await registrar.close()


async def test_an_unanswered_heartbeat_drops_its_stream_and_the_next_opens_another(daemon, monkeypatch):
    monkeypatch.setattr(token_client, "CALL_TIMEOUT", 0.2)
    leases, addr = daemon
    registrar = TokenRegistrar(TOKEN, addr)
    await registrar.register(info(), 0.15)
    await registrar._heartbeat()
    leases.stalled.add("n1")
    with pytest.raises(MembershipUnavailable, match="heartbeat not answered"):
        await registrar._heartbeat()
    await leases.until(lambda: leases.open == 0, "the stalled stream to be cancelled")
    assert await registrar._heartbeat() == 0.05     # never the stalled heartbeat's late answer
    assert (leases.opened, leases.open, leases.unary) == (2, 1, 0)
    await registrar.close()


async def test_a_cancelled_heartbeat_drops_its_stream(daemon):
    leases, addr = daemon
    registrar = TokenRegistrar(TOKEN, addr)
    await registrar.register(info(), 0.15)
    leases.stalled.add("n1")
    beat = asyncio.create_task(registrar._heartbeat())
    await leases.until(lambda: leases.open == 1, "the stream to open")
    beat.cancel()
    with pytest.raises(asyncio.CancelledError):
        await beat
    await leases.until(lambda: leases.open == 0, "the stream to be cancelled with its heartbeat")
    assert await registrar._heartbeat() == 0.05
    await registrar.close()


async def test_a_daemon_gone_between_heartbeats_is_unavailable_then_a_new_stream_resumes():
    server, leases, addr = await serve()
    registrar = TokenRegistrar(TOKEN, addr)
    try:
        await registrar.register(info(), 0.15)
        await registrar._heartbeat()
        await server.stop(None)
        with pytest.raises(MembershipUnavailable, match=f"discovery at {addr}"):
            await registrar._heartbeat()
        port = addr.rsplit(":", 1)[1]
        server = grpc.aio.server()
        discovery_pb2_grpc.add_DiscoveryServicer_to_server(leases, server)
        assert server.add_insecure_port(f"127.0.0.1:{port}") == int(port)
        await server.start()
        for _ in range(100):             # the channel reconnects after its backoff (250 ms first)
            try:
                await registrar._heartbeat()
                break
            except MembershipUnavailable:
                await asyncio.sleep(0.05)
        assert leases.opened == 2 and leases.open == 1 and leases.unary == 0
    finally:
        await registrar.close()
        await server.stop(None)


async def test_a_daemon_without_the_stream_gets_heartbeat_calls_for_good():
    server, leases, addr = await serve(old=True)
    registrar = TokenRegistrar(TOKEN, addr)
    try:
        await registrar.register(info(), 0.15)
        for _ in range(3):
            assert await registrar._heartbeat() == 0.05
        assert leases.unary == 3 and not registrar.heartbeat_stream
        await registrar.register(info(), 0.15)      # a new registration does not try the stream again
        await registrar._heartbeat()
        assert leases.unary == 4
        leases.leases.clear()
        with pytest.raises(RegistrationLost, match=LOST):
            await registrar._heartbeat()
    finally:
        await registrar.close()
        await server.stop(None)


async def test_nothing_is_left_running_after_close(daemon):
    leases, addr = daemon
    before = asyncio.all_tasks()
    registrars = [TokenRegistrar(TOKEN, addr) for _ in range(5)]
    for i, r in enumerate(registrars):
        await r.register(info(f"n{i}"), 0.15)
        await r._heartbeat()
    await asyncio.gather(*(r.close() for r in registrars))
    await leases.until(lambda: leases.open == 0, "every stream to end")
    # the in-process server's own tasks (it serves on this loop) are not the client's to end
    left = {t.get_coro().__qualname__ for t in asyncio.all_tasks() - before}
    assert {name for name in left if not name.startswith(("AioServer.", "_handle_exceptions", "_schedule_rpc"))} \
        == set()


class Credentials:
    """What tls.RenewingChannel reads of live credentials: their generation, which a renewal bumps."""
    generation = 0


async def test_a_renewed_certificate_moves_the_stream_to_the_new_channel(daemon):
    # the daemon checks the caller's certificate on every message: a stream left on the connection
    # made with the old certificate would be refused once a CA rotation drops the old root
    leases, addr = daemon
    live = Credentials()
    registrar = TokenRegistrar(TOKEN, addr)
    registrar._channel = RenewingChannel(lambda: grpc.aio.insecure_channel(addr), live)
    registrar._stub = discovery_pb2_grpc.DiscoveryStub(registrar._channel)
    await registrar.register(info(), 0.15)
    await registrar._heartbeat()
    await registrar._heartbeat()
    assert (leases.opened, leases.streamed) == (1, 2)
    live.generation += 1                              # renewed: new calls go over a new channel
    await registrar._heartbeat()
    await leases.until(lambda: leases.open == 1 and leases.opened == 2, "the stream to move to the new channel")
    assert leases.streamed == 3 and leases.unary == 0
    await registrar.close()
