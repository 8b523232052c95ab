"""TLS end to end: a cluster whose daemons all run --tlsverify, driven by the real docker CLI.

The matrix, for the Docker API and for gRPC (discovery and agent): a certificate signed by the
cluster CA works; no certificate, a certificate from another CA, or plain text fail at the
handshake. Join tokens carry the CA digest; a wrong token or a CA that does not match it is
refused, and the secret is never logged.
"""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from swarmd.common import pki
from swarmd.localcluster.processes import Daemon, free_port, wait_until
from swarmd.localcluster.swarm import SwarmCluster, swarm_argv
from swarmd.common.membership import urls


@pytest.fixture(scope="module")
def tls_swarm(lab, tmp_path_factory):
    cluster = SwarmCluster(lab, root=tmp_path_factory.mktemp("tls-swarm"), tls=True)
    try:
        cluster.start()
    except BaseException:
        print(cluster.logs())
        raise
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def rogue(tmp_path_factory):
    """A CA that is not the cluster's, with a client and a node certificate of its own."""
    root = tmp_path_factory.mktemp("rogue-pki")
    ca = pki.create_ca("rogue CA")
    pki.write_ca(root, ca)
    pki.write_issued(root / "client", ca.cert_pem, pki.issue(ca, "mallory", kind="client"))
    pki.write_issued(root / "node", ca.cert_pem, pki.issue(ca, "node", hosts=["127.0.0.1"]))
    return root


def docker(cluster: SwarmCluster, tmp_path, *args: str, env: dict | None = None, timeout: float = 60):
    full = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-config"), **(env or {})}
    for k in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        if env is None or k not in env:
            full.pop(k, None)
    return subprocess.run(["docker", "-H", cluster.docker_host, *args], env=full, capture_output=True,
                          text=True, timeout=timeout)


def tls_flags(d) -> list[str]:
    return ["--tlsverify", "--tlscacert", str(d / "ca.pem"), "--tlscert", str(d / "cert.pem"),
            "--tlskey", str(d / "key.pem")]


# -- the Docker API --------------------------------------------------------------------------

def test_docker_cli_with_a_cluster_certificate(tls_swarm, tmp_path):
    client = tls_swarm.pki_dir / "client"
    out = docker(tls_swarm, tmp_path, *tls_flags(client), "info", "--format", "{{json .SystemStatus}}")
    assert out.returncode == 0, out.stderr
    for name in ("node1", "node2", "node3"):
        assert name in out.stdout
    # the environment form: DOCKER_TLS_VERIFY + DOCKER_CERT_PATH, and a hijacked attach over TLS
    name = f"tls-{uuid.uuid4().hex[:8]}"
    env = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(client)}
    out = docker(tls_swarm, tmp_path, "run", "--rm", "--name", name, "busybox", "echo", "over tls", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "over tls"


def test_docker_api_refuses_clients_without_a_cluster_certificate(tls_swarm, tmp_path, rogue):
    ca = tls_swarm.pki_dir / "ca.pem"
    refused = {
        "no client certificate": ["--tlsverify", "--tlscacert", str(ca)],
        "client certificate from another CA": [
            "--tlsverify", "--tlscacert", str(ca), "--tlscert", str(rogue / "client" / "cert.pem"),
            "--tlskey", str(rogue / "client" / "key.pem")],
        "server checked against another CA": tls_flags(rogue / "client"),
        "plain HTTP": [],
    }
    for what, flags in refused.items():
        out = docker(tls_swarm, tmp_path, *flags, "version", "--format", "{{.Server.Version}}")
        assert out.returncode != 0, what
        assert "swarmd" not in out.stdout and "error during connect" in out.stderr, (what, out.stderr)
    # the handshake says why, in the CLI's own words
    no_cert = docker(tls_swarm, tmp_path, *refused["no client certificate"], "version")
    assert "certificate required" in no_cert.stderr, no_cert.stderr
    server_unknown = docker(tls_swarm, tmp_path, *refused["server checked against another CA"], "version")
    assert "certificate signed by unknown authority" in server_unknown.stderr, server_unknown.stderr
    assert "TLS handshake refused" in tls_swarm.managers[0].log_path.read_text()


def test_handshake_without_client_certificate_fails_in_python_too(tls_swarm):
    host, port = tls_swarm.manager_addrs[0].split(":")
    ctx = ssl.create_default_context(cafile=str(tls_swarm.pki_dir / "ca.pem"))
    import socket
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with ctx.wrap_socket(raw, server_hostname=host) as s:
                s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
                if not s.recv(1024):              # TLS 1.3: the refusal arrives with the first read
                    raise ConnectionError("closed")


# -- gRPC ------------------------------------------------------------------------------------

def _health(addr: str, creds) -> int:
    channel = grpc.secure_channel(addr, creds) if creds is not None else grpc.insecure_channel(addr)
    with channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status


def _creds(d, with_cert: bool = True, ca_dir=None):
    ca = ((ca_dir or d) / "ca.pem").read_bytes()
    if not with_cert:
        return grpc.ssl_channel_credentials(root_certificates=ca)
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=(d / "key.pem").read_bytes(),
                                        certificate_chain=(d / "cert.pem").read_bytes())


