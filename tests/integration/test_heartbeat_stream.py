"""Heartbeats on the Heartbeats stream (discovery.proto), end to end: real agents heartbeating
through a real discovery daemon on the lab's etcd, one open stream each; a lease revoked under an
open stream, the daemon restarted under them, a daemon that predates the stream (which gets
Heartbeat calls), and refusals on the stream the same as the Heartbeat call's, bootstrap mode's
certificate checks included."""
from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from swarmd.common import join_tokens, node_certs, pki
from swarmd.common.membership import open_registrar
from swarmd.common.membership.etcd_store import (EtcdStore, cluster_key, intent_prefix, node_intent_key, node_key,
                                                 removed_message)
from swarmd.localcluster.processes import Daemon, free_port, wait_until
from swarmd.localcluster.swarm import SwarmCluster, swarm_argv
from swarmd.proto.swarm.v1 import discovery_pb2, discovery_pb2_grpc, types_pb2
from tests.integration.conftest import DockerCLI, docker_cli_binary, own_cluster

pytestmark = pytest.mark.timeout(180)

AGENTS = 3
RENEWALS = "swarmd_discovery_lease_renewals_total"
STREAMS = "swarmd_discovery_heartbeat_streams"
CALLS = "swarmd_discovery_rpc_seconds_count"
REGISTRATIONS = "swarmd_discovery_registrations_total"


@pytest.fixture(scope="module")
def beating(lab, tmp_path_factory):
    """Discovery, an agent per lab engine and a manager; a 10 s lease (a heartbeat every 3.3 s), long
    enough that the daemon's restart below cannot outlast it on a busy machine."""
    with own_cluster(lab, tmp_path_factory.mktemp("heartbeats"), ttl="10s", metrics=True) as cluster:
        yield cluster


@pytest.fixture(params=["28", "20.10"])
def beating_cli(request, beating, tmp_path) -> DockerCLI:
    return DockerCLI(beating.docker_host, str(tmp_path / "docker-config"), docker_cli_binary(request.param))


def scrape(cluster: SwarmCluster) -> list:
    with urllib.request.urlopen(f"http://{cluster.metrics_addrs['discovery']}/metrics", timeout=5) as r:
        text = r.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def total(samples: list, name: str, **labels: str) -> float:
    """The sum of `name`'s samples carrying `labels` (0 when there is none)."""
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def healthy(cli: DockerCLI) -> int:
    return cli.out("info").count("└ Status: Healthy")


async def node_lease(lab, cluster: SwarmCluster, name: str) -> tuple[str, int]:
    """(node ID, lease ID) of the node named `name`, as etcd holds it; lease 0 when it is gone."""
    async with grpc.aio.insecure_channel(cluster.discovery_addr) as channel:
        listing = await discovery_pb2_grpc.DiscoveryStub(channel).ListNodes(
            discovery_pb2.ListNodesRequest(token=cluster.token), timeout=5)
    node_id = next(n.info.id for n in listing.nodes if n.info.name == name)
    store = etcd(lab)
    try:
        kv = await store.run(lambda c: c.get(node_key(cluster_key(cluster.token), node_id).encode()))
    finally:
        await store.close()
    return node_id, kv.lease if kv is not None else 0


def etcd(lab) -> EtcdStore:
    host, port = lab.etcd.endpoint.rsplit(":", 1)
    return EtcdStore([(host, int(port))])


def settled(cluster: SwarmCluster) -> list:
    """The daemon's metrics once every agent heartbeats on its own stream again."""
    return wait_until(lambda: (s := scrape(cluster)) and total(s, STREAMS) == AGENTS and s, 30,
                      f"{AGENTS} heartbeat streams")


