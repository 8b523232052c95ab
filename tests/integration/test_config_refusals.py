"""The three daemons as the user starts them (`python -m swarmd …`): any bad flag value, given as a
flag or as its SWARM_* twin, is one `swarm VERB: error:` line and exit status 2 before anything
starts (no port bound, no etcd or discovery daemon contacted); a port already in use after start
is one logged error and a non-zero exit. No lab is needed: nothing may get far enough to use one."""
from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import os
import socket
import subprocess

import pytest

from swarmd.common.config import env_name
from swarmd.localcluster.processes import free_port
from swarmd.localcluster.swarm import swarm_argv

TOKEN = "token://" + "ab" * 16


class Sentinel:
    """A listening socket standing in for etcd, a discovery daemon or an agent: whether anyone
    connected to it tells whether a refused start reached out."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"

    def contacted(self) -> bool:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sentinel():
    s = Sentinel()
    yield s
    s.close()


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def swarm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    full_env.update(env or {})
    return subprocess.run(swarm_argv(*args), capture_output=True, text=True, timeout=60, env=full_env)


def assert_refused(out: subprocess.CompletedProcess, verb: str) -> None:
    lines = out.stderr.splitlines()
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == "", out.stderr
    assert lines and lines[-1].startswith(f"swarm {verb}: error: "), lines
    # one line, or argparse's usage lines before its own refusal
    assert len(lines) == 1 or all(line.startswith(("usage:", " ")) for line in lines[:-1]), lines


def manage_cases(s: str) -> list[tuple[tuple[str, ...], dict[str, str]]]:
    ok = ("--discovery-addr", s, TOKEN)
    return [
        (("-H", "tcp://127.0.0.1:99999", *ok), {}),
        (("-H", "ftp://127.0.0.1:1", *ok), {}),
        (("-H", "tcp://0.0.0.0:2375", *ok), {}),                            # plain TCP beyond loopback
        (("--metrics-addr", "bad", *ok), {}),
        (("--metrics-addr", "127.0.0.1:70000", *ok), {}),
        (("--advertise", "nohost", *ok), {}),
        (("--discovery-addr", f"{s},bad", TOKEN), {}),
        (("--replication-ttl", "soon", *ok), {}),
        (("--replication-ttl", "0", *ok), {}),
        (("--api-rate-limit", "-1", *ok), {}),
        (("--api-rate-limit", "fast", *ok), {}),
        (("--strategy", "best", *ok), {}),
        (("--filter", "nosuch", *ok), {}),
        (("--replication", f"nodes://{s}"), {}),                            # no address to advertise
        (("--replication", "--advertise", "127.0.0.1:1", f"nodes://{s}"), {}),
        (("--tlsverify", "--tlscacert", "/nonexistent/ca.pem", *ok), {}),
        (("--tls", "--tlscert", "/nonexistent/cert.pem", "--tlskey", "/nonexistent/key.pem", *ok), {}),
        (("--etcd-cacert", "/nonexistent/ca.pem", f"etcd://{s}/x"), {}),
        (("token://short", "--discovery-addr", s), {}),
        ((TOKEN,), {}),                                                     # token:// without --discovery-addr
        ((f"etcd://{s}",), {}),
        (("nodes://",), {}),
        (("file://relative",), {}),
        (("file:///nonexistent/nodes",), {}),
        (ok, {"SWARM_METRICS_ADDR": "bad"}),
        (ok, {"SWARM_STRATEGY": "best"}),
        (ok, {"SWARM_REPLICATION_TTL": "soon"}),
        (ok, {"SWARM_HOST": "tcp://127.0.0.1:99999"}),
        (("--cluster-opt", "swarm.nosuch=1", *ok), {}),                     # classic's --cluster-opt
        (("--cluster-opt", "swarm.overcommit=-1", *ok), {}),
        (("--cluster-opt", "swarm.createretry=-1", *ok), {}),
        (("--cluster-opt", "swarm.createretry", *ok), {}),
        (ok, {"SWARM_CLUSTER_OPT": "swarm.overcommit=much"}),
        (("--engine-refresh-min-interval", "0s", *ok), {}),                # classic's polling flags, checked
        (("--engine-refresh-min-interval", "20s", "--engine-refresh-max-interval", "10s", *ok), {}),
        (("--engine-failure-retry", "zero", *ok), {}),
        (("--heartbeat", "often", *ok), {}),
    ]


def join_cases(s: str) -> list[tuple[tuple[str, ...], dict[str, str]]]:
    ok = ("--discovery-addr", s, TOKEN)
    adv = ("--advertise", s)
    return [
        (("--advertise", "nohost", *ok), {}),
        ((*adv, "--listen", "127.0.0.1:port", *ok), {}),
        ((*adv, "--metrics-addr", "bad", *ok), {}),
        ((*adv, "--heartbeat", "often", *ok), {}),
        ((*adv, "--heartbeat", "0", *ok), {}),
        ((*adv, "--heartbeat", "5s", "--ttl", "2s", *ok), {}),
        ((*adv, "--engine-check", "0s", *ok), {}),
        ((*adv, "--engine", "ftp://docker", *ok), {}),
        ((*adv, "--engine", "tcp://docker", *ok), {}),
        ((*adv, "--label", "novalue", *ok), {}),
        ((*adv, "--discovery-addr", "a:b", TOKEN), {}),
        ((*adv, "--tlsverify", *ok), {}),                                  # no --tlscacert
        ((*adv, "--etcd-cert", "/nonexistent/c.pem", "--etcd-key", "/nonexistent/k.pem", f"etcd://{s}/x"), {}),
        ((*adv, "token://0123"), {}),
        ((*adv, "etcd:///x"), {}),
        ((*adv, "nodes://h:1:2"), {}),
        ((*adv, "--discovery-addr", s, "token://SWMTKN-1-" + "0" * 64 + "-" + "ab" * 16), {}),   # TLS token, no TLS
        (ok, {"SWARM_ADVERTISE": "nohost"}),
        ((*adv, *ok), {"SWARM_HEARTBEAT": "often"}),
        ((*adv, *ok), {"SWARM_TLSCERT": "/nonexistent/c.pem", "SWARM_TLS": "1"}),
    ]


def discovery_cases(s: str) -> list[tuple[tuple[str, ...], dict[str, str]]]:
    etcd = ("--etcd", s)
    return [
        (("--listen", "nohost", *etcd), {}),
        (("--etcd", "http://127.0.0.1:99999"), {}),
        (("--etcd", ","), {}),
        ((*etcd, "--ttl", "long"), {}),
        ((*etcd, "--ttl", "0"), {}),
        ((*etcd, "--metrics-addr", "9100"), {}),
        ((*etcd, "--tls"), {}),                                            # serving TLS without a key pair
        ((*etcd, "--tlsverify", "--tlscacert", "/nonexistent/ca.pem"), {}),
        (("--etcd", f"http://{s}", "--etcd-cacert", "/nonexistent/ca.pem"), {}),
        (etcd, {"SWARM_TTL": "long"}),
        (etcd, {"SWARM_LISTEN": "nohost"}),
        ((), {"SWARM_ETCD": "http://127.0.0.1:99999"}),
    ]


# Every case is refused in-process (the parser and the verb's `configure`, which is all that runs
# before a daemon starts); every SUBPROCESS_EVERY-th case, and each verb's first, is also run as the
# user runs it, a few processes at a time, for the exit status, the one line and the unbound port.
SUBPROCESS_EVERY = 4
SUBPROCESS_WORKERS = 3


@contextlib.contextmanager
def swarm_environment(env: dict[str, str]):
    """os.environ with no SWARM_* variable but the case's own, restored afterwards."""
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("SWARM_")]:
        del os.environ[key]
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def refused_in_process(verb: str, argv: list[str], env: dict[str, str]) -> str:
    """What refused the case before anything started: argparse (exit 2) or the verb's configure."""
    from swarmd.cli import build_parser
    from swarmd.common.config import ConfigError
    with swarm_environment(env), contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            args = build_parser().parse_args([verb, *argv])
        except SystemExit as exc:
            assert exc.code == 2, (argv, env, err.getvalue())
            return err.getvalue()
        try:
            config = args.configure(args)
        except ConfigError as exc:
            return str(exc)
    raise AssertionError(f"accepted: {argv} {env} -> {config}")


