"""Classic swarm's scheduling behaviours through the real docker CLIs (28.x and Debian's 20.10):
the shell-escaped `\\!=`, the no-fit error in classic's words, host ports held by stopped and
host-network containers, and `--cpu-shares` as classic's CPUs."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("clean_containers")

HEADER = "docker: Error response from daemon: Unable to find a node that satisfies the following conditions "


def _fails(cli, *args: str) -> list[str]:
    proc = cli.run("run", *args, check=False)
    assert proc.returncode == 125, proc.stdout + proc.stderr
    return proc.stderr.splitlines()


def _conditions(lines: list[str]) -> list[str]:
    """The `[…]` lines after classic's header line (the 20.10 CLI ends the last with a period)."""
    at = lines.index(HEADER)
    out = []
    for line in lines[at + 1:]:
        if not line.startswith("["):
            break
        out.append(line.rstrip("."))
    return out


def test_escaped_not_equal_in_env_and_in_the_label(any_cli, lab):
    names = [e.name for e in lab.engines]
    any_cli.out("run", "-d", "--name", "esc-env", "-e", f"constraint:node\\!={names[0]}", "busybox", "sleep", "300")
    assert any_cli.out("inspect", "--format", "{{.Node.Name}}", "esc-env").strip() != names[0]
    rules = json.dumps([f"node\\!={names[0]}", f"node\\!={names[1]}"]).replace("\\\\", "\\")
    any_cli.out("run", "-d", "--name", "esc-label", "--label", f"com.docker.swarm.constraints={rules}",
                "-e", "affinity:container\\!=esc-env", "busybox", "sleep", "300")
    assert any_cli.out("inspect", "--format", "{{.Node.Name}}", "esc-label").strip() == names[2]
    labels = json.loads(any_cli.out("inspect", "--format", "{{json .Config.Labels}}", "esc-label"))
    assert json.loads(labels["com.docker.swarm.constraints"]) == [f"node!={names[0]}", f"node!={names[1]}"]
    assert json.loads(labels["com.docker.swarm.affinities"]) == ["container!=esc-env"]


def test_no_fit_error_reads_as_classic(any_cli):
    # as classic: every filter applied up to the one that failed, containerslots always among them
    lines = _fails(any_cli, "-e", "constraint:node==nowhere", "busybox", "true")
    assert _conditions(lines) == ["[available container slots]", "[node==nowhere]"]
    lines = _fails(any_cli, "-e", "affinity:container==no-such", "-e", "constraint:node==~nowhere", "busybox", "true")
    assert _conditions(lines) == ["[available container slots]", "[container==no-such (soft=false)]"]


def test_third_published_port_on_two_nodes_is_refused_though_the_first_two_exited(any_cli, lab):
    """classic's own test: two `-p 80:80` that exit at once still hold the port on their nodes."""
    for i in range(len(lab.engines)):
        assert any_cli.out("run", "--name", f"port-{i}", "-p", "18170:80", "busybox", "echo", str(i)).strip() == str(i)
    nodes = {any_cli.out("inspect", "--format", "{{.Node.Name}}", f"port-{i}").strip() for i in range(len(lab.engines))}
    assert nodes == {e.name for e in lab.engines}
    assert _conditions(_fails(any_cli, "-p", "18170:80", "busybox", "true")) == ["[port 18170 (Bridge mode)]"]
    any_cli.out("rm", "port-0")         # a removed container gives its port back
    any_cli.out("run", "-d", "--name", "port-again", "-p", "18170:80", "busybox", "sleep", "300")


def test_host_network_containers_hold_their_exposed_ports(any_cli, lab):
    for i in range(len(lab.engines)):
        any_cli.out("run", "-d", "--name", f"hostnet-{i}", "--net", "host", "--expose", "18171",
                    "busybox", "sleep", "300")
    assert _conditions(_fails(any_cli, "--net", "host", "--expose", "18171", "busybox", "true")) \
        == ["[port 18171/tcp (Host mode)]"]
    # a bridge container publishing that port conflicts too: the host's port is taken
    assert _conditions(_fails(any_cli, "-p", "18171:80", "busybox", "true")) == ["[port 18171 (Bridge mode)]"]


def test_cpu_shares_are_cpus_as_classic(any_cli, lab):
    ncpu = lab.engines[0].client().info()["NCPU"]
    out = any_cli.out("run", "--name", "one-cpu", "--cpu-shares", "1", "busybox", "sh", "-c", "echo ran")
    assert out.strip() == "ran"                    # runc refuses a share of 1; the node's share for 1 CPU runs
    shares = any_cli.out("inspect", "--format", "{{.HostConfig.CpuShares}}", "one-cpu").strip()
    assert int(shares) == -(-1024 // ncpu)
    lines = _fails(any_cli, "--cpu-shares", str(ncpu + 1), "busybox", "true")
    assert lines[0].startswith("docker: Error response from daemon: no resources available to schedule container")
    info = any_cli.out("info")
    assert "Reserved CPUs: 1 / " in info
