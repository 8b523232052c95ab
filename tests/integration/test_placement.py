"""One placement path for API creates and rescheduling, observed on the lab while a create is in flight.

A registry on loopback that holds every request until the test releases it keeps the agent's
create (which pulls a missing image) in flight; meanwhile the manager's `docker info` must count
the pending placeholder in the chosen node's reservations and `docker create --name` of the same
name must get a 409, for an API create and for a container rescheduled off a lost node alike.
The module runs its own discovery, agents (heartbeat 1 s, TTL 3 s) and manager.
"""
from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from swarmd.localcluster.processes import wait_until
from swarmd.localcluster.swarm import SwarmCluster
from tests.integration.conftest import DockerCLI

LOST = "node2"
CPUS = 0.25
MEMORY = 48 << 20
_TLS_HANDSHAKE = 0x16


class HeldRegistry:
    """Answers nothing over plain HTTP until `release` is set (then a 404); a TLS hello gets a plain
    HTTP answer at once, so the engine falls back to HTTP as it does for the lab's registry."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.requested = threading.Event()     # an engine is waiting on this registry
        self.release = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return                           # closed: the module is done
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                first = conn.recv(1, socket.MSG_PEEK)
                if first and first[0] != _TLS_HANDSHAKE:
                    self.requested.set()
                    self.release.wait(120)
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass                             # the engine gave up on this connection

    def reset(self) -> None:
        self.requested.clear()
        self.release.clear()

    def close(self) -> None:
        self.release.set()
        self.sock.close()


@pytest.fixture(scope="module")
def held():
    registry = HeldRegistry()
    yield registry
    registry.close()


@pytest.fixture(scope="module")
def cluster(lab, tmp_path_factory):
    c = SwarmCluster(lab, root=tmp_path_factory.mktemp("placement"), heartbeat="1s", ttl="3s")
    try:
        c.start(managers=1)
    except BaseException:
        print(c.logs())
        raise
    yield c
    c.stop()


def reservations(cluster: SwarmCluster) -> dict[str, tuple[float, float]]:
    """Per node, from the manager's `docker info`: (reserved CPUs, reserved memory in bytes)."""
    units = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
    out, node, cpus = {}, "", 0.0
    for key, value in cluster.info()["SystemStatus"]:
        if key.startswith(" ") and not key.startswith("  └"):
            node = key.strip()
        elif key == "  └ Reserved CPUs":
            cpus = float(value.split("/")[0])
        elif key == "  └ Reserved Memory":
            number, unit = value.split("/")[0].split()
            out[node] = (cpus, float(number) * units[unit])
    return out


def grown(before: dict, after: dict) -> list[str]:
    """Nodes whose reservations grew by the test container's request."""
    return [n for n in after if n in before and abs(after[n][0] - before[n][0] - CPUS) < 1e-9
            and abs(after[n][1] - before[n][1] - MEMORY) < (1 << 20)]


def create_body(image: str, *env: str) -> dict:
    return {"Image": image, "Cmd": ["sleep", "600"], "Env": list(env),
            "HostConfig": {"NanoCpus": int(CPUS * 1e9), "Memory": MEMORY}}


def api_create(cluster: SwarmCluster, name: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://{cluster.manager_addrs[0]}/containers/create?"
                                 + urllib.parse.urlencode({"name": name}),
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=90) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def in_background(fn, *args) -> tuple[threading.Thread, list]:
    result: list = []
    thread = threading.Thread(target=lambda: result.append(fn(*args)), daemon=True)
    thread.start()
    return thread, result


def tag_everywhere(lab, image: str, only: str | None = None) -> None:
    repo, _, tag = image.rpartition(":")
    for engine in lab.engines:
        if only is None or engine.name == only:
            client = engine.client()
            try:
                client.images.get("busybox").tag(repo, tag)
            finally:
                client.close()


def clean(lab, names: tuple[str, ...], image: str) -> None:
    for engine in lab.engines:
        client = engine.client()
        try:
            for c in client.containers.list(all=True):
                if c.name in names:
                    c.remove(force=True)
            if any(image in i.tags for i in client.images.list()):
                client.images.remove(image)
        finally:
            client.close()


def test_an_api_create_in_flight_holds_its_name_and_its_reservation(cluster, lab, held, tmp_path):
    tag = uuid.uuid4().hex[:8]
    name, image = f"pl-create-{tag}", f"{held.address}/pl-held:{tag}"
    cli = DockerCLI(f"tcp://{cluster.manager_addrs[0]}", str(tmp_path / "cfg"))
    held.reset()
    try:
        before = reservations(cluster)
        creating, result = in_background(api_create, cluster, name, create_body(image))
        assert held.requested.wait(30), "the agent never pulled from the held registry"
        assert len(grown(before, reservations(cluster))) == 1      # the placeholder on the chosen node
        second = cli.run("create", "--name", name, "busybox", "true", check=False)
        assert second.returncode != 0
        assert (f'Conflict. The container name "/{name}" is already in use by container "(being created)"'
                in second.stderr), second.stderr
        held.release.set()
        creating.join(90)
        status, body = result[0]
        assert status >= 400, body                                 # the pull failed ...
        assert reservations(cluster) == before                     # ... and released both
        cli.run("create", "--name", name, "busybox", "true")
    finally:
        held.release.set()
        clean(lab, (name,), image)


def test_a_rescheduled_container_holds_the_same_name_and_reservation(cluster, lab, held, tmp_path):
    tag = uuid.uuid4().hex[:8]
    name, image = f"pl-moved-{tag}", f"{held.address}/pl-held:{tag}"
    lost_index = next(i for i, e in enumerate(lab.engines) if e.name == LOST)
    cli = DockerCLI(f"tcp://{cluster.manager_addrs[0]}", str(tmp_path / "cfg"))
    held.reset()
    try:
        tag_everywhere(lab, image, only=LOST)           # only the lost node has the image
        status, body = api_create(cluster, name, create_body(image, f"constraint:node==~{LOST}",
                                                             "reschedule:on-node-failure"))
        assert status == 201, body
        cli.run("start", name)
        assert cli.out("inspect", "-f", "{{.Node.Name}}", name).strip() == LOST
        before = reservations(cluster)

        cluster.agents[LOST].kill9()
        assert held.requested.wait(30), "the rescheduled create never pulled from the held registry"
        during = reservations(cluster)
        assert len([n for n in grown(before, during) if n != LOST]) == 1   # the placeholder elsewhere
        second = cli.run("create", "--name", name, "busybox", "true", check=False)
        assert second.returncode != 0 and "Conflict." in second.stderr, second.stderr

        tag_everywhere(lab, image)                      # the next attempt finds the image
        held.release.set()

        def moved():
            node = cli.out("inspect", "-f", "{{.Node.Name}} {{.State.Running}}", name).split()
            return node if node[0] != LOST and node[1] == "true" else None
        wait_until(moved, 30, "the container rescheduled and running elsewhere", interval=0.2)
    finally:
        held.release.set()
        if not cluster.agents[LOST].running():
            cluster.start_agent(lost_index)
        clean(lab, (name,), image)
