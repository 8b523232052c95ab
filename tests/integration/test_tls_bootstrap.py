"""Bootstrap mode end to end: a discovery daemon that is the cluster CA (`--ca-dir`), agents and a
manager that join with nothing but a join token, and the docker CLI with a client certificate
the CA signed (`swarm ca issue --kind client`).

One cluster for the module, with certificates that live 40 s, so every daemon renews while the
tests run: the renewal test watches it happen under a running container and an open
`docker logs -f`. The CA rotation test comes last: the cluster ends on a new CA.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path

import grpc
import pytest

from swarmd.common import join_tokens, node_certs, pki
from swarmd.localcluster.processes import Daemon, free_port, wait_until
from swarmd.localcluster.swarm import swarm_argv
from tests.integration.conftest import docker_cli_binary

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
        # what `swarm ca init --dir D` and `swarm ca issue --dir D --name alice --kind client` write
        # (made in-process: two interpreter starts fewer)
        ca = pki.create_ca("swarmd CA")
        pki.write_ca(self.ca_dir, ca)
        pki.write_issued(self.ca_dir / "alice", ca.cert_pem, pki.issue(ca, "alice", kind="client"))
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

    def docker(self, *args: str, cert: Path | None = None, timeout: float = 60, cli: str = "28",
               **kw) -> subprocess.CompletedProcess:
        """The real docker CLI (28.x or 20.10) with a client certificate (alice's unless told)."""
        env = {**os.environ, "DOCKER_CONFIG": str(self.root / f"docker-config-{cli}"),
               "DOCKER_HOST": f"tcp://{self.manager_addr}", "DOCKER_TLS_VERIFY": "1",
               "DOCKER_CERT_PATH": str(cert or self.ca_dir / "alice")}
        env.pop("DOCKER_CONTEXT", None)
        return subprocess.run([docker_cli_binary(cli), *args], env=env, capture_output=True, text=True,
                              timeout=timeout, **kw)

    def healthy_nodes(self, cli: str = "28") -> list[str]:
        out = self.docker("info", "--format", "{{json .SystemStatus}}", timeout=20, cli=cli)
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
        import signal
        daemons = [d for d in [*self.managers, *self.agents.values(), self.discovery] if d is not None]
        for d in daemons:                   # all told at once, then each waited for
            if d.running():
                os.kill(d.pid, signal.SIGTERM)
        for d in daemons:
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

@pytest.mark.parametrize("cli", ["28", "20.10"])
def test_agents_and_manager_join_with_only_a_token(boot, cli):
    assert sorted(boot.healthy_nodes(cli)) == sorted(e.name for e in boot.lab.engines)
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


def test_docker_api_refuses_a_client_without_a_cluster_certificate(boot, tmp_path):
    rogue = tmp_path / "rogue"
    ca = pki.create_ca("rogue CA")
    pki.write_issued(rogue, (boot.ca_dir / "ca.pem").read_bytes(), pki.issue(ca, "mallory", kind="client"))
    out = boot.docker("version", cert=rogue)
    assert out.returncode != 0 and "swarmd" not in out.stdout, out.stdout


def _log_lines(path: Path, text: str) -> int:
    return sum(text in line for line in path.read_text().splitlines())


def test_a_token_naming_another_ca_is_refused_before_the_secret_is_sent(boot, tmp_path):
    discovery_log = boot.root / "discovery.log"
    before = _log_lines(discovery_log, "join token refused"), _log_lines(discovery_log, "certificate issued")
    real = join_tokens.parse(boot.agent_token)
    other = pki.ca_digest(pki.create_ca("another CA").cert_pem)
    forged = f"SWMTKN-1-{other}-{real.secret}"          # the real secret: it must not leave the host
    engine = boot.lab.engines[0]
    agent = Daemon("forged", boot.join_argv(engine, "forged", tmp_path / "state", forged), tmp_path / "forged.log").start()
    try:
        wait_until(lambda: not agent.running(), 30, "the agent to give up")
        code = agent.stop()
    finally:
        agent.stop()
    log = (tmp_path / "forged.log").read_text()
    assert code == 1, log
    assert "does not hold the token's CA" in log and f"sha256:{other[:12]}" in log, log
    assert real.secret not in log
    assert (_log_lines(discovery_log, "join token refused"), _log_lines(discovery_log, "certificate issued")) == before
    assert real.secret not in discovery_log.read_text()
    assert not (tmp_path / "state" / "cert.pem").exists()


def test_an_agent_token_cannot_obtain_a_manager_certificate(boot, tmp_path):
    out = swarm("manage", "-H", f"tcp://127.0.0.1:{free_port()}", "--discovery-addr", boot.discovery_addr,
                "--state-dir", str(tmp_path / "state"), f"token://{boot.agent_token}")
    assert out.returncode == 1, out.stderr
    assert "an agent join token cannot obtain a manager certificate" in out.stderr
    assert join_tokens.parse(boot.agent_token).secret not in out.stderr
    assert not (tmp_path / "state" / "cert.pem").exists()
    assert "certificate refused" in (boot.root / "discovery.log").read_text()


def _grpc_credentials(state: Path) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials((state / "ca.pem").read_bytes(), (state / "key.pem").read_bytes(),
                                        (state / "cert.pem").read_bytes())


def test_certificates_open_nothing_in_another_cluster_or_role(boot, tmp_path):
    """A node certificate of cluster X acts for X only, and as a node only: another cluster of the same
    discovery daemon, a manager's calls and the agents' service (which takes managers) refuse it."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from swarmd.proto.swarm.v1 import discovery_pb2, discovery_pb2_grpc, types_pb2
    other_cluster, _ = boot.create()
    node = boot.state(boot.lab.engines[0].name)
    ident = pki.identity((node / "cert.pem").read_bytes())
    with grpc.secure_channel(boot.discovery_addr, _grpc_credentials(node)) as channel:
        stub = discovery_pb2_grpc.DiscoveryStub(channel)
        info = types_pb2.NodeInfo(id=ident.common_name, name="intruder", addr="127.0.0.1:1")
        calls = {
            "register in another cluster": lambda: stub.Register(
                discovery_pb2.RegisterRequest(token=other_cluster, node=info, ttl_ms=3000), timeout=5),
            "list another cluster": lambda: stub.ListNodes(discovery_pb2.ListNodesRequest(token=other_cluster), timeout=5),
            "a manager's call in its own cluster": lambda: stub.ListNodes(
                discovery_pb2.ListNodesRequest(token=boot.cluster_id), timeout=5),
            "another node's heartbeat": lambda: stub.Heartbeat(
                discovery_pb2.HeartbeatRequest(token=boot.cluster_id, node_id="0123456789abcdef", lease_id=1), timeout=5),
            "a token for its cluster": lambda: stub.CreateToken(
                discovery_pb2.CreateTokenRequest(cluster=boot.cluster_id), timeout=5),
        }
        for what, call in calls.items():
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, (what, err.value.details())
        assert "another cluster" in _details(calls["register in another cluster"])
    # a manager certificate of the other cluster: refused by this cluster's discovery calls and agents
    _, other_manager_token = boot.create("--role", "manager", "--cluster", other_cluster)
    other_manager = tmp_path / "other-manager"
    asyncio.run(node_certs.obtain(boot.discovery_addr, join_tokens.parse(other_manager_token), other_manager,
                                  pki.ROLE_MANAGER, "m0123456789abcdef"))
    with grpc.secure_channel(boot.discovery_addr, _grpc_credentials(other_manager)) as channel:
        with pytest.raises(grpc.RpcError) as err:
            discovery_pb2_grpc.DiscoveryStub(channel).ListNodes(
                discovery_pb2.ListNodesRequest(token=boot.cluster_id), timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "another cluster" in err.value.details()
    agent_addr = boot.agent_addrs[boot.lab.engines[1].name]
    options = (("grpc.ssl_target_name_override", f"swarm-worker.{boot.cluster_id}"),)
    for state, allowed in ((node, False), (other_manager, False), (boot.state("manager"), True)):
        with grpc.secure_channel(agent_addr, _grpc_credentials(state), options=options) as channel:
            check = lambda: health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            if allowed:
                assert check().status == health_pb2.HealthCheckResponse.SERVING
            else:
                with pytest.raises(grpc.RpcError) as err:
                    check()
                assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def _details(call) -> str:
    try:
        call()
    except grpc.RpcError as err:
        return err.details() or ""
    return ""


def test_a_restarted_agent_reuses_its_stored_certificate(boot):
    name = boot.lab.engines[2].name
    boot.agents[name].stop()
    log = boot.root / f"agent-{name}.log"
    log.write_text("")
    boot.start_agent(boot.lab.engines[2])
    wait_until(lambda: "agent serving" in log.read_text(), 30, "the agent to serve again")
    text = log.read_text()
    assert "reusing the stored certificate" in text and "certificate issued" not in text, text
    assert name in boot.wait_healthy(len(boot.lab.engines))


# -- renewal --------------------------------------------------------------------------------------

def _serial(state: Path) -> int:
    return pki.identity((state / "cert.pem").read_bytes()).serial


def test_certificates_renew_under_running_containers_and_open_streams(boot):
    """With 40 s certificates every daemon renews within the test: a container started before runs on,
    a `docker logs -f` opened before keeps streaming, the nodes stay healthy, and the new certificates
    in the state directories verify against the CA."""
    import threading
    name = f"renew-{uuid.uuid4().hex[:8]}"
    out = boot.docker("run", "-d", "--name", name, "busybox", "sh", "-c",
                      "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done")
    assert out.returncode == 0, out.stderr
    env = {**os.environ, "DOCKER_CONFIG": str(boot.root / "docker-config-28"), "DOCKER_HOST": f"tcp://{boot.manager_addr}",
           "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(boot.ca_dir / "alice")}
    follow = subprocess.Popen([docker_cli_binary("28"), "logs", "-f", name], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: [lines.append(line) for line in follow.stdout], daemon=True)
    reader.start()
    try:
        wait_until(lambda: len(lines) >= 2, 30, "docker logs -f to stream")
        states = [boot.state(n) for n in boot.agents] + [boot.state("manager")]
        before = {s: _serial(s) for s in states}
        wait_until(lambda: all(_serial(s) != before[s] for s in states), 60, "every daemon to renew", interval=0.5)
        streamed = len(lines)
        wait_until(lambda: len(lines) >= streamed + 3, 30, "docker logs -f to go on streaming after the renewals")
        assert follow.poll() is None, follow.stderr.read()
        for s in states:
            verified = openssl_verify(boot.ca_dir / "ca.pem", s / "cert.pem")
            assert verified.returncode == 0, verified.stdout + verified.stderr
        assert sorted(boot.wait_healthy(len(boot.lab.engines))) == sorted(e.name for e in boot.lab.engines)
        inspected = boot.docker("inspect", "--format", "{{.State.Running}}", name)
        assert inspected.stdout.strip() == "true", inspected.stderr
        logs = boot.docker("logs", "--tail", "1", name)          # a new call to the agent, new credentials
        assert logs.returncode == 0 and logs.stdout.startswith("tick"), logs.stderr
        for n in boot.agents:
            assert "certificate renewed" in (boot.root / f"agent-{n}.log").read_text()
    finally:
        follow.kill()
        follow.wait(timeout=10)
        boot.docker("rm", "-f", name)


# -- token rotation and removed nodes ------------------------------------------------------------

def _rotate(boot, *args: str) -> str:
    out = swarm("token", "rotate", "--discovery-addr", boot.discovery_addr, "--ca-dir", str(boot.ca_dir),
                "--cluster", boot.cluster_id, *args)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"cluster {boot.cluster_id}"
    return out.stdout.strip().splitlines()[-1]


def _join_once(boot, tmp_path: Path, name: str, token: str) -> Daemon:
    return Daemon(name, boot.join_argv(boot.lab.engines[0], name, tmp_path / name, token),
                  tmp_path / f"{name}.log").start()


def test_rotated_tokens_admit_no_new_node_and_removed_nodes_are_refused(boot, tmp_path):
    old_agent, old_manager = boot.agent_token, boot.manager_token
    new_agent = _rotate(boot)
    new_manager = _rotate(boot, "--role", "manager")
    assert join_tokens.parse(new_agent).secret != join_tokens.parse(old_agent).secret
    # the old tokens admit nobody new
    late = _join_once(boot, tmp_path, "late", old_agent)
    try:
        wait_until(lambda: not late.running(), 30, "the agent with the old token to give up")
        assert late.stop() == 1
    finally:
        late.stop()
    assert "invalid join token" in (tmp_path / "late.log").read_text()
    out = swarm("manage", "-H", f"tcp://127.0.0.1:{free_port()}", "--discovery-addr", boot.discovery_addr,
                "--state-dir", str(tmp_path / "late-manager"), f"token://{old_manager}")
    assert out.returncode == 1 and "invalid join token" in out.stderr, out.stderr
    # nodes already in are unaffected
    count = len(boot.lab.engines)
    assert len(boot.wait_healthy(count)) == count
    # the new token admits a node ...
    doomed = _join_once(boot, tmp_path, "doomed", new_agent)
    try:
        assert "doomed" in boot.wait_healthy(count + 1)
        state = tmp_path / "doomed"
        # ... which, removed, can no longer act nor renew
        out = boot.docker("node", "rm", "--force", "doomed")
        assert out.returncode == 0, out.stderr
        wait_until(lambda: not doomed.running(), 30, "the removed agent to be refused")
        log = (tmp_path / "doomed.log").read_text()
        assert "registration refused" in log and "was removed from the cluster" in log, log
        from swarmd.proto.swarm.v1 import discovery_pb2, discovery_pb2_grpc
        csr, _ = pki.make_csr(pki.identity((state / "cert.pem").read_bytes()).common_name)
        with grpc.secure_channel(boot.discovery_addr, _grpc_credentials(state)) as channel:
            with pytest.raises(grpc.RpcError) as err:
                discovery_pb2_grpc.DiscoveryStub(channel).RenewCertificate(
                    discovery_pb2.RenewCertificateRequest(csr_pem=csr), timeout=5)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "was removed from the cluster" in err.value.details()
    finally:
        doomed.stop()
    assert sorted(boot.wait_healthy(count)) == sorted(e.name for e in boot.lab.engines)
    boot.agent_token, boot.manager_token = new_agent, new_manager


def test_creating_tokens_needs_the_ca(boot, tmp_path):
    rogue = tmp_path / "rogue-ca"
    pki.write_ca(rogue, pki.create_ca("rogue CA"))
    forged = swarm("create", "--discovery-addr", boot.discovery_addr, "--ca-dir", str(rogue))
    assert forged.returncode == 1 and "SWMTKN" not in forged.stdout, forged.stdout
    rotate = swarm("token", "rotate", "--discovery-addr", boot.discovery_addr, "--ca-dir", str(rogue),
                   "--cluster", boot.cluster_id)
    assert rotate.returncode == 1 and "SWMTKN" not in rotate.stdout, rotate.stdout


# -- CA rotation (last: the cluster ends on a new CA) ---------------------------------------------

def _phase(boot) -> str:
    from swarmd.common import ca_rotation
    return ca_rotation.read(boot.ca_dir).phase


class _Poller:
    """`docker ps` and `docker info` through the manager, back to back in a thread, alternating the
    28.x and the 20.10 CLI; every failure is kept. The client certificate is `before` (an old-CA one)
    until the manager trusts the new root, then `after` (a new-CA one, made when the rotation began):
    the switch an operator makes once `swarm ca rotate --status` says `sign`, taken here at the exact
    moment so that no call can race the phases."""

    def __init__(self, boot, before: Path, after: Path):
        import threading
        self.boot, self.before, self.after = boot, before, after
        self.new_root = b""
        self.calls, self.failures = 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            cli = ("28", "20.10")[self.calls % 2]
            args = ("ps", "-q") if self.calls % 3 else ("info", "--format", "{{.Containers}}")
            trusted = (self.boot.state("manager") / "ca.pem").read_bytes()
            client = self.after if self.new_root and self.new_root in trusted else self.before
            out = self.boot.docker(*args, cert=client, cli=cli, timeout=30)
            if out.returncode != 0:
                self.failures.append(f"{cli} {args[0]} with {client.name} in phase {_phase(self.boot)}: {out.stderr}")
            self.calls += 1

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def test_ca_rotation_moves_every_node_to_the_new_ca_with_the_cluster_serving(boot, tmp_path):
    """`swarm ca rotate` while a container runs and the docker CLI calls the manager back to back:
    no call fails; at the end every node's certificate is from the new CA (and not the old), each
    node trusts the new root alone, an old-CA certificate is refused and new tokens name the new CA."""
    old_ca = (boot.ca_dir / "ca.pem").read_bytes()
    name = f"rotate-{uuid.uuid4().hex[:8]}"
    out = boot.docker("run", "-d", "--name", name, "busybox", "sleep", "600")
    assert out.returncode == 0, out.stderr
    # clients during the rotation: their certificate, with both roots (README "Rotating the CA")
    alice = boot.ca_dir / "alice"
    during = tmp_path / "alice-during"
    during.mkdir()
    for f in ("cert.pem", "key.pem"):
        (during / f).write_bytes((alice / f).read_bytes())
    (during / "ca.pem").write_bytes(old_ca)
    bob = tmp_path / "bob"
    try:
        with _Poller(boot, during, bob) as poller:
            out = swarm("ca", "rotate", "--dir", str(boot.ca_dir))
            assert out.returncode == 0, out.stderr
            new_ca = (boot.ca_dir / "next" / "ca.pem").read_bytes()
            (during / "ca.pem").write_bytes(old_ca + new_ca)
            # during a rotation `swarm ca issue` signs with the new CA: the certificate outlives it
            issued = swarm("ca", "issue", "--dir", str(boot.ca_dir), "--name", "bob", "--kind", "client",
                           "--out", str(bob))
            assert issued.returncode == 0, issued.stderr
            assert openssl_verify(boot.ca_dir / "next" / "ca.pem", bob / "cert.pem").returncode == 0
            poller.new_root = new_ca
            wait_until(lambda: _phase(boot) == "none", 60, "the rotation to finish", interval=0.2)
            calls = poller.calls
            wait_until(lambda: poller.calls >= calls + 2, 60, "the CLI to call after the rotation")
        assert poller.failures == [], "\n".join(poller.failures) + boot.logs()
        assert poller.calls >= 6
        assert (boot.ca_dir / "ca.pem").read_bytes() == new_ca
        status = swarm("ca", "rotate", "--dir", str(boot.ca_dir), "--status")
        assert status.stdout.splitlines()[0] == "phase none", status.stdout
        new_digest = pki.ca_digest(new_ca)
        for state in [boot.state(n) for n in boot.agents] + [boot.state("manager")]:
            assert openssl_verify(boot.ca_dir / "ca.pem", state / "cert.pem").returncode == 0
            assert openssl_verify(boot.ca_dir / "previous" / "ca.pem", state / "cert.pem").returncode != 0
            assert [pki.der_digest(c) for c in pki.bundle((state / "ca.pem").read_bytes())] == [new_digest]
        # `swarm ca issue` signs with the new CA now: alice again, for the docker CLI from here on
        assert swarm("ca", "issue", "--dir", str(boot.ca_dir), "--name", "alice", "--kind", "client").returncode == 0
        assert sorted(boot.wait_healthy(len(boot.lab.engines))) == sorted(e.name for e in boot.lab.engines)
        inspected = boot.docker("inspect", "--format", "{{.State.Running}}", name)
        assert inspected.stdout.strip() == "true", inspected.stderr
        # an old-CA certificate opens nothing: alice at the manager, an old node certificate at discovery
        refused = boot.docker("ps", cert=during)
        assert refused.returncode != 0, refused.stdout
        old = pki.read_ca(boot.ca_dir / "previous")
        csr, key = pki.make_csr("n0123456789abcdef")
        stale = tmp_path / "stale"
        node_certs.store(stale, old.cert_pem + new_ca, pki.sign_csr(old, csr, cluster=boot.cluster_id,
                                                                     role=pki.ROLE_WORKER,
                                                                     common_name="n0123456789abcdef",
                                                                     lifetime=600), key)
        from swarmd.proto.swarm.v1 import discovery_pb2, discovery_pb2_grpc
        with grpc.secure_channel(boot.discovery_addr, _grpc_credentials(stale)) as channel:
            with pytest.raises(grpc.RpcError) as err:
                discovery_pb2_grpc.DiscoveryStub(channel).ListNodes(
                    discovery_pb2.ListNodesRequest(token=boot.cluster_id), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE       # refused at the handshake
        # tokens now name the new CA; the rotation went through its phases in the discovery log
        _, token = boot.create("--cluster", boot.cluster_id)
        assert join_tokens.parse(token).ca_digest == new_digest
        moved = _log_lines(boot.root / "discovery.log", "CA rotation moved on")
        assert moved == 3, (boot.root / "discovery.log").read_text()
    finally:
        boot.docker("rm", "-f", name)
