"""TLS to etcd: a private etcd serving only TLS with client-certificate auth, reached by the
discovery daemon (`--etcd https://…`) and by the `etcd://` scheme (join, manage, list) with
`--etcd-cacert/--etcd-cert/--etcd-key`; without a client certificate etcd is unreachable."""
from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from swarmd.common import pki
from swarmd.common.etcd_tls import EtcdTLS, EtcdTLSError, for_endpoints
from swarmd.localcluster.etcd import EtcdServer, ServerTLS
from swarmd.localcluster.processes import Daemon, DaemonExited, free_port, wait_until
from swarmd.localcluster.swarm import swarm_argv


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("etcd-pki")
    ca = pki.create_ca("etcd test CA")
    pki.write_ca(d / "ca", ca, force=True)
    pki.write_issued(d / "etcd", ca.cert_pem, pki.issue(ca, "etcd", hosts=["127.0.0.1"]))
    pki.write_issued(d / "client", ca.cert_pem, pki.issue(ca, "swarmd", kind="client"))
    return d


@pytest.fixture(scope="module")
def etcd(certs, tmp_path_factory):
    server = EtcdServer(tmp_path_factory.mktemp("etcd-tls"), "etcd-tls",
                        tls=ServerTLS(cacert=certs / "ca" / "ca.pem", cert=certs / "etcd" / "cert.pem",
                                      key=certs / "etcd" / "key.pem"))
    server.start()
    yield server
    server.stop()


def etcd_flags(certs: Path, client_cert: bool = True) -> list[str]:
    flags = ["--etcd-cacert", str(certs / "ca" / "ca.pem")]
    if client_cert:
        flags += ["--etcd-cert", str(certs / "client" / "cert.pem"), "--etcd-key", str(certs / "client" / "key.pem")]
    return flags


def swarm(*args: str, timeout: float = 15) -> subprocess.CompletedProcess:
    return subprocess.run(swarm_argv(*args), capture_output=True, text=True, timeout=timeout)


class Daemons:
    def __init__(self, root: Path):
        self.root = root
        self.started: list[Daemon] = []

    def start(self, name: str, *args: str) -> Daemon:
        daemon = Daemon(name, swarm_argv(*args), self.root / f"{name}.log").start()
        self.started.append(daemon)
        return daemon

    def stop(self) -> None:
        for daemon in reversed(self.started):
            daemon.stop()


@pytest.fixture
def daemons(tmp_path):
    running = Daemons(tmp_path)
    yield running
    running.stop()


def join_args(lab, root: Path, name: str, *tail: str) -> list[str]:
    engine = lab.engines[0]
    return ["join", "--advertise", f"127.0.0.1:{free_port()}", "--engine", engine.url, "--name", name,
            "--heartbeat", "1s", "--ttl", "3s", "--state-dir", str(root / f"state-{name}"),
            "--host-ip", engine.host_ip, *tail]


def listed_healthy(name: str, *list_args: str):
    def check():
        out = swarm("list", *list_args)
        return out.returncode == 0 and any(line.split()[:1] == [name] and line.endswith("healthy")
                                           for line in out.stdout.splitlines())
    return check


def running(daemon: Daemon):
    if not daemon.running():
        raise DaemonExited(f"{daemon.name} exited:\n{daemon.log_tail()}")


def test_discovery_over_tls_serves_create_join_and_list(lab, etcd, certs, daemons):
    addr = f"127.0.0.1:{free_port()}"
    discovery = daemons.start("discovery", "discovery", "--listen", addr, "--etcd", etcd.url, *etcd_flags(certs))

    def create():
        running(discovery)
        out = swarm("create", "--discovery-addr", addr)
        return out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else ""
    token = wait_until(create, 15, "swarm create through a discovery daemon on TLS etcd", interval=0.2)
    agent = daemons.start("agent", *join_args(lab, daemons.root, "etcdtls-a", "--discovery-addr", addr,
                                              f"token://{token}"))
    wait_until(lambda: running(agent) or listed_healthy("etcdtls-a", "--discovery-addr", addr, f"token://{token}")(),
               15, "the agent to be listed healthy", interval=0.2)
    assert "etcd reachable" in discovery.log_path.read_text()


