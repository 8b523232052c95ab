"""Node leases on the lab's etcd: renewals over one shared keep-alive stream, racing registrations."""
from __future__ import annotations

import asyncio
import secrets

import grpc
import pytest

from swarmd.discovery.service import REGISTERING_AT_ONCE, DiscoveryService
from swarmd.proto.swarm.v1 import discovery_pb2, discovery_pb2_grpc
from swarmd.common.membership.etcd_store import (EtcdStore, LeaseGone, NodeSet, StoreUnavailable, UnknownCluster,
                                                 cluster_key)
from swarmd.proto.swarm.v1 import types_pb2


def node(i: int, run: str) -> types_pb2.NodeInfo:
    return types_pb2.NodeInfo(id=f"lease-{run}-{i:04d}", name=f"lease-{run}-{i}", addr=f"127.0.0.1:{20000 + i}",
                              engine_id=f"engine-{i}")


@pytest.fixture
async def nodes(lab):
    host, port = lab.etcd.endpoint.rsplit(":", 1)
    store = EtcdStore([(host, int(port))])
    token = secrets.token_hex(16)
    await store.create_cluster(token)
    try:
        yield NodeSet(store, cluster_key(token))
    finally:
        await store.close()


async def test_a_registration_in_a_cluster_reads_the_cluster_key_with_the_node_and_leaves_nothing_if_absent(nodes):
    """Discovery's Register reads the cluster's key in the registration's first round trip (one
    etcd call less than a separate check): an absent cluster stores no node."""
    run = secrets.token_hex(3)
    lease, _ = await nodes.register(node(0, run), 30, in_cluster=True)
    assert lease and [n.info.id for n in await nodes.list()] == [node(0, run).id]
    absent = NodeSet(nodes.store, cluster_key(secrets.token_hex(16)))
    with pytest.raises(UnknownCluster):
        await absent.register(node(1, run), 30, in_cluster=True)
    assert await absent.list() == []
    # a base that is no cluster's key (the etcd:// scheme's prefix) registers as before
    lease, _ = await absent.register(node(1, run), 30)
    assert lease and [n.info.id for n in await absent.list()] == [node(1, run).id]


async def test_concurrent_renewals_of_many_leases_each_get_their_own_answer(nodes):
    run = secrets.token_hex(3)
    leases = [(info.id, (await nodes.register(info, 30))[0]) for info in (node(i, run) for i in range(40))]
    # every lease renewed five times at once, interleaved on one stream
    answers = await asyncio.gather(*(nodes.heartbeat(nid, lid) for _ in range(5) for nid, lid in leases))
    assert len(answers) == 200 and all(25 <= ttl <= 30 for ttl in answers)

    gone_id, gone_lease = leases[0]
    assert await nodes.deregister(gone_id)
    with pytest.raises(LeaseGone):
        await nodes.heartbeat(gone_id, gone_lease)
    assert all(ttl > 0 for ttl in await asyncio.gather(*(nodes.heartbeat(n, lid) for n, lid in leases[1:])))


async def test_a_revoked_lease_is_reported_gone_even_where_the_node_key_still_names_it(nodes):
    info = node(0, secrets.token_hex(3))
    lease, _ = await nodes.register(info, 30)
    await nodes.store.run(lambda c: c.revoke_lease(lease))
    with pytest.raises(LeaseGone):
        await nodes.heartbeat(info.id, lease)


async def test_an_agent_racing_its_own_registration_is_not_refused(nodes):
    # an agent whose first try timed out on a busy daemon tries again while the first is still
    # being written: both must succeed (the later one wins), never "name already held"
    info = node(1, secrets.token_hex(3))
    results = await asyncio.gather(*(nodes.register(info, 30) for _ in range(3)))
    listed = [n for n in await nodes.list() if n.info.id == info.id]
    assert len(listed) == 1
    live = [lease for lease, _ in results if await _alive(nodes, info.id, lease)]
    assert len(live) == 1


async def _alive(nodes: NodeSet, node_id: str, lease: int) -> bool:
    try:
        await nodes.heartbeat(node_id, lease)
    except LeaseGone:
        return False
    return True


