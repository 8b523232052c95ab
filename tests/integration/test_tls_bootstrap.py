"""Bootstrap mode end to end: a discovery daemon that is the cluster CA (`--ca-dir`), agents and a
manager that join with nothing but a join token, and the docker CLI with a client certificate
the CA signed (`swarm ca issue --kind client`).

One cluster for the module, with certificates that live 40 s, so every daemon renews while the
tests run: the renewal test watches it happen under a running container and an open
`docker logs -f`.
"""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import grpc
import pytest

from swarmd.common import join_tokens, pki
from swarmd.localcluster.processes import Daemon, free_port, wait_until
from swarmd.localcluster.swarm import swarm_argv

EXPIRY = "40s"


def swarm(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    return subprocess.run(swarm_argv(*args), capture_output=True, text=True, timeout=timeout, env=env)


class BootstrapCluster:
    """`swarm discovery --ca-dir`, an agent per lab engine and one `--tlsverify` manager, all
    started from join tokens only."""

    def __init__(self, lab, root: Path):
        self.lab = lab
        self.root = root
        self.ca_dir = root / "ca"
        self.discovery_addr = f"127.0.0.1:{free_port()}"
        self.agents: dict[str, Daemon] = {}
        self.agent_addrs: dict[str, str] = {}
        self.managers: list[Daemon] = []
        self.manager_addr = f"127.0.0.1:{free_port()}"
        self.discovery: Daemon | None = None
        self.cluster_id = ""
        self.agent_token = ""
        self.manager_token = ""

    def create(self, *args: str) -> tuple[str, str]:
        out = swarm("create", "--discovery-addr", self.discovery_addr, "--ca-dir", str(self.ca_dir), *args)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.strip().splitlines()
        return lines[0].split()[-1], lines[-1]

    def start(self) -> "BootstrapCluster":
        for argv in (("ca", "init", "--dir", str(self.ca_dir)),
                     ("ca", "issue", "--dir", str(self.ca_dir), "--name", "alice", "--kind", "client")):
            out = swarm(*argv)
            assert out.returncode == 0, out.stderr
        self.discovery = Daemon("discovery", swarm_argv(
            "discovery", "--listen", self.discovery_addr, "--etcd", self.lab.etcd.url, "--ca-dir", str(self.ca_dir),
            "--cert-expiry", EXPIRY), self.root / "discovery.log").start()
        self.cluster_id, self.agent_token = wait_until(self._try_create, 20, "swarm create --ca-dir to answer")
        _, self.manager_token = self.create("--role", "manager", "--cluster", self.cluster_id)
        for engine in self.lab.engines:
            self.start_agent(engine)
        self.start_manager()
        self.wait_healthy(len(self.lab.engines))
        return self

    def _try_create(self):
        if not self.discovery.running():
            raise AssertionError(f"discovery exited:\n{self.discovery.log_tail()}")
        out = swarm("create", "--discovery-addr", self.discovery_addr, "--ca-dir", str(self.ca_dir))
        if out.returncode != 0:
            return None
        lines = out.stdout.strip().splitlines()
        return lines[0].split()[-1], lines[-1]

    def join_argv(self, engine, name: str, state: Path, token: str, addr: str | None = None) -> list[str]:
        addr = addr or f"127.0.0.1:{free_port()}"
        return swarm_argv("join", "--advertise", addr, "--engine", engine.url, "--name", name,
                          "--heartbeat", "1s", "--ttl", "3s", "--state-dir", str(state), "--host-ip", engine.host_ip,
                          "--discovery-addr", self.discovery_addr, f"token://{token}")

    def start_agent(self, engine) -> Daemon:
        addr = self.agent_addrs.get(engine.name) or f"127.0.0.1:{free_port()}"
        self.agent_addrs[engine.name] = addr
        agent = Daemon(f"agent-{engine.name}", self.join_argv(engine, engine.name, self.state(engine.name),
                                                              self.agent_token, addr),
                       self.root / f"agent-{engine.name}.log").start()
        self.agents[engine.name] = agent
        return agent

    def state(self, name: str) -> Path:
        return self.root / f"state-{name}"

    def start_manager(self) -> Daemon:
        manager = Daemon("manager", swarm_argv(
            "manage", "-H", f"tcp://{self.manager_addr}", "--tlsverify", "--discovery-addr", self.discovery_addr,
            "--state-dir", str(self.root / "state-manager"), f"token://{self.manager_token}"),
            self.root / "manager.log").start()
        self.managers.append(manager)
        return manager

    def docker(self, *args: str, cert: Path | None = None, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        env = {**os.environ, "DOCKER_CONFIG": str(self.root / "docker-config"), "DOCKER_HOST": f"tcp://{self.manager_addr}",
               "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(cert or self.ca_dir / "alice")}
        env.pop("DOCKER_CONTEXT", None)
        return subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=timeout, **kw)

    def healthy_nodes(self) -> list[str]:
        out = self.docker("info", "--format", "{{json .SystemStatus}}", timeout=20)
        if out.returncode != 0:
            raise AssertionError(f"docker info: {out.stderr}")
        import json
        status = json.loads(out.stdout) or []
        names, healthy = [], []
        for i, (key, value) in enumerate(status):
            if i + 1 < len(status) and status[i + 1][0] == "  └ ID":     # a node's first line
                names.append(key.strip())
            elif key == "  └ Status" and value == "Healthy" and names:
                healthy.append(names[-1])
        return healthy

    def wait_healthy(self, count: int, timeout: float = 40) -> list[str]:
        def ready():
            for d in [self.discovery, *self.agents.values(), *self.managers]:
                if not d.running():
                    raise AssertionError(f"{d.name} exited:\n{d.log_tail()}")
            nodes = self.healthy_nodes()
            return nodes if len(nodes) == count else None
        return wait_until(ready, timeout, f"{count} healthy nodes", interval=0.3)

    def stop(self) -> None:
        for d in [*self.managers, *self.agents.values(), self.discovery]:
            if d is not None:
                d.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {d.name}\n{d.log_tail(60)}" for d in [self.discovery, *self.agents.values(), *self.managers]
                         if d is not None)


@pytest.fixture(scope="module")
def boot(lab, tmp_path_factory):
    cluster = BootstrapCluster(lab, tmp_path_factory.mktemp("tls-bootstrap"))
    try:
        cluster.start()
    except BaseException:
        print(cluster.logs())
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


def openssl_verify(ca: Path, cert: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(cert)], capture_output=True, text=True,
                          timeout=10)


# -- joining with a token ----------------------------------------------------------------------

def test_agents_and_manager_join_with_only_a_token(boot):
    assert sorted(boot.healthy_nodes()) == sorted(e.name for e in boot.lab.engines)
    for name in [*boot.agents, "manager"]:
        state = boot.state(name)
        assert (state / "key.pem").stat().st_mode & 0o777 == 0o600
        verified = openssl_verify(boot.ca_dir / "ca.pem", state / "cert.pem")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        ident = pki.identity((state / "cert.pem").read_bytes())
        assert ident.cluster == boot.cluster_id
        assert ident.role == ("swarm-manager" if name == "manager" else "swarm-worker")
    for token in (boot.agent_token, boot.manager_token):
        parsed = join_tokens.parse(token)
        assert parsed.ca_digest == pki.ca_digest((boot.ca_dir / "ca.pem").read_bytes())
        assert parsed.secret not in (boot.root / "discovery.log").read_text()
    assert join_tokens.parse(boot.agent_token).secret != join_tokens.parse(boot.manager_token).secret
