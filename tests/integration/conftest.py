"""Fixtures for end-to-end tests: swarmd daemons on the lab, and the real docker CLI."""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
from functools import cache
from pathlib import Path

import docker
import pytest

from swarmd.localcluster.swarm import SwarmCluster


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report carries the log tails of the swarmd daemons it used (the session
    swarm's and its own clusters'), so a failure on CI can be read without rerunning it."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        if isinstance(value, SwarmCluster):
            try:
                report.sections.append((f"swarmd logs ({name})", value.logs(lines=120)))
            except Exception as exc:  # the report goes out without them
                report.sections.append((f"swarmd logs ({name})", f"not read: {exc}"))


@contextlib.contextmanager
def own_cluster(lab, root, replicated_managers: int = 0, ttl: str = "3s", metrics: bool = False):
    """A test module's own discovery daemon, agents (heartbeat 1 s, TTL 3 s unless told) and
    manager(s) on the session lab, for tests that kill, stop or restart daemons; its logs are
    printed if it fails to start."""
    cluster = SwarmCluster(lab, root=root, heartbeat="1s", ttl=ttl, metrics=metrics)
    try:
        if replicated_managers:
            cluster.start_replicated(managers=replicated_managers)
        else:
            cluster.start()
    except BaseException:
        print(cluster.logs())
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def swarm(lab, tmp_path_factory):
    cluster = SwarmCluster(lab, root=tmp_path_factory.mktemp("swarm"))
    try:
        cluster.start()
    except BaseException:
        print(cluster.logs())
        raise
    yield cluster
    cluster.stop()


@pytest.fixture(autouse=False)
def clean_containers(lab):
    yield
    for engine in lab.engines:
        engine.remove_all_containers()


@cache
def docker_cli_binary(major: str) -> str:
    """The path of the installed docker CLI whose version starts with `major` ("28", "20.10"):
    the machine's 28.x CLI, and Debian's docker.io CLI (20.10) that scripts written for classic
    swarm parse. Both are set up by `make` (scripts/bootstrap.sh); a missing one fails the test."""
    seen = {}
    for folder in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]:
        path = Path(folder) / "docker"
        if not os.access(path, os.X_OK) or str(path.resolve()) in seen:
            continue
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10).stdout
        match = re.search(r"version (\S+?),", out)
        seen[str(path.resolve())] = match.group(1) if match else "?"
        if match and (match.group(1) == major or match.group(1).startswith(major + ".")):
            return str(path)
    pytest.fail(f"no docker CLI {major}.x installed (found: {seen}); run `make test`, which installs it")


class DockerCLI:
    """A real `docker` CLI (28.x unless told) pointed at one address."""

    def __init__(self, host: str, config_dir: str, binary: str = "docker"):
        self.binary = binary
        self.env = {**os.environ, "DOCKER_HOST": host, "DOCKER_CONFIG": config_dir}
        self.env.pop("DOCKER_CONTEXT", None)

    def run(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60):
        proc = subprocess.run([self.binary, *args], env=self.env, capture_output=True, text=True,
                              input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{self.binary} {' '.join(args)} exited {proc.returncode}:\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args).stdout


@pytest.fixture(scope="session")
def cli(swarm, tmp_path_factory) -> DockerCLI:
    """The docker CLI 28.x."""
    return DockerCLI(swarm.docker_host, str(tmp_path_factory.mktemp("docker-config")),
                     docker_cli_binary("28"))


@pytest.fixture(scope="session")
def cli_2010(swarm, tmp_path_factory) -> DockerCLI:
    """Debian's docker CLI 20.10, whose output older scripts parse."""
    return DockerCLI(swarm.docker_host, str(tmp_path_factory.mktemp("docker-config-2010")),
                     docker_cli_binary("20.10"))


@pytest.fixture(params=["28", "20.10"])
def any_cli(request, cli, cli_2010) -> DockerCLI:
    """Each of the two CLIs in turn: for behaviour that both must see the same."""
    return cli if request.param == "28" else cli_2010


@pytest.fixture(scope="session")
def sdk(swarm) -> docker.DockerClient:
    client = docker.DockerClient(base_url=swarm.docker_host, version="auto", timeout=60)
    yield client
    client.close()


def push_to_lab_registry(lab, ref: str, image: str = "busybox") -> str:
    """`image` of the lab's first engine pushed to the lab's registry as `ref` (a reference with
    its tag); the engine keeps no new tag. Returns the image's ID."""
    client = lab.engines[0].client()
    try:
        source = client.images.get(image)
        source.tag(ref)
        for line in client.images.push(ref, stream=True, decode=True):
            assert "error" not in line, line
        client.images.remove(ref)
        return source.id
    finally:
        client.close()


async def serve_agent(service_type, engine, node_id: str, host_ip: str = "127.0.0.1", name: str = "",
                      labels: dict | None = None):
    """A started grpc.aio server running the agent service `service_type` over `engine` (what
    `swarm join` runs, without registering), and its address."""
    import grpc

    from swarmd.agent.node_info import NodeInfoSource, NodeSettings
    from swarmd.localcluster.processes import free_port
    from swarmd.proto.swarm.v1 import agent_pb2_grpc
    addr = f"127.0.0.1:{free_port()}"
    settings = NodeSettings(node_id=node_id, addr=addr, host_ip=host_ip, name=name, labels=labels or {})
    server = grpc.aio.server()
    agent_pb2_grpc.add_AgentServicer_to_server(service_type(engine, NodeInfoSource(engine, settings)), server)
    server.add_insecure_port(addr)
    await server.start()
    return server, addr