def test_each_agent_heartbeats_on_one_stream_and_stays_healthy(beating):
    before = settled(beating)
    ok0 = total(before, RENEWALS, code="OK")
    # two more heartbeats from each agent, all of them messages on the streams already open
    after = wait_until(lambda: (s := scrape(beating)) and total(s, RENEWALS, code="OK") >= ok0 + 2 * AGENTS and s,
                       30, "two more heartbeats from each agent")
    assert total(after, STREAMS) == AGENTS
    assert total(after, CALLS, method="Discovery/Heartbeat") == 0           # no Heartbeat call at all
    assert total(after, CALLS, method="Discovery/Heartbeats") == total(before, CALLS, method="Discovery/Heartbeats")
    assert total(after, REGISTRATIONS) == total(before, REGISTRATIONS)      # no lease lost on the way
    assert total(after, RENEWALS) == total(after, RENEWALS, code="OK")
    assert beating.wait_nodes(AGENTS)


def test_docker_info_shows_every_node_healthy_on_streamed_heartbeats(beating, beating_cli):
    settled(beating)
    assert healthy(beating_cli) == AGENTS


async def test_a_lease_revoked_under_an_open_stream_registers_the_agent_again(lab, beating):
    name = lab.engines[0].name
    await asyncio.to_thread(settled, beating)
    registered = total(scrape(beating), REGISTRATIONS, code="OK")
    node_id, lease = await node_lease(lab, beating, name)
    store = etcd(lab)
    try:
        await store.run(lambda c: c.revoke_lease(lease))      # the node's record goes with its lease
    finally:
        await store.close()

    def registered_again():
        _, again = asyncio.run(node_lease(lab, beating, name))
        return again not in (0, lease)
    await asyncio.to_thread(wait_until, registered_again, 30, "the agent to register again")
    after = await asyncio.to_thread(settled, beating)          # and to heartbeat on a new stream
    assert total(after, REGISTRATIONS, code="OK") == registered + 1
    assert total(after, RENEWALS, code="NOT_FOUND") >= 1
    assert total(after, CALLS, method="Discovery/Heartbeat") == 0
    log = beating.agents[name].log_path.read_text()
    assert "registration lost; registering again" in log and f"{lease:x}" in log
    await asyncio.to_thread(beating.wait_nodes, AGENTS)


def test_agents_resume_their_streams_on_a_restarted_daemon_keeping_their_leases(lab, beating):
    settled(beating)
    leases = {e.name: asyncio.run(node_lease(lab, beating, e.name)) for e in lab.engines}
    beating.discovery.kill9()
    beating.discovery.start()                       # same address, same metrics address
    after = settled(beating)
    # the restarted daemon registered no one: every agent came back on its lease, still held, and
    # heartbeats on a stream again (an agent whose stream broke while idle opens a new one at once)
    assert total(after, REGISTRATIONS) == 0 and total(after, CALLS, method="Discovery/Heartbeat") == 0
    ok = total(after, RENEWALS, code="OK")
    wait_until(lambda: total(scrape(beating), RENEWALS, code="OK") >= ok + AGENTS, 30, "a heartbeat from each agent")
    assert {e.name: asyncio.run(node_lease(lab, beating, e.name)) for e in lab.engines} == leases
    beating.wait_nodes(AGENTS)


# -- a daemon that predates the stream ---------------------------------------------------------------


def forwarding_old_daemon(addr: str) -> tuple[grpc.aio.Server, grpc.aio.Channel, int]:
    """A Discovery service as a daemon from before the Heartbeats stream: Register, Heartbeat and
    Deregister only (gRPC answers UNIMPLEMENTED for the rest), each forwarded to the real daemon
    at `addr`. Returns the server (not started), the channel to `addr` and the port."""
    channel = grpc.aio.insecure_channel(addr)
    real = discovery_pb2_grpc.DiscoveryStub(channel)

    def forward(name: str, request_type, response_type):
        async def handler(request, context):
            try:
                return await getattr(real, name)(request, timeout=5)
            except grpc.aio.AioRpcError as err:
                await context.abort(err.code(), err.details())
        return grpc.unary_unary_rpc_method_handler(handler, request_deserializer=request_type.FromString,
                                                   response_serializer=response_type.SerializeToString)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("swarm.v1.Discovery", {
        "Register": forward("Register", discovery_pb2.RegisterRequest, discovery_pb2.RegisterResponse),
        "Heartbeat": forward("Heartbeat", discovery_pb2.HeartbeatRequest, discovery_pb2.HeartbeatResponse),
        "Deregister": forward("Deregister", discovery_pb2.DeregisterRequest, discovery_pb2.DeregisterResponse),
    }),))
    port = server.add_insecure_port("127.0.0.1:0")
    return server, channel, port


