"""Node leases on the lab's etcd: renewals over one shared keep-alive stream, racing registrations."""
from __future__ import annotations

import asyncio
import secrets

import pytest

from swarmd.common.membership.etcd_store import EtcdStore, LeaseGone, NodeSet, cluster_key
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
