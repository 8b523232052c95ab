"""Heartbeats renewed without reading the node's record (discovery.leases) still end with their
lease: over two real discovery daemons on the lab's etcd, a heartbeat a daemon has checked before is
refused once the node registered again, deregistered, or names another node's lease, whichever
daemon saw the change."""
from __future__ import annotations

import secrets
import sys

import grpc
import pytest

from swarmd.localcluster.processes import Daemon, free_port, wait_until
from swarmd.proto.swarm.v1 import discovery_pb2, discovery_pb2_grpc, types_pb2

pytestmark = pytest.mark.timeout(120)


def _start(etcd_url: str, root, name: str) -> tuple[Daemon, str]:
    addr = f"127.0.0.1:{free_port()}"
    daemon = Daemon(name, [sys.executable, "-m", "swarmd", "discovery", "--listen", addr, "--etcd", etcd_url],
                    root / f"{name}.log").start()
    return daemon, addr


@pytest.fixture(scope="module")
def daemons(lab, tmp_path_factory):
    """Two discovery daemons on one etcd, and a cluster token; (stub of A, stub of B, token)."""
    root = tmp_path_factory.mktemp("leases")
    started = [_start(lab.etcd.url, root, name) for name in ("discovery-a", "discovery-b")]
    channels = [grpc.insecure_channel(addr) for _, addr in started]
    stubs = [discovery_pb2_grpc.DiscoveryStub(c) for c in channels]

    def token() -> str:
        for daemon, _ in started:
            assert daemon.running(), daemon.log_tail()
        try:
            return stubs[0].CreateCluster(discovery_pb2.CreateClusterRequest(), timeout=2).token
        except grpc.RpcError:
            return ""
    cluster = wait_until(token, 20, "the discovery daemons to serve")
    wait_until(lambda: _answers(stubs[1], cluster), 20, "the second daemon to serve")
    try:
        yield stubs[0], stubs[1], cluster
    finally:
        for c in channels:
            c.close()
        for daemon, _ in started:
            assert daemon.stop() == 0, daemon.log_tail()


def _answers(stub, token: str) -> bool:
    try:
        stub.ListNodes(discovery_pb2.ListNodesRequest(token=token), timeout=2)
        return True
    except grpc.RpcError:
        return False


def node(name: str) -> types_pb2.NodeInfo:
    return types_pb2.NodeInfo(id=secrets.token_hex(8), name=name, addr=f"127.0.0.1:{free_port()}", cpus=1,
                              memory_bytes=1 << 30)


def register(stub, token: str, info: types_pb2.NodeInfo) -> int:
    return stub.Register(discovery_pb2.RegisterRequest(token=token, node=info, ttl_ms=30_000), timeout=5).lease_id


def heartbeat(stub, token: str, info: types_pb2.NodeInfo, lease_id: int) -> grpc.StatusCode:
    try:
        reply = stub.Heartbeat(discovery_pb2.HeartbeatRequest(token=token, node_id=info.id, lease_id=lease_id),
                               timeout=5)
    except grpc.RpcError as err:
        return err.code()
    assert reply.remaining_ttl_ms > 0
    return grpc.StatusCode.OK


def test_a_checked_heartbeat_of_a_replaced_registration_is_refused(daemons):
    a, b, token = daemons
    info = node("leases-restarted")
    first = register(a, token, info)
    assert [heartbeat(a, token, info, first) for _ in range(3)] == [grpc.StatusCode.OK] * 3   # checked at A
    second = register(b, token, info)           # the same agent registers again, at the other daemon
    assert second != first
    assert heartbeat(a, token, info, first) == grpc.StatusCode.NOT_FOUND
    assert heartbeat(a, token, info, second) == grpc.StatusCode.OK
    assert heartbeat(b, token, info, second) == grpc.StatusCode.OK


def test_a_checked_heartbeat_of_a_deregistered_node_is_refused(daemons):
    a, b, token = daemons
    info = node("leases-left")
    lease = register(a, token, info)
    assert heartbeat(a, token, info, lease) == grpc.StatusCode.OK
    assert heartbeat(a, token, info, lease) == grpc.StatusCode.OK
    b.Deregister(discovery_pb2.DeregisterRequest(token=token, node_id=info.id), timeout=5)
    assert heartbeat(a, token, info, lease) == grpc.StatusCode.NOT_FOUND
    nodes = a.ListNodes(discovery_pb2.ListNodesRequest(token=token), timeout=5).nodes
    assert info.id not in {n.info.id for n in nodes}


def test_a_heartbeat_naming_another_nodes_lease_is_refused_and_the_right_one_still_renews(daemons):
    a, _, token = daemons
    one, other = node("leases-one"), node("leases-other")
    lease_one, lease_other = register(a, token, one), register(a, token, other)
    assert heartbeat(a, token, one, lease_one) == grpc.StatusCode.OK
    assert heartbeat(a, token, one, lease_other) == grpc.StatusCode.NOT_FOUND
    assert heartbeat(a, token, one, lease_one) == grpc.StatusCode.OK
    assert heartbeat(a, token, other, lease_other) == grpc.StatusCode.OK