async def test_an_agent_of_a_daemon_without_the_stream_heartbeats_with_calls(lab, beating):
    server, channel, port = forwarding_old_daemon(beating.discovery_addr)
    await server.start()
    info = types_pb2.NodeInfo(id=secrets.token_hex(8), name=f"old-daemon-{secrets.token_hex(2)}",
                              addr=f"127.0.0.1:{free_port()}", cpus=1, memory_bytes=1 << 30)
    registrar = open_registrar(beating.discovery_url, f"127.0.0.1:{port}")
    calls = total(await asyncio.to_thread(scrape, beating), CALLS, method="Discovery/Heartbeat")
    task = asyncio.create_task(registrar.keep_alive(info, 0.2, 0.6))    # a heartbeat every 200 ms
    try:
        async def three_calls():
            while total(await asyncio.to_thread(scrape, beating), CALLS, method="Discovery/Heartbeat") < calls + 3:
                await asyncio.sleep(0.1)
        await asyncio.wait_for(three_calls(), 30)
        assert not registrar.heartbeat_stream and not task.done()
        samples = await asyncio.to_thread(scrape, beating)
        assert total(samples, STREAMS) == AGENTS                     # the agents' streams alone
        _, lease = await node_lease(lab, beating, info.name)
        assert lease == registrar.lease_id                           # heartbeats kept the first lease
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await registrar.deregister()
        await registrar.close()
        await channel.close()
        await server.stop(None)


# -- refusals: a message on the stream is answered as the call is ----------------------------------------


async def streamed(stub, request) -> tuple[grpc.StatusCode, str]:
    call = stub.Heartbeats()
    try:
        await call.write(request)
        reply = await asyncio.wait_for(call.read(), 10)
        assert reply is not grpc.aio.EOF
        return grpc.StatusCode.OK, ""
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details()
    finally:
        call.cancel()


async def unary(stub, request) -> tuple[grpc.StatusCode, str]:
    try:
        await stub.Heartbeat(request, timeout=10)
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details()
    return grpc.StatusCode.OK, ""


async def test_a_foreign_or_malformed_heartbeat_on_the_stream_gets_the_calls_refusal(lab, beating):
    name = lab.engines[1].name
    node_id, lease = await node_lease(lab, beating, name)
    found, malformed = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT
    requests = {
        "another node's ID with this lease": (found, discovery_pb2.HeartbeatRequest(
            token=beating.token, node_id="x" * 16, lease_id=lease)),
        "this node with another lease": (found, discovery_pb2.HeartbeatRequest(
            token=beating.token, node_id=node_id, lease_id=lease + 1)),
        "no node ID": (found, discovery_pb2.HeartbeatRequest(token=beating.token, lease_id=lease)),
        "a malformed token": (malformed, discovery_pb2.HeartbeatRequest(
            token="not-a-token", node_id=node_id, lease_id=lease)),
    }

    def refused(samples: list) -> dict[str, float]:
        return {code.name: total(samples, RENEWALS, code=code.name) for code in (found, malformed)}
    before = refused(await asyncio.to_thread(scrape, beating))
    async with grpc.aio.insecure_channel(beating.discovery_addr) as channel:
        stub = discovery_pb2_grpc.DiscoveryStub(channel)
        for what, (code, request) in requests.items():
            on_stream, by_call = await streamed(stub, request), await unary(stub, request)
            assert on_stream == by_call, what
            assert on_stream[0] == code, what
            assert on_stream[1].endswith(": register again" if code == found else "as printed by `swarm create`")
    # every refusal counted, each message as each call (the status goes out before the count is taken)
    counted = {found.name: before[found.name] + 6, malformed.name: before[malformed.name] + 2}
    await asyncio.to_thread(wait_until, lambda: refused(scrape(beating)) == counted, 10, f"renewals {counted}")
    # the node whose lease was named by the refused heartbeats keeps it
    assert await node_lease(lab, beating, name) == (node_id, lease)