async def _slow_then_answered(store: EtcdStore, seconds: float):
    """An operation that gets its answer from etcd only after `seconds` (a busy process's call)."""
    async def op(c):
        await asyncio.sleep(seconds)
        return await c.get(b"/swarmd/slow-call")
    return await store.run(op)


async def test_a_call_that_runs_out_of_time_while_etcd_answers_others_keeps_the_client(nodes):
    # an overloaded daemon, not etcd: the connection and every other call in flight survive
    store = nodes.store
    info = node(2, secrets.token_hex(3))
    lease, _ = await nodes.register(info, 30)
    client_before = store._current()
    store.timeout = 0.6
    slow = asyncio.ensure_future(_slow_then_answered(store, 5))
    await asyncio.sleep(0.2)
    assert await nodes.heartbeat(info.id, lease) > 0          # answered while the slow call waits
    with pytest.raises(StoreUnavailable, match="overloaded"):
        await slow
    assert store._current() == client_before
    assert await nodes.heartbeat(info.id, lease) > 0


async def test_a_call_that_runs_out_of_time_with_etcd_silent_resets_the_client(nodes):
    store = nodes.store
    await store.ping()
    client_before = store._current()
    store.timeout = 0.3
    with pytest.raises(StoreUnavailable, match="timed out"):
        await _slow_then_answered(store, 5)
    assert store._current() != client_before                  # a new client, the next endpoint
    store.timeout = 5.0
    await store.ping()


async def test_a_burst_of_registrations_is_let_through_a_few_at_a_time(nodes, monkeypatch):
    # renewals of the nodes already registered must not queue behind a fleet's registrations
    service = DiscoveryService(nodes.store)
    server = grpc.aio.server()
    discovery_pb2_grpc.add_DiscoveryServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    at_once = highest = 0
    register = NodeSet.register

    async def counted(self, info, ttl, **how):
        nonlocal at_once, highest
        at_once += 1
        highest = max(highest, at_once)
        try:
            await asyncio.sleep(0.05)          # a slow etcd: the burst piles up at the gate
            return await register(self, info, ttl, **how)
        finally:
            at_once -= 1

    monkeypatch.setattr(NodeSet, "register", counted)
    token = secrets.token_hex(16)
    await nodes.store.create_cluster(token)
    run = secrets.token_hex(3)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = discovery_pb2_grpc.DiscoveryStub(channel)
            replies = await asyncio.gather(*(stub.Register(discovery_pb2.RegisterRequest(token=token, node=node(i, run)),
                                                           timeout=30) for i in range(3 * REGISTERING_AT_ONCE)))
            # a heartbeat is not gated: answered at once on the same daemon
            reply = await stub.Heartbeat(discovery_pb2.HeartbeatRequest(token=token, node_id=node(0, run).id,
                                                                       lease_id=replies[0].lease_id), timeout=5)
    finally:
        await server.stop(0)
    assert all(r.lease_id for r in replies) and reply.remaining_ttl_ms > 0
    assert highest == REGISTERING_AT_ONCE


async def test_renewals_spread_over_several_keep_alive_streams_a_lease_always_on_one(nodes):
    # etcd answers one stream's renewals one after another, each waiting for its apply loop: one
    # stream for every lease held them all behind the slowest
    run = secrets.token_hex(3)
    leases = [(info.id, (await nodes.register(info, 30))[0]) for info in (node(100 + i, run) for i in range(32))]
    keepers = nodes.store.keeper(nodes.store._current()[0])
    renewals = [asyncio.ensure_future(nodes.store.run(lambda c, lid=lid: nodes.store.keeper(c).refresh(lid)))
                for _ in range(3) for _, lid in leases]
    await asyncio.sleep(0)                   # each has asked; no answer can be back yet
    assert keepers.in_flight == len(renewals) == nodes.store.renewals_in_flight
    answers = await asyncio.gather(*renewals)
    assert all(25 <= ttl <= 30 for ttl in answers)
    used = {id(keepers._keepers[lid % len(keepers._keepers)]) for _, lid in leases}
    streaming = {id(k) for k in keepers._keepers if k._task is not None}
    assert len(used) > 1 and used == streaming           # only the streams of the leases renewed opened
    assert keepers.in_flight == 0
