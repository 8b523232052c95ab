"""deploy/container: the image builds on a real engine without a registry, and an agent runs from it."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from swarmd.localcluster.processes import free_port, wait_until
from swarmd.localcluster.swarm import SwarmCluster, swarm_argv

CONTAINER_DIR = Path(__file__).resolve().parents[2] / "deploy" / "container"


def _builder():
    spec = importlib.util.spec_from_file_location("build_image", CONTAINER_DIR / "build_image.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def image(lab):
    """swarmd:dev built on node1; removed (with its base) at the end."""
    engine = lab.engines[0]
    builder = _builder()
    image_id = builder.build(engine.url, "swarmd:dev")
    yield image_id
    client = engine.client()
    try:
        for ref in ("swarmd:dev", "swarmd-base:latest", builder.base_rootfs()[1]):
            try:
                client.images.remove(ref, force=True)
            except Exception:
                pass
    finally:
        client.close()


def test_compose_file_is_valid():
    env = {**os.environ, "SWARM_DISCOVERY_URL": "token://" + "0" * 32, "SWARM_ADVERTISE": "10.0.0.21:4100"}
    proc = subprocess.run(["docker-compose", "-f", str(CONTAINER_DIR / "compose.yaml"), "config"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "swarmd:dev" in proc.stdout and "join" in proc.stdout and "10.0.0.21:4100" in proc.stdout


def test_agent_runs_from_the_image_registers_and_stops_cleanly(lab, image, tmp_path):
    cluster = SwarmCluster(lab, root=tmp_path / "swarm")
    cluster.root.mkdir(parents=True)
    cluster.start_discovery()
    engine = lab.engines[0]
    client = engine.client()
    advertise = f"127.0.0.1:{free_port()}"
    container = None

    def listed() -> str:
        out = subprocess.run(swarm_argv("list", "--discovery-addr", cluster.discovery_addr, cluster.discovery_url),
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def serving() -> bool:
        with grpc.insecure_channel(advertise) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    try:
        container = client.containers.run(
            image, ["join", "--advertise", advertise, "--engine", "unix:///var/run/docker.sock",
                    "--name", "containerized", "--heartbeat", "1s", "--ttl", "30s",
                    "--discovery-addr", cluster.discovery_addr, cluster.discovery_url],
            volumes={str(engine.socket_path): {"bind": "/var/run/docker.sock", "mode": "rw"}},
            network_mode="host", detach=True, name=f"swarmd-agent-{free_port()}")
        try:
            wait_until(serving, 30, "the containerized agent's health to be SERVING", interval=0.2)
            wait_until(lambda: advertise in listed(), 30, "the containerized agent to register", interval=0.2)
        except Exception:
            print(container.logs().decode(errors="replace"))
            raise
        container.stop(timeout=15)
        assert container.wait(timeout=20)["StatusCode"] == 0
        assert advertise in listed()            # a stop is not a departure: the 30 s lease lives on
        lines = [json.loads(line) for line in container.logs().decode().splitlines() if line.strip()]
        assert any(doc["msg"] == "agent stopped" for doc in lines)
    finally:
        if container is not None:
            container.remove(force=True)
        client.close()
        cluster.stop()