@pytest.mark.parametrize("target", ["discovery", "agent"])
def test_grpc_is_mutual_tls(tls_swarm, rogue, target):
    addr = tls_swarm.discovery_addr if target == "discovery" else tls_swarm.agent_addrs["node1"]
    node = tls_swarm.pki_dir / "node"
    assert _health(addr, _creds(node)) == health_pb2.HealthCheckResponse.SERVING
    refusals = {
        "no client certificate": _creds(node, with_cert=False),
        "certificate from another CA": _creds(rogue / "node", ca_dir=node),
        "server checked against another CA": _creds(rogue / "node"),
        "plain text": None,
    }
    for what, creds in refusals.items():
        with pytest.raises(grpc.RpcError) as err:
            _health(addr, creds)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, what


# -- join tokens -----------------------------------------------------------------------------

def test_token_names_the_cluster_ca(tls_swarm):
    parsed = urls.parse(tls_swarm.discovery_url)
    assert parsed.ca_digest == pki.ca_digest((tls_swarm.pki_dir / "ca.pem").read_bytes())
    listed = subprocess.run(swarm_argv("list", "--discovery-addr", tls_swarm.discovery_addr,
                                       *tls_swarm.tls_args("client"), tls_swarm.discovery_url),
                            capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert sorted(line.split()[0] for line in listed.stdout.splitlines()) == ["node1", "node2", "node3"]


def _join(tls_swarm, tmp_path, url: str, tls_dir) -> Daemon:
    addr = f"127.0.0.1:{free_port()}"
    engine = tls_swarm.lab.engines[0]
    return Daemon("intruder", swarm_argv(
        "join", "--advertise", addr, "--engine", engine.url, "--name", "intruder", "--state-dir",
        str(tmp_path / "state"), "--heartbeat", "1s", "--ttl", "3s", "--discovery-addr", tls_swarm.discovery_addr,
        *tls_flags(tls_dir), url), tmp_path / "intruder.log").start()


def _exit_code(daemon: Daemon, timeout: float = 20) -> int:
    from swarmd.localcluster.processes import wait_until
    wait_until(lambda: not daemon.running(), timeout, "the agent to exit")
    return daemon.stop()


def test_wrong_token_is_refused_and_not_logged(tls_swarm, tmp_path):
    secret = uuid.uuid4().hex
    url = f"token://{urls.join_token(urls.parse(tls_swarm.discovery_url).ca_digest, secret)}"
    agent = _join(tls_swarm, tmp_path, url, tls_swarm.pki_dir / "node")
    try:
        code = _exit_code(agent)
        log = agent.log_path.read_text()
        assert code == 1, log
        assert "registration refused" in log and "unknown cluster token" in log
        assert secret not in log
        discovery_log = tls_swarm.discovery.log_path.read_text()
        assert "unknown cluster token" in discovery_log
        assert secret not in discovery_log
    finally:
        agent.stop()


def test_ca_that_does_not_match_the_token_is_refused(tls_swarm, tmp_path, rogue):
    agent = _join(tls_swarm, tmp_path, tls_swarm.discovery_url, rogue / "node")
    try:
        code = _exit_code(agent)
        log = agent.log_path.read_text()
        assert code == 2, log
        assert "not the cluster's CA" in log
        assert urls.parse(tls_swarm.discovery_url).token not in log
    finally:
        agent.stop()


def test_tls_without_client_verification_stays_on_loopback(tls_swarm, tmp_path):
    node = tls_swarm.pki_dir / "node"
    out = subprocess.run(swarm_argv("manage", "-H", f"tcp://0.0.0.0:{free_port()}", "--tls",
                                    "--tlscert", str(node / "cert.pem"), "--tlskey", str(node / "key.pem"),
                                    "--discovery-addr", tls_swarm.discovery_addr, tls_swarm.discovery_url),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "refusing to serve the Docker API" in out.stderr + out.stdout


# -- the web view ----------------------------------------------------------------------------

def test_the_web_view_demands_a_cluster_client_certificate(tls_swarm, rogue):
    """`--ui-addr` on a `--tlsverify` manager: a client certificate the cluster CA signed reads the
    page and its data; none, another CA's, or plain HTTP get nothing."""
    ui = f"127.0.0.1:{free_port()}"
    tls_swarm.start_manager("--ui-addr", ui)
    client = tls_swarm.pki_dir / "client"

    def context(cert_dir=None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(tls_swarm.pki_dir / "ca.pem"))
        if cert_dir is not None:
            ctx.load_cert_chain(str(cert_dir / "cert.pem"), str(cert_dir / "key.pem"))
        return ctx

    def summary():
        with urllib.request.urlopen(f"https://{ui}/api/summary", context=context(client), timeout=5) as r:
            return json.loads(r.read())
    doc = wait_until(lambda: (d := summary())["totals"]["healthy"] == len(tls_swarm.lab.engines) and d,
                     30, "the web view over TLS to show every node healthy")
    assert sorted(n["name"] for n in doc["nodes"]) == sorted(e.name for e in tls_swarm.lab.engines)
    with urllib.request.urlopen(f"https://{ui}/", context=context(client), timeout=5) as r:
        assert r.status == 200 and b"<html" in r.read().lower()
    for refused in (context(None), context(rogue / "client")):
        with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
            with urllib.request.urlopen(f"https://{ui}/api/summary", context=refused, timeout=5) as r:
                r.read()
    with pytest.raises((ConnectionError, urllib.error.URLError, OSError)):
        with urllib.request.urlopen(f"http://{ui}/api/summary", timeout=5) as r:
            r.read()
