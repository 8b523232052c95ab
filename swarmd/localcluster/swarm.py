"""The swarmd daemons on top of a Lab: discovery, one agent per engine, and managers."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from swarmd.localcluster.lab import Lab
from swarmd.localcluster.processes import Daemon, DaemonExited, free_port, wait_until


def swarm_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "swarmd", *args]


def manager_role(addr: str, timeout: float = 5) -> tuple[str, str]:
    """(role, primary address) as a manager's `docker info` shows them; ("down", "") when it
    does not answer."""
    try:
        with urllib.request.urlopen(f"http://{addr}/info", timeout=timeout) as r:
            status = dict((k, v) for k, v in json.loads(r.read())["SystemStatus"][:2])
    except (OSError, ValueError):
        return "down", ""
    return status.get("Role", ""), status.get("Primary", "")


def wait_one_primary(addrs: list[str], timeout: float = 20) -> str:
    """Waits until exactly one of `addrs` is primary and every other names it; returns it."""
    def settled():
        roles = {a: manager_role(a) for a in addrs}
        primaries = [a for a, (r, _) in roles.items() if r == "primary"]
        if len(primaries) != 1:
            return None
        p = primaries[0]
        ok = all(r == "replica" and prim == p for a, (r, prim) in roles.items() if a != p)
        return p if ok else None
    return wait_until(settled, timeout, "exactly one primary", interval=0.1)


class SwarmCluster:
    """Runs `swarm discovery`, `swarm join` per lab engine and `swarm manage` as real processes."""

    def __init__(self, lab: Lab, root: Path | None = None, heartbeat: str = "1s", ttl: str = "3s",
                 metrics: bool = False, agent_args: tuple[str, ...] = (), tls: bool = False):
        self.lab = lab
        self.tls = tls                     # a cluster CA under root/pki; every daemon runs --tlsverify
        self.agent_args = agent_args       # extra `swarm join` flags for every agent (e.g. --label)
        self.metrics = metrics             # every daemon serves --metrics-addr (see metrics_addrs)
        self.metrics_addrs: dict[str, str] = {}
        self.root = root or lab.root / "swarm"
        self.heartbeat = heartbeat
        self.ttl = ttl
        self.discovery: Daemon | None = None
        self.discovery_addr = f"127.0.0.1:{free_port()}"
        self.token = ""
        self.agents: dict[str, Daemon] = {}
        self.agent_addrs: dict[str, str] = {}
        self.managers: list[Daemon] = []
        self.manager_addrs: list[str] = []

    @property
    def discovery_url(self) -> str:
        return f"token://{self.token}"

    @property
    def docker_host(self) -> str:
        return f"tcp://{self.manager_addrs[0]}"

    # -- daemons ------------------------------------------------------------------------------

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    def _make_pki(self) -> None:
        from swarmd.common import pki
        ca = pki.create_ca("swarmd local CA")
        pki.write_ca(self.pki_dir, ca, force=True)
        pki.write_issued(self.pki_dir / "node", ca.cert_pem, pki.issue(ca, "node", hosts=["127.0.0.1", "localhost"]))
        pki.write_issued(self.pki_dir / "client", ca.cert_pem, pki.issue(ca, "client", kind="client"))

    def tls_args(self, who: str = "node") -> list[str]:
        """`--tlsverify --tlscacert … --tlscert … --tlskey …` for a daemon ("node") or a client."""
        if not self.tls:
            return []
        d = self.pki_dir / who
        return ["--tlsverify", "--tlscacert", str(d / "ca.pem"), "--tlscert", str(d / "cert.pem"),
                "--tlskey", str(d / "key.pem")]

    def _metrics_args(self, name: str) -> list[str]:
        if not self.metrics:
            return []
        addr = self.metrics_addrs.get(name) or f"127.0.0.1:{free_port()}"
        self.metrics_addrs[name] = addr
        return ["--metrics-addr", addr]

    def start_discovery(self, etcd_url: str | None = None) -> None:
        self.discovery = Daemon(
            "discovery",
            swarm_argv("discovery", "--listen", self.discovery_addr, "--etcd", etcd_url or self.lab.etcd.url,
                       *self._metrics_args("discovery"), *self.tls_args()),
            self.root / "discovery.log",
        ).start()
        self.token = wait_until(self._create_token, 20, "swarm create to answer")

    def _create_token(self) -> str:
        if not self.discovery.running():
            raise DaemonExited(f"discovery exited:\n{self.discovery.log_tail()}")
        out = subprocess.run(swarm_argv("create", "--discovery-addr", self.discovery_addr, *self.tls_args()),
                             capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            return ""
        return out.stdout.strip().splitlines()[-1]

    def start_agent(self, index: int) -> Daemon:
        engine = self.lab.engines[index]
        name = engine.name
        addr = self.agent_addrs.get(name) or f"127.0.0.1:{free_port()}"
        self.agent_addrs[name] = addr
        agent = Daemon(
            f"agent-{name}",
            swarm_argv("join", "--advertise", addr, "--engine", engine.url, "--name", name,
                       "--heartbeat", self.heartbeat, "--ttl", self.ttl,
                       "--state-dir", str(self.root / f"agent-{name}"), "--host-ip", engine.host_ip,
                       "--discovery-addr", self.discovery_addr, *self._metrics_args(f"agent-{name}"),
                       *self.tls_args(), *self.agent_args, self.discovery_url),
            self.root / f"agent-{name}.log",
        ).start()
        self.agents[name] = agent
        return agent

    def start_manager(self, *extra: str, addr: str | None = None) -> str:
        addr = addr or f"127.0.0.1:{free_port()}"
        index = len(self.managers)
        manager = Daemon(
            f"manager{index}",
            swarm_argv("manage", "-H", f"tcp://{addr}", "--discovery-addr", self.discovery_addr,
                       *self._metrics_args(f"manager{index}"), *self.tls_args(), *extra, self.discovery_url),
            self.root / f"manager{index}.log",
        ).start()
        self.managers.append(manager)
        self.manager_addrs.append(addr)
        return addr

    def start_replica(self, *extra: str, ttl: str = "3s") -> str:
        """A `--replication` manager advertising its own API address; returns that address."""
        addr = f"127.0.0.1:{free_port()}"
        return self.start_manager("--replication", "--advertise", addr, "--replication-ttl", ttl, *extra, addr=addr)

    def wait_nodes(self, count: int, manager: int = 0, timeout: float = 30) -> dict:
        """Waits until the manager's `docker info` shows `count` healthy nodes."""
        def ready():
            m = self.managers[manager]
            if not m.running():
                raise DaemonExited(f"manager exited:\n{m.log_tail()}")
            info = self.info(manager)
            healthy = [p for p in info["SystemStatus"] if p[0] == "  └ Status" and p[1] == "Healthy"]
            return info if len(healthy) == count else None
        return wait_until(ready, timeout, f"{count} healthy nodes", interval=0.2)

    def info(self, manager: int = 0) -> dict:
        if self.tls:
            from swarmd.common.tls import TLSConfig
            d = self.pki_dir / "client"
            ctx = TLSConfig.from_files(str(d / "ca.pem"), str(d / "cert.pem"), str(d / "key.pem")).client_ssl_context()
            with urllib.request.urlopen(f"https://{self.manager_addrs[manager]}/info", timeout=5, context=ctx) as r:
                return json.loads(r.read())
        with urllib.request.urlopen(f"http://{self.manager_addrs[manager]}/info", timeout=5) as r:
            return json.loads(r.read())

    def start(self, managers: int = 1, manager_args: tuple[str, ...] = ()) -> "SwarmCluster":
        self.root.mkdir(parents=True, exist_ok=True)
        if self.tls:
            self._make_pki()
        try:
            self.start_discovery()
            for i in range(len(self.lab.engines)):
                self.start_agent(i)
            for _ in range(managers):
                self.start_manager(*manager_args)
            self.wait_nodes(len(self.lab.engines))
        except BaseException:
            self.stop()
            raise
        return self

    def start_replicated(self, managers: int = 2) -> "SwarmCluster":
        """Discovery, an agent per engine and `managers` replicated managers, settled: one primary
        that every replica names, and every manager seeing every node healthy."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.start_discovery()
            for i in range(len(self.lab.engines)):
                self.start_agent(i)
            for _ in range(managers):
                self.start_replica()
            wait_one_primary(self.manager_addrs)
            for i in range(managers):
                self.wait_nodes(len(self.lab.engines), manager=i)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for d in [*self.managers, *self.agents.values(), self.discovery]:
            if d is not None:
                d.stop()

    def logs(self, lines: int = 30) -> str:
        parts = []
        for d in [self.discovery, *self.agents.values(), *self.managers]:
            if d is not None:
                parts.append(f"--- {d.name}\n{d.log_tail(lines)}")
        return "\n".join(parts)