# -- bootstrap mode: the caller's certificate is checked for every message ---------------------------------


@pytest.fixture
def bootstrap_daemon(lab, tmp_path):
    """`swarm discovery --ca-dir` on the lab's etcd; (address, cluster ID, agent join token, CA dir)."""
    ca_dir = tmp_path / "ca"
    pki.write_ca(ca_dir, pki.create_ca("swarmd CA"))
    addr = f"127.0.0.1:{free_port()}"
    daemon = Daemon("discovery-ca", swarm_argv("discovery", "--listen", addr, "--etcd", lab.etcd.url,
                                               "--ca-dir", str(ca_dir)), tmp_path / "discovery.log").start()

    def created():
        assert daemon.running(), daemon.log_tail()
        out = subprocess.run(swarm_argv("create", "--discovery-addr", addr, "--ca-dir", str(ca_dir)),
                             capture_output=True, text=True, timeout=30)
        lines = out.stdout.strip().splitlines()
        return (lines[0].split()[-1], lines[-1]) if out.returncode == 0 else None
    cluster_id, token = wait_until(created, 20, "swarm create --ca-dir to answer")
    try:
        yield addr, cluster_id, token
    finally:
        assert daemon.stop() == 0, daemon.log_tail()


async def test_a_node_certificate_heartbeats_on_the_stream_for_itself_only_and_never_once_removed(
        lab, bootstrap_daemon, tmp_path):
    addr, cluster_id, token = bootstrap_daemon
    node_id = secrets.token_hex(8)
    state = tmp_path / "node"
    await node_certs.obtain(addr, join_tokens.parse(token), state, pki.ROLE_WORKER, node_id)
    creds = grpc.ssl_channel_credentials(*((state / f).read_bytes() for f in ("ca.pem", "key.pem", "cert.pem")))
    info = types_pb2.NodeInfo(id=node_id, name=f"certified-{node_id[:4]}", addr=f"127.0.0.1:{free_port()}")
    async with grpc.aio.secure_channel(addr, creds) as channel:
        stub = discovery_pb2_grpc.DiscoveryStub(channel)
        lease = (await stub.Register(discovery_pb2.RegisterRequest(token=cluster_id, node=info, ttl_ms=30_000),
                                     timeout=10)).lease_id
        own = discovery_pb2.HeartbeatRequest(token=cluster_id, node_id=node_id, lease_id=lease)
        other = discovery_pb2.HeartbeatRequest(token=cluster_id, node_id="0123456789abcdef", lease_id=lease)
        acts_for_itself = (grpc.StatusCode.PERMISSION_DENIED, "a node certificate acts for its own node only")
        assert await unary(stub, other) == acts_for_itself
        call = stub.Heartbeats()
        try:
            for request, answer in ((own, grpc.StatusCode.OK), (own, grpc.StatusCode.OK),
                                    (other, grpc.StatusCode.PERMISSION_DENIED)):
                await call.write(request)
                if answer == grpc.StatusCode.OK:
                    assert (await asyncio.wait_for(call.read(), 10)).remaining_ttl_ms > 0
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await asyncio.wait_for(call.read(), 10)
            assert (err.value.code(), err.value.details()) == acts_for_itself
        finally:
            call.cancel()

        # removed (`docker node rm` writes this record) while its stream is open: its next message is refused
        call = stub.Heartbeats()
        try:
            await call.write(own)
            assert (await asyncio.wait_for(call.read(), 10)).remaining_ttl_ms > 0
            store = etcd(lab)
            key = intent_prefix(cluster_key(cluster_id)) + node_intent_key(node_id)
            try:
                await store.run(lambda c: c.put(key.encode(), json.dumps({"removed": True}).encode()))
            finally:
                await store.close()
            await call.write(own)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await asyncio.wait_for(call.read(), 10)
        finally:
            call.cancel()
        removed = (grpc.StatusCode.PERMISSION_DENIED, removed_message(node_id))
        assert (err.value.code(), err.value.details()) == removed
        assert await unary(stub, own) == removed