def test_discovery_without_client_cert_is_not_serving(etcd, certs, daemons):
    addr = f"127.0.0.1:{free_port()}"
    discovery = daemons.start("discovery", "discovery", "--listen", addr, "--etcd", etcd.url,
                              *etcd_flags(certs, client_cert=False))
    # refused at the handshake (fast), or after it when etcd checks the missing client
    # certificate late (TLS 1.3): then each read waits for its deadline first
    wait_until(lambda: running(discovery) or "etcd unreachable" in discovery.log_path.read_text(), 40,
               "the discovery daemon to report etcd unreachable", interval=0.1)
    with grpc.insecure_channel(addr) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="swarm.v1.Discovery"), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    created = swarm("create", "--discovery-addr", addr)
    assert created.returncode != 0
    assert discovery.running()
    assert "Traceback" not in discovery.log_path.read_text()


def test_etcd_url_with_flags_for_join_manage_and_list(lab, etcd, certs, daemons):
    url = f"etcd://{etcd.endpoint}/etcdtls"
    flags = etcd_flags(certs)
    agent = daemons.start("agent", *join_args(lab, daemons.root, "etcdtls-b", *flags, url))
    wait_until(lambda: running(agent) or listed_healthy("etcdtls-b", *flags, url)(), 15,
               "the agent to be listed healthy", interval=0.2)

    api = f"127.0.0.1:{free_port()}"
    manager = daemons.start("manager", "manage", "-H", f"tcp://{api}", "--replication", "--advertise", api,
                            *flags, url)

    def primary_with_node():
        running(manager)
        with urllib.request.urlopen(f"http://{api}/info", timeout=2) as r:
            info = json.loads(r.read())
        status = dict((k.strip(" └"), v) for k, v in info["SystemStatus"])
        return status.get("Role") == "primary" and any(k == "  └ Status" and v == "Healthy"
                                                       for k, v in info["SystemStatus"])
    wait_until(primary_with_node, 15, "the manager to be elected in TLS etcd and see the node", interval=0.2)

    plain = swarm("list", url)
    assert plain.returncode == 1 and "unavailable" in plain.stderr


def test_bad_etcd_tls_settings_exit_2(etcd, certs, tmp_path):
    missing = str(tmp_path / "missing.pem")
    out = swarm("discovery", "--listen", f"127.0.0.1:{free_port()}", "--etcd", etcd.url, "--etcd-cacert", missing)
    assert out.returncode == 2 and f"--etcd-cacert {missing}" in out.stderr + out.stdout

    out = swarm("discovery", "--listen", f"127.0.0.1:{free_port()}", "--etcd", f"http://{etcd.endpoint}",
                *etcd_flags(certs))
    assert out.returncode == 2 and "https://" in out.stderr + out.stdout

    out = swarm("list", "--etcd-cert", str(certs / "client" / "cert.pem"), f"etcd://{etcd.endpoint}/x")
    assert out.returncode == 2 and "--etcd-cert and --etcd-key go together" in out.stderr

    out = swarm("manage", "-H", f"tcp://127.0.0.1:{free_port()}", "--etcd-cert", str(certs / "client" / "cert.pem"),
                "--etcd-key", str(certs / "ca" / "ca.pem"), f"etcd://{etcd.endpoint}/x")
    assert out.returncode == 2 and "--etcd-key" in out.stderr + out.stdout


def test_endpoint_schemes_decide_tls():
    files = EtcdTLS(ca_pem=b"ca")
    assert for_endpoints("http://127.0.0.1:2379", None) is None
    assert for_endpoints("127.0.0.1:2379", None) is None
    assert for_endpoints("127.0.0.1:2379", files) is files
    assert for_endpoints("https://127.0.0.1:2379", None) == EtcdTLS()
    assert for_endpoints("https://a:1,https://b:2", files) is files
    with pytest.raises(EtcdTLSError, match="mixes"):
        for_endpoints("http://a:1,https://b:2", None)
    with pytest.raises(EtcdTLSError, match="https://"):
        for_endpoints("http://a:1", files)
