"""`swarm manage` as a process: refusals exit non-zero with a clear line, SIGTERM exits 0, metrics."""
from __future__ import annotations

import subprocess
import urllib.request

from swarmd.localcluster.processes import Daemon, free_port, wait_until
from swarmd.localcluster.swarm import swarm_argv


def _manager(swarm, tmp_path, *args: str) -> tuple[Daemon, str]:
    addr = f"127.0.0.1:{free_port()}"
    d = Daemon("manager-t", swarm_argv("manage", "-H", f"tcp://{addr}", "--discovery-addr", swarm.discovery_addr,
                                       *args), tmp_path / "manager.log").start()
    return d, addr


def test_unknown_token_exits_1_with_a_clear_line(swarm, tmp_path):
    d, _ = _manager(swarm, tmp_path, "token://" + "0" * 32)
    assert d.proc.wait(30) == 1
    log = d.log_path.read_text()
    assert "unknown cluster token" in log
    assert "0" * 32 not in log and "Traceback" not in log


def test_public_plain_tcp_is_refused(swarm, tmp_path):
    proc = subprocess.run(swarm_argv("manage", "-H", "tcp://0.0.0.0:2375", "--discovery-addr",
                                     swarm.discovery_addr, swarm.discovery_url),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "without TLS" in proc.stdout + proc.stderr


def test_second_manager_serves_metrics_and_stops_cleanly_on_sigterm(swarm, tmp_path):
    metrics_addr = f"127.0.0.1:{free_port()}"
    d, addr = _manager(swarm, tmp_path, "--metrics-addr", metrics_addr, swarm.discovery_url)
    try:
        def healthy_nodes():
            with urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=2) as r:
                text = r.read().decode()
            line = [l for l in text.splitlines() if l.startswith('swarmd_manager_nodes{state="healthy"}')]
            return line and float(line[0].split()[-1]) == 3
        wait_until(healthy_nodes, 30, "metrics to show 3 healthy nodes", interval=0.2)
        urllib.request.urlopen(f"http://{addr}/_ping", timeout=5).read()
        with urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=2) as r:
            text = r.read().decode()
        assert 'swarmd_manager_api_requests_total{method="GET",route="/_ping",status="200"}' in text
        assert "swarmd_manager_leader 1.0" in text
        assert swarm.token not in d.log_path.read_text()
    finally:
        assert d.stop() == 0
    assert "manager stopped" in d.log_path.read_text()


def test_api_rate_limit_answers_429_per_client(swarm, tmp_path):
    d, addr = _manager(swarm, tmp_path, "--api-rate-limit", "1", swarm.discovery_url)
    try:
        wait_until(lambda: _status(f"http://{addr}/_ping") == 200, 30, "the manager to serve")
        statuses = [_status(f"http://{addr}/_ping") for _ in range(4)]
        assert 429 in statuses
    finally:
        assert d.stop() == 0


def _status(url: str) -> int:
    import urllib.error
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def test_unix_socket_listener_serves_attached_runs(swarm, tmp_path, lab):
    sock = tmp_path / "swarmd.sock"
    d = Daemon("manager-unix", swarm_argv("manage", "-H", f"unix://{sock}", "--discovery-addr",
                                          swarm.discovery_addr, swarm.discovery_url), tmp_path / "unix.log").start()
    try:
        wait_until(sock.exists, 30, "the manager's socket")
        env = {"DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(tmp_path / "cfg"), "PATH": "/usr/local/bin:/usr/bin:/bin"}

        def three_nodes():
            out = subprocess.run(["docker", "info"], env=env, capture_output=True, text=True, timeout=30).stdout
            return out.count("└ Status: Healthy") == 3
        wait_until(three_nodes, 30, "three healthy nodes through the socket", interval=0.2)
        proc = subprocess.run(["docker", "run", "--rm", "-i", "busybox", "sh", "-c", "read x; echo got-$x"],
                              env=env, input="unix\n", capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stdout == "got-unix\n", proc.stderr
    finally:
        assert d.stop() == 0
    assert not sock.exists()          # removed on shutdown
