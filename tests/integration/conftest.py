"""Fixtures for end-to-end tests: swarmd daemons on the lab, and the real docker CLI."""
from __future__ import annotations

import os
import subprocess

import docker
import pytest

from swarmd.localcluster.swarm import SwarmCluster


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


class DockerCLI:
    """The real `docker` CLI (28.x) pointed at one address."""

    def __init__(self, host: str, config_dir: str):
        self.env = {**os.environ, "DOCKER_HOST": host, "DOCKER_CONFIG": config_dir}
        self.env.pop("DOCKER_CONTEXT", None)

    def run(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60):
        proc = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True,
                              input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}:\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args).stdout


@pytest.fixture(scope="session")
def cli(swarm, tmp_path_factory) -> DockerCLI:
    return DockerCLI(swarm.docker_host, str(tmp_path_factory.mktemp("docker-config")))


@pytest.fixture(scope="session")
def sdk(swarm) -> docker.DockerClient:
    client = docker.DockerClient(base_url=swarm.docker_host, version="auto", timeout=60)
    yield client
    client.close()
