"""The classic swarm walkthrough, through the manager, with the real docker CLI."""
from __future__ import annotations

import os
import pty
import select
import subprocess
import time
import urllib.request

import pytest

pytestmark = pytest.mark.usefixtures("clean_containers")


def test_docker_info_shows_the_cluster(cli, lab):
    out = cli.out("info")
    assert "Nodes: 3" in out
    assert "Role: primary" in out
    assert "Strategy: spread" in out
    assert "Filters: health, port, containerslots, dependency, affinity, constraint" in out
    for engine in lab.engines:
        assert f" {engine.name}: 127.0.0.1:" in out
    assert out.count("└ Status: Healthy") == 3
    assert out.count("└ Reserved CPUs: 0 / ") == 3
    assert out.count("└ ServerVersion: 20.10") == 3
    cpus = sum(e.client().info()["NCPU"] for e in lab.engines)
    assert f"CPUs: {cpus}" in out


def test_hello_world_lands_on_three_different_nodes(cli, lab):
    for _ in range(3):
        out = cli.out("run", "hello-world")
        assert "Hello from Docker!" in out
    names = cli.out("ps", "-a", "--format", "{{.Names}}").split()
    assert len(names) == 3
    nodes = {n.split("/")[0] for n in names}
    assert nodes == {e.name for e in lab.engines}
    # each engine really holds exactly one of them
    for engine in lab.engines:
        assert len(engine.client().containers.list(all=True)) == 1


def test_exit_code_and_streams_propagate(cli):
    proc = cli.run("run", "--rm", "busybox", "sh", "-c", "echo to-out; echo to-err >&2; exit 3", check=False)
    assert proc.returncode == 3
    assert proc.stdout == "to-out\n"
    assert "to-err" in proc.stderr


def test_stdin_is_piped_to_the_container(cli):
    proc = cli.run("run", "-i", "--rm", "busybox", "sh", "-c", "tr a-z A-Z", input="hello swarm\n")
    assert proc.stdout == "HELLO SWARM\n"