def run_refusals(verb: str, cases, listen_flag: tuple[str, str], sentinel: Sentinel) -> None:
    """Runs every case with the daemon's listen flag on a free port (unless the case gives that
    flag's twin), then checks the refusal, the port and the sentinel."""
    flag, form = listen_flag
    runs = []
    for args, env in cases:
        port = free_port()
        twin = "SWARM_HOST" if flag == "-H" else env_name(flag)
        # first, so that a case's own flag (given later) wins
        listen = () if twin in env else (flag, form.format(port))
        runs.append(((*listen, *args), env, port))
        assert refused_in_process(verb, [*listen, *args], env), (args, env)
    assert not sentinel.contacted()

    def as_the_user_runs_it(run) -> None:
        argv, env, port = run
        assert_refused(swarm(verb, *argv, env=env), verb)
        assert not listening(port), (argv, env)

    with concurrent.futures.ThreadPoolExecutor(SUBPROCESS_WORKERS) as pool:
        list(pool.map(as_the_user_runs_it, runs[::SUBPROCESS_EVERY]))
    assert not sentinel.contacted()


def test_manage_refuses_bad_values_before_starting(sentinel):
    run_refusals("manage", manage_cases(sentinel.addr), ("-H", "tcp://127.0.0.1:{}"), sentinel)


