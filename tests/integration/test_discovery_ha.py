"""Two discovery daemons over one etcd: agents and managers given both keep working when one dies."""
from __future__ import annotations

import asyncio
import subprocess
import time

from swarmd.localcluster.processes import Daemon, free_port, wait_until
from swarmd.localcluster.swarm import SwarmCluster, swarm_argv
from tests.integration.conftest import DockerCLI


def test_a_second_discovery_daemon_takes_over(lab, tmp_path):
    cluster = SwarmCluster(lab, root=tmp_path / "swarm")
    cluster.root.mkdir(parents=True, exist_ok=True)
    second = None
    try:
        cluster.start_discovery()
        second_addr = f"127.0.0.1:{free_port()}"
        second = Daemon("discovery2", swarm_argv("discovery", "--listen", second_addr, "--etcd", lab.etcd.url),
                        tmp_path / "discovery2.log").start()
        first_addr = cluster.discovery_addr
        cluster.discovery_addr = f"{first_addr},{second_addr}"     # every daemon gets both
        for i in range(len(lab.engines)):
            cluster.start_agent(i)
        cluster.start_manager()
        cluster.wait_nodes(3)
        cli = DockerCLI(cluster.docker_host, str(tmp_path / "docker"))

        cluster.discovery.kill9()
        deadline = time.monotonic() + 8               # past the agents' 3 s TTL, twice over
        while time.monotonic() < deadline:
            healthy = [p for p in cluster.info()["SystemStatus"] if p == ["  └ Status", "Healthy"]]
            assert len(healthy) == 3, cluster.logs()
            time.sleep(0.25)
        assert cli.out("run", "--rm", "busybox", "echo", "still-here") == "still-here\n"
        listed = subprocess.run(swarm_argv("list", "--discovery-addr", cluster.discovery_addr, cluster.discovery_url),
                                capture_output=True, text=True, timeout=30)
        assert listed.returncode == 0 and listed.stdout.count("healthy") == 3, listed.stdout + listed.stderr

        # a node joining now registers through the survivor
        cluster.agents[lab.engines[0].name].stop()
        wait_until(lambda: sum(p == ["  └ Status", "Healthy"] for p in cluster.info()["SystemStatus"]) == 2,
                   15, "the stopped agent to leave")
        cluster.start_agent(0)
        cluster.wait_nodes(3)
    finally:
        cluster.stop()
        if second is not None:
            second.stop()


async def test_an_address_list_fails_over_with_mutual_tls():
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from swarmd.common import pki
    from swarmd.common.tls import TLSConfig, add_server_port, open_channel

    ca = pki.create_ca()
    served = pki.issue(ca, "discovery", kind="node", hosts=["127.0.0.1"])
    calling = pki.issue(ca, "agent", kind="node", hosts=["127.0.0.1"])
    servers, addrs = [], []
    for _ in range(2):
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        addr = f"127.0.0.1:{free_port()}"
        add_server_port(server, addr, TLSConfig(ca.cert_pem, served.cert_pem, served.key_pem, True))
        await server.start()
        servers.append(server)
        addrs.append(addr)
    channel = open_channel(",".join(addrs), TLSConfig(ca.cert_pem, calling.cert_pem, calling.key_pem, True))
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        serving = health_pb2.HealthCheckResponse.SERVING
        assert (await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)).status == serving
        await servers[0].stop(0)
        for _ in range(20):           # the in-flight call may fail once; the next goes to the survivor
            try:
                assert (await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)).status == serving
                break
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the second server never answered")
    finally:
        await channel.close()
        for server in servers:
            await server.stop(0)
