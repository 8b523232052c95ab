"""Membership end to end: the discovery daemon on real etcd, real agents, every URL scheme."""
from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from swarmd.proto.swarm.v1 import discovery_pb2, discovery_pb2_grpc, types_pb2
from swarmd.localcluster.etcd import EtcdServer
from swarmd.localcluster.processes import Daemon, DaemonExited, free_port, wait_until
from swarmd.common.membership import MemberEvent, MembershipError, open_membership, open_registrar

pytestmark = pytest.mark.timeout(180)

HEARTBEAT = 0.5
TTL = 3.0


def swarm_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "swarmd", *args]


def swarm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(swarm_argv(*args), capture_output=True, text=True, timeout=30)


async def aswarm(*args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(swarm, *args)


def start_discovery(etcd_url: str, root: Path, name: str = "discovery",
                    addr: str | None = None) -> tuple[Daemon, str]:
    addr = addr or f"127.0.0.1:{free_port()}"
    daemon = Daemon(name, swarm_argv("discovery", "--listen", addr, "--etcd", etcd_url),
                    root / f"{name}.log").start()

    def serving():
        if not daemon.running():
            raise DaemonExited(f"discovery exited:\n{daemon.log_tail()}")
        return health_status(addr) == health_pb2.HealthCheckResponse.SERVING
    wait_until(serving, 20, "the discovery daemon to serve")
    return daemon, addr


def health_status(addr: str) -> int:
    with grpc.insecure_channel(addr) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""),
                                                        timeout=2).status


def create_token(addr: str) -> str:
    out = swarm("create", "--discovery-addr", addr)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", token), out.stdout
    return token


@pytest.fixture(scope="module")
def discovery(lab, tmp_path_factory):
    daemon, addr = start_discovery(lab.etcd.url, tmp_path_factory.mktemp("discovery"))
    yield addr
    assert daemon.stop() == 0, daemon.log_tail()


@pytest.fixture
def token(discovery) -> str:
    return create_token(discovery)


def node_info(name: str, node_id: str | None = None, addr: str | None = None) -> types_pb2.NodeInfo:
    return types_pb2.NodeInfo(id=node_id or secrets.token_hex(8), name=name,
                              addr=addr or f"127.0.0.1:{free_port()}", cpus=1, memory_bytes=1 << 30)