def test_join_refuses_bad_values_before_starting(sentinel, tmp_path):
    cases = [(("--state-dir", str(tmp_path / "state"), *args), env) for args, env in join_cases(sentinel.addr)]
    run_refusals("join", cases, ("--listen", "127.0.0.1:{}"), sentinel)
    assert not (tmp_path / "state").exists()         # refused before the node id was made


def test_join_refuses_a_state_dir_it_cannot_keep_its_id_in(sentinel, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = swarm("join", "--advertise", sentinel.addr, "--state-dir", str(blocker / "state"), f"nodes://{sentinel.addr}")
    assert_refused(out, "join")
    assert "--state-dir" in out.stderr


def test_discovery_refuses_bad_values_before_starting(sentinel):
    run_refusals("discovery", discovery_cases(sentinel.addr), ("--listen", "127.0.0.1:{}"), sentinel)


# -- failures after start: one logged error, a non-zero exit, no traceback ---------------------------

def errors_logged(out: subprocess.CompletedProcess) -> list[dict]:
    assert "Traceback" not in out.stderr, out.stderr
    docs = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    return [d for d in docs if d["level"] == "error"]


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield s.getsockname()[1]


def test_manage_with_its_metrics_port_in_use_exits_1(sentinel, busy_port):
    out = swarm("--log-format", "json", "manage", "-H", f"tcp://127.0.0.1:{free_port()}",
                "--metrics-addr", f"127.0.0.1:{busy_port}", f"nodes://{sentinel.addr}")
    assert out.returncode == 1, out.stderr
    errors = errors_logged(out)
    assert [e["msg"] for e in errors] == ["cannot serve metrics"], errors


def test_manage_with_its_api_port_in_use_exits_1(sentinel, busy_port):
    out = swarm("--log-format", "json", "manage", "-H", f"tcp://127.0.0.1:{busy_port}", f"nodes://{sentinel.addr}")
    assert out.returncode == 1, out.stderr
    assert [e["msg"] for e in errors_logged(out)] == ["cannot listen"]


def test_join_with_its_port_in_use_exits_1(sentinel, busy_port, tmp_path):
    out = swarm("--log-format", "json", "join", "--advertise", f"127.0.0.1:{busy_port}", "--state-dir",
                str(tmp_path / "state"), "--engine", f"unix://{tmp_path}/none.sock", f"nodes://{sentinel.addr}")
    assert out.returncode == 1, out.stderr
    assert [e["msg"] for e in errors_logged(out)] == ["cannot listen"]


def test_discovery_with_its_metrics_port_in_use_exits_1(sentinel, busy_port):
    out = swarm("--log-format", "json", "discovery", "--listen", f"127.0.0.1:{free_port()}", "--etcd", sentinel.addr,
                "--metrics-addr", f"127.0.0.1:{busy_port}")
    assert out.returncode == 1, out.stderr
    assert [e["msg"] for e in errors_logged(out)] == ["cannot serve metrics"]