def test_detached_run_with_name_port_env_limits_and_labels(cli, lab):
    cid = cli.out("run", "-d", "--name", "web", "-p", "18081:80", "-e", "GREETING=hi", "-m", "64m",
                  "--cpus", "0.5", "--label", "tier=front", "busybox", "sh", "-c",
                  'echo "$GREETING" > /var/www/index.html && exec httpd -f -p 80 -h /var/www').strip()
    assert len(cid) == 64
    ps = cli.out("ps", "--format", "{{.Names}} {{.Ports}}")
    line = [l for l in ps.splitlines() if l.split()[0].endswith("/web")]
    assert line, ps
    node_name = line[0].split("/")[0]
    engine = next(e for e in lab.engines if e.name == node_name)
    assert f"{engine.host_ip}:18081->80/tcp" in line[0]
    body = _fetch(f"http://{engine.host_ip}:18081/")
    assert body == b"hi\n"
    inspect = engine.client().api.inspect_container("web")
    assert inspect["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert inspect["HostConfig"]["NanoCpus"] == 500_000_000
    assert inspect["Config"]["Labels"]["tier"] == "front"
    assert "└ Reserved Memory: 64 MiB" in cli.out("info")
    conflict = cli.run("run", "-d", "--name", "web", "busybox", "true", check=False)
    assert conflict.returncode == 125
    assert "is already in use" in conflict.stderr
    assert cli.out("port", "web").strip() == f"80/tcp -> {engine.host_ip}:18081"
    assert cli.out("ps", "--filter", "publish=18081", "--format", "{{.Names}}").strip() == f"{node_name}/web"
    assert cli.out("ps", "--filter", "publish=18082", "-q").strip() == ""
    bad = cli.run("ps", "--filter", "colour=red", check=False)
    assert bad.returncode == 1 and "invalid filter" in bad.stderr


def test_lifecycle_by_name_prefix_and_node_name(cli):
    cid = cli.out("run", "-d", "--name", "life", "busybox", "sleep", "300").strip()
    node = cli.out("inspect", "--format", "{{.Node.Name}}", "life").strip()
    assert cli.out("inspect", "--format", "{{.State.Running}}", cid[:8]).strip() == "true"
    assert cli.out("inspect", "--format", "{{.Id}}", f"{node}/life").strip() == cid
    cli.run("pause", "life")
    assert cli.out("inspect", "--format", "{{.State.Paused}}", "life").strip() == "true"
    assert "(Paused)" in cli.out("ps", "--filter", "name=life", "--format", "{{.Status}}")
    cli.run("unpause", "life")
    assert "sleep" in cli.out("top", "life")
    cli.run("stop", "-t", "1", "life")
    assert cli.out("inspect", "--format", "{{.State.Running}}", "life").strip() == "false"
    assert cli.out("ps", "--filter", "name=life", "-q").strip() == ""
    cli.run("start", "life")
    cli.run("restart", "-t", "1", "life")
    cli.run("rename", "life", "life2")
    assert cli.out("ps", "--filter", f"node={node}", "--format", "{{.Names}}").split() == [f"{node}/life2"]
    cli.run("kill", "life2")
    assert cli.out("wait", "life2").strip() == "137"
    cli.run("rm", "life2")
    missing = cli.run("container", "inspect", "life2", check=False)
    assert missing.returncode == 1 and "No such container: life2" in missing.stderr


def test_logs_follow_and_tail(cli):
    cli.run("run", "-d", "--name", "talker", "busybox", "sh", "-c",
            "for i in 1 2 3 4 5; do echo line$i; done; sleep 1; echo late; sleep 300")
    time.sleep(0.5)
    assert cli.out("logs", "--tail", "2", "talker").split() == ["line4", "line5"]
    proc = subprocess.Popen(["docker", "logs", "-f", "talker"], env=cli.env, stdout=subprocess.PIPE, text=True)
    try:
        seen = []
        deadline = time.monotonic() + 20
        while "late" not in seen and time.monotonic() < deadline:
            seen.append(proc.stdout.readline().strip())
        assert seen[:5] == ["line1", "line2", "line3", "line4", "line5"] and "late" in seen
    finally:
        proc.kill()
        proc.wait()


def test_exec_with_exit_code_and_tty(cli):
    cli.run("run", "-d", "--name", "box", "busybox", "sleep", "300")
    proc = cli.run("exec", "box", "sh", "-c", "echo in-box; exit 4", check=False)
    assert proc.returncode == 4 and proc.stdout == "in-box\n"
    out, code = _interactive(cli, ["exec", "-it", "box", "sh"], b"echo $((6*7))\nexit 9\n")
    assert b"42" in out and code == 9


def test_interactive_run_with_tty(cli):
    out, code = _interactive(cli, ["run", "-it", "--rm", "busybox", "sh"], b"echo tty-$((40+2))\nexit 5\n")
    assert b"tty-42" in out
    assert code == 5


def test_filter_by_node_and_unknown_container_errors(cli, lab):
    for engine in lab.engines:
        cli.run("run", "-d", "-e", f"constraint:node=={engine.name}", "--name", f"on-{engine.name}",
                "busybox", "sleep", "300")
    for engine in lab.engines:
        names = cli.out("ps", "--filter", f"node={engine.name}", "--format", "{{.Names}}").split()
        assert names == [f"{engine.name}/on-{engine.name}"]
    proc = cli.run("stop", "no-such-thing", check=False)
    assert proc.returncode == 1 and "No such container: no-such-thing" in proc.stderr


def test_sdk_run_list_get_logs(sdk, lab):
    out = sdk.containers.run("busybox", ["echo", "via-sdk"], remove=True)
    assert out == b"via-sdk\n"
    c = sdk.containers.run("busybox", ["sleep", "300"], detach=True, name="sdkbox")
    assert sdk.containers.get("sdkbox").id == c.id
    assert [x.id for x in sdk.containers.list(filters={"name": "sdkbox"})] == [c.id]
    code, output = c.exec_run(["sh", "-c", "echo from-exec"])
    assert code == 0 and output == b"from-exec\n"
    c.remove(force=True)
    with pytest.raises(Exception) as err:
        sdk.containers.get("sdkbox")
    assert "No such container" in str(err.value)


# -- helpers -------------------------------------------------------------------------------------

def _fetch(url: str, timeout: float = 10) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _interactive(cli, args: list[str], keys: bytes, timeout: float = 30) -> tuple[bytes, int]:
    """Runs the docker CLI on a pseudo-terminal, types `keys`, returns (output, exit code)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe("docker", ["docker", *args], cli.env)
    out = b""
    sent = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if not sent and (b"#" in out or time.monotonic() > deadline - timeout + 3):
                os.write(fd, keys)
                sent = True
        _, status = os.waitpid(pid, 0)
        return out, os.waitstatus_to_exitcode(status)
    finally:
        os.close(fd)


def test_volumes_named_and_bind(cli, lab, tmp_path):
    host_dir = tmp_path / "bind"
    host_dir.mkdir()
    (host_dir / "in.txt").write_text("from the host\n")
    out = cli.out("run", "--rm", "-v", f"{host_dir}:/mnt", "-v", "walk-data:/data", "-e", "constraint:node==node2",
                  "busybox", "sh", "-c", "cat /mnt/in.txt; echo kept > /data/f")
    assert out == "from the host\n"
    assert cli.out("run", "--rm", "-v", "walk-data:/data", "-e", "constraint:node==node2", "busybox",
                   "cat", "/data/f") == "kept\n"
    assert lab.engines[1].client().volumes.get("walk-data")
    lab.engines[1].client().volumes.get("walk-data").remove()