class Watcher:
    """Runs a membership watch in the background and keeps every event it delivers."""

    def __init__(self, membership):
        self.membership = membership
        self.events: list[MemberEvent] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._run())

    async def _run(self):
        async for event in self.membership.watch():
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def wait_for(self, predicate, timeout: float = 20.0, what: str = "membership events"):
        async def until():
            async with self._changed:
                while not predicate(self.events):
                    if self._task.done():
                        self._task.result()
                        raise AssertionError("the watch ended")
                    await self._changed.wait()
        try:
            await asyncio.wait_for(until(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; got "
                                 f"{[(e.kind, e.node.info.name if e.node else '') for e in self.events]}")

    def kinds(self, name: str) -> list[str]:
        return [e.kind for e in self.events if e.node is not None and e.node.info.name == name]

    async def close(self):
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.membership.close()


def has(kind: str, name: str):
    return lambda events: any(e.kind == kind and e.node is not None and e.node.info.name == name
                              for e in events)


def synced(events) -> bool:
    return any(e.kind == "synced" for e in events)


async def start_keep_alive(url: str, info: types_pb2.NodeInfo, discovery_addr: str | None = None):
    registrar = open_registrar(url, discovery_addr)
    task = asyncio.create_task(registrar.keep_alive(info, HEARTBEAT, TTL))
    return registrar, task


async def stop_keep_alive(registrar, task, deregister: bool = True):
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if deregister:
        await registrar.deregister()
    await registrar.close()


# -- token:// through the discovery daemon ---------------------------------------------------------


async def test_register_list_and_watch(discovery, token):
    url = f"token://{token}"
    watcher = Watcher(open_membership(url, discovery))
    await watcher.wait_for(synced, what="the first synced")
    infos = [node_info(f"node{i}") for i in range(1, 4)]
    running = [await start_keep_alive(url, info, discovery) for info in infos]
    try:
        for info in infos:
            await watcher.wait_for(has("joined", info.name), what=f"{info.name} to join")
        out = await aswarm("list", "--discovery-addr", discovery, url)
        assert out.returncode == 0, out.stderr
        rows = [line.split() for line in out.stdout.splitlines()]
        assert rows == [[i.name, i.addr, "healthy"] for i in infos]

        joined = next(e.node for e in watcher.events if e.kind == "joined" and e.node.info.name == "node2")
        assert joined.info == infos[1] and joined.state == types_pb2.NODE_STATE_HEALTHY

        await stop_keep_alive(*running[1])
        await watcher.wait_for(has("left", "node2"), what="node2 to leave")
        assert watcher.kinds("node2") == ["joined", "left"]
        nodes = await open_membership(url, discovery).list_nodes()
        assert sorted(n.info.name for n in nodes) == ["node1", "node3"]
    finally:
        for registrar, task in running:
            await stop_keep_alive(registrar, task)
        await watcher.close()


async def test_new_watch_sees_current_nodes_then_synced(discovery, token):
    url = f"token://{token}"
    registrar, task = await start_keep_alive(url, node_info("early"), discovery)
    try:
        async with grpc.aio.insecure_channel(discovery) as channel:
            membership = open_membership(url, discovery)
            await asyncio.wait_for(_until_listed(membership, "early"), 20)
            await membership.close()
            stub = discovery_pb2_grpc.DiscoveryStub(channel)
            call = stub.WatchNodes(discovery_pb2.WatchNodesRequest(token=token))
            first = await asyncio.wait_for(call.read(), 10)
            second = await asyncio.wait_for(call.read(), 10)
            call.cancel()
        assert first.kind == discovery_pb2.NodeEvent.KIND_JOINED and first.node.info.name == "early"
        assert second.kind == discovery_pb2.NodeEvent.KIND_SYNCED
    finally:
        await stop_keep_alive(registrar, task)


async def _until_listed(membership, name: str):
    while name not in [n.info.name for n in await membership.list_nodes()]:
        await asyncio.sleep(0.1)


async def test_unknown_and_malformed_tokens(discovery):
    unknown = secrets.token_hex(16)
    out = await aswarm("list", "--discovery-addr", discovery, f"token://{unknown}")
    assert out.returncode != 0
    assert "unknown cluster token" in out.stderr

    out = await aswarm("list", "--discovery-addr", discovery, "token://not-a-token")
    assert out.returncode != 0
    assert "malformed token" in out.stderr

    membership = open_membership(f"token://{unknown}", discovery)
    with pytest.raises(MembershipError, match="unknown cluster token"):
        await asyncio.wait_for(anext(membership.watch()), 20)
    await membership.close()

    registrar = open_registrar(f"token://{unknown}", discovery)
    with pytest.raises(MembershipError, match="unknown cluster token"):
        await asyncio.wait_for(registrar.keep_alive(node_info("lost"), HEARTBEAT, TTL), 20)
    await registrar.close()

    async with grpc.aio.insecure_channel(discovery) as channel:
        stub = discovery_pb2_grpc.DiscoveryStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Register(discovery_pb2.RegisterRequest(token="abc", node=node_info("x")), timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed token" in err.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListNodes(discovery_pb2.ListNodesRequest(token=unknown), timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details() == "unknown cluster token"


async def test_create_needs_a_reachable_daemon():
    out = await aswarm("create", "--discovery-addr", f"127.0.0.1:{free_port()}")
    assert out.returncode != 0 and "discovery at 127.0.0.1" in out.stderr
    assert out.stdout == ""


async def test_duplicate_name_refused(discovery, token):
    url = f"token://{token}"
    holder = node_info("dup")
    registrar, task = await start_keep_alive(url, holder, discovery)
    try:
        membership = open_membership(url, discovery)
        await asyncio.wait_for(_until_listed(membership, "dup"), 20)
        await membership.close()
        other = open_registrar(url, discovery)
        expected = f'node name "dup" is already held by live node {holder.id[:12]} at {holder.addr}'
        with pytest.raises(MembershipError) as err:
            await other.register(node_info("dup"), TTL)
        assert str(err.value) == expected
        with pytest.raises(MembershipError, match="already held"):
            await asyncio.wait_for(other.keep_alive(node_info("dup"), HEARTBEAT, TTL), 20)
        await other.close()

        same = open_registrar(url, discovery)      # the same node (same ID) may register again
        await same.register(holder, TTL)
        await same.close()
    finally:
        await stop_keep_alive(registrar, task)


async def test_watch_converges_after_discovery_restart(lab, tmp_path):
    watched, addr = start_discovery(lab.etcd.url, tmp_path, "watched")
    other, other_addr = start_discovery(lab.etcd.url, tmp_path, "other")
    token = create_token(addr)
    url = f"token://{token}"
    watcher = Watcher(open_membership(url, addr))
    a = await start_keep_alive(url, node_info("conv-a"), other_addr)
    b = await start_keep_alive(url, node_info("conv-b"), other_addr)
    c = None
    try:
        await watcher.wait_for(lambda ev: has("joined", "conv-a")(ev) and has("joined", "conv-b")(ev))
        watched.kill9()                             # the watch stream breaks
        await stop_keep_alive(*a)                   # meanwhile a leaves and c joins
        c = await start_keep_alive(url, node_info("conv-c"), other_addr)
        membership = open_membership(url, other_addr)
        await asyncio.wait_for(_until_listed(membership, "conv-c"), 20)
        await membership.close()

        watched, _ = start_discovery(lab.etcd.url, tmp_path, "watched", addr=addr)
        await watcher.wait_for(lambda ev: has("left", "conv-a")(ev) and has("joined", "conv-c")(ev), 30,
                               what="the watch to catch up after reconnecting")
        assert [e.kind for e in watcher.events].count("synced") >= 2
        assert watcher.kinds("conv-b") == ["joined"]
    finally:
        for running in (b, c):
            if running:
                await stop_keep_alive(*running)
        await watcher.close()
        watched.stop()
        other.stop()


def start_agent(lab, index: int, url: str, root: Path, discovery_addr: str | None = None,
                addr: str | None = None, ttl: str = "3s") -> tuple[Daemon, str]:
    engine = lab.engines[index]
    addr = addr or f"127.0.0.1:{free_port()}"
    argv = ["join", "--advertise", addr, "--engine", engine.url, "--name", engine.name,
            "--heartbeat", "1s", "--ttl", ttl, "--engine-check", "1s",
            "--state-dir", str(root / f"agent-{engine.name}"), "--host-ip", engine.host_ip]
    if discovery_addr:
        argv += ["--discovery-addr", discovery_addr]
    daemon = Daemon(f"agent-{engine.name}", swarm_argv(*argv, url), root / f"agent-{engine.name}.log").start()
    return daemon, addr


async def test_killed_agent_leaves_and_rejoins_with_its_id(lab, discovery, token, tmp_path):
    url = f"token://{token}"
    watcher = Watcher(open_membership(url, discovery))
    agent, addr = start_agent(lab, 0, url, tmp_path, discovery)
    try:
        name = lab.engines[0].name
        await watcher.wait_for(has("joined", name), 60, what="the agent to join")
        first = next(e.node for e in watcher.events if e.kind == "joined")
        assert first.info.addr == addr and first.info.engine_version

        agent.kill9()                               # no deregistration: only the lease can tell
        await watcher.wait_for(has("left", name), 30, what="the killed agent's lease to expire")

        # a lease long enough that the stop and the listing below cannot outlast it on a busy machine
        agent, _ = start_agent(lab, 0, url, tmp_path, discovery, addr=addr, ttl="10s")
        await watcher.wait_for(lambda ev: watcher.kinds(name) == ["joined", "left", "joined"], 60,
                               what="the restarted agent to join again")
        again = [e.node for e in watcher.events if e.kind == "joined"][-1]
        assert again.info.id == first.info.id

        assert agent.stop() == 0, agent.log_tail()  # a clean stop keeps the node until its lease runs out
        membership = open_membership(url, discovery)
        assert name in [n.info.name for n in await membership.list_nodes()]
        await membership.close()
        await watcher.wait_for(lambda ev: watcher.kinds(name)[-1:] == ["left"], 30, what="the lease to run out")
    finally:
        agent.stop()
        await watcher.close()


# -- etcd:// straight to etcd ----------------------------------------------------------------------


async def test_etcd_scheme_without_discovery_daemon(lab):
    url = f"etcd://{lab.etcd.endpoint}/memb-{secrets.token_hex(4)}"
    watcher = Watcher(open_membership(url))
    await watcher.wait_for(synced, what="the first synced")
    info = node_info("etcd-node")
    registrar, task = await start_keep_alive(url, info)
    try:
        await watcher.wait_for(has("joined", "etcd-node"))
        out = await aswarm("list", url)
        assert out.returncode == 0, out.stderr
        assert [line.split() for line in out.stdout.splitlines()] == [["etcd-node", info.addr, "healthy"]]

        other = open_registrar(url)
        with pytest.raises(MembershipError, match='node name "etcd-node" is already held by live node'):
            await other.register(node_info("etcd-node"), TTL)
        await other.close()

        task.cancel()                               # heartbeats stop; the lease runs out
        await asyncio.gather(task, return_exceptions=True)
        await watcher.wait_for(has("left", "etcd-node"), 30, what="the lease to expire")
    finally:
        await stop_keep_alive(registrar, task, deregister=False)
        await watcher.close()


async def test_etcd_scheme_bad_endpoint_is_a_clear_error():
    out = await aswarm("list", f"etcd://127.0.0.1:{free_port()}/nothing")
    assert out.returncode != 0
    assert "etcd at 127.0.0.1" in out.stderr and "unavailable" in out.stderr


# -- static lists: nodes:// and file:// ------------------------------------------------------------


async def test_static_lists_use_agent_health(lab, tmp_path):
    a1 = f"127.0.0.1:{free_port()}"
    a2 = f"127.0.0.1:{free_port()}"
    dead = f"127.0.0.1:{free_port()}"
    url = f"nodes://{a1},{a2}"
    agents = [start_agent(lab, 1, url, tmp_path, addr=a1)[0], start_agent(lab, 2, url, tmp_path, addr=a2)[0]]
    names = [lab.engines[1].name, lab.engines[2].name]
    try:
        def both_healthy():
            for a in agents:
                if not a.running():
                    raise DaemonExited(a.log_tail())
            out = swarm("list", f"{url},{dead}")
            return out if out.returncode == 0 and out.stdout.count("healthy") - out.stdout.count("unhealthy") == 2 \
                else None
        out = await asyncio.to_thread(wait_until, both_healthy, 60, "both static agents healthy", 0.5)
        rows = sorted(line.split() for line in out.stdout.splitlines())
        assert rows == sorted([[names[0], a1, "healthy"], [names[1], a2, "healthy"], [dead, dead, "unhealthy"]])

        port1, port2 = a1.rsplit(":", 1)[1], a2.rsplit(":", 1)[1]
        nodes_file = tmp_path / "nodes.txt"
        nodes_file.write_text(f"# the lab agents\n127.0.0.1:[{port1}:{port1}]\n{a2}   # second\n")
        out = await aswarm("list", f"file://{nodes_file}")
        assert out.returncode == 0, out.stderr
        assert sorted(line.split() for line in out.stdout.splitlines()) == sorted(
            [[names[0], a1, "healthy"], [names[1], a2, "healthy"]])

        watcher = Watcher(open_membership(f"file://{nodes_file}"))
        try:
            await watcher.wait_for(synced, 30, what="the static listing")
            assert sorted(e.node.info.name for e in watcher.events if e.kind == "joined") == sorted(names)
            ids = {e.node.info.id for e in watcher.events if e.kind == "joined"}
            assert len(ids) == 2 and "" not in ids

            agents[0].kill9()
            await watcher.wait_for(lambda ev: any(e.kind == "updated" and e.node.info.name == names[0]
                                                  and e.node.state == types_pb2.NODE_STATE_UNHEALTHY
                                                  for e in ev), 30, what="the killed agent to turn unhealthy")

            nodes_file.write_text(f"{a1}\n")        # the second agent is taken off the list
            await watcher.wait_for(has("left", names[1]), 30, what="the removed node to leave")
        finally:
            await watcher.close()
    finally:
        for a in agents:
            a.stop()


async def test_missing_node_file_is_a_clear_error(tmp_path):
    out = await aswarm("list", f"file://{tmp_path}/absent")
    assert out.returncode != 0
    assert "cannot read node list" in out.stderr


# -- etcd going away -------------------------------------------------------------------------------


async def test_discovery_survives_etcd_restart(tmp_path):
    etcd = EtcdServer(tmp_path / "etcd", name="memb-etcd").start()
    daemon = None
    try:
        daemon, addr = start_discovery(etcd.url, tmp_path)
        token = create_token(addr)
        url = f"token://{token}"
        watcher = Watcher(open_membership(url, addr))
        registrar, task = await start_keep_alive(url, node_info("steady"), addr)
        try:
            await watcher.wait_for(has("joined", "steady"))

            etcd.stop()
            await asyncio.to_thread(wait_until, lambda: health_status(addr)
                                    == health_pb2.HealthCheckResponse.NOT_SERVING, 30, "NOT_SERVING")
            out = await aswarm("list", "--discovery-addr", addr, url)
            assert out.returncode != 0 and "etcd" in out.stderr
            assert daemon.running()

            etcd.daemon.start()                      # same data dir: the cluster is still there
            await asyncio.to_thread(wait_until, etcd.healthy, 30, "etcd to come back")
            await asyncio.to_thread(wait_until, lambda: health_status(addr)
                                    == health_pb2.HealthCheckResponse.SERVING, 30, "SERVING again")

            late, late_task = await start_keep_alive(url, node_info("late"), addr)
            try:
                await watcher.wait_for(has("joined", "late"), 40, what="a join after etcd came back")
            finally:
                await stop_keep_alive(late, late_task)
            membership = open_membership(url, addr)
            await asyncio.wait_for(_until_listed(membership, "steady"), 30)
            await membership.close()
            assert daemon.running()
            log = daemon.log_path.read_text()
            assert "etcd unreachable" in log and log.count("etcd reachable") >= 2
            assert token not in log                  # only a fingerprint is ever logged
        finally:
            await stop_keep_alive(registrar, task)
            await watcher.close()
    finally:
        if daemon is not None:
            daemon.stop()
        etcd.stop()
