"""Classic swarm's node-local networks through the real docker CLIs (28.x and Debian's 20.10):
`node/name` wherever the engine takes a network name, `network ls` filters (classic's `node`
too), ambiguous names, and bad filters refused in the engine's own words."""
from __future__ import annotations

import json
import secrets
import subprocess
import textwrap

import pytest

pytestmark = pytest.mark.usefixtures("clean_containers")


def _engine_cli(cli, engine):
    """The same docker CLI pointed at one lab engine directly, to compare the engine's own words."""
    return type(cli)(engine.url, cli.env["DOCKER_CONFIG"], cli.binary)


def _networks_on(engine, name: str) -> list:
    return engine.client().networks.list(names=[name])


@pytest.fixture
def node_net(cli, lab):
    """A network made on the second node only, as `node/name`; removed afterwards."""
    name = f"cn{secrets.token_hex(3)}"
    node = lab.engines[1].name
    cli.run("network", "create", f"{node}/{name}")
    yield node, name
    for engine in lab.engines:
        engine.remove_all_containers()
        for net in _networks_on(engine, name):
            net.remove()


def test_run_on_a_node_network_lands_on_its_node_with_the_plain_name(any_cli, lab, node_net):
    node, name = node_net
    any_cli.run("run", "-d", "--name", f"{name}-web", "--net", f"{node}/{name}", "--network-alias", "web",
                "busybox", "sleep", "300")
    ctr = lab.engines[1].client().containers.get(f"{name}-web")
    assert list(ctr.attrs["NetworkSettings"]["Networks"]) == [name]
    assert "web" in ctr.attrs["NetworkSettings"]["Networks"][name]["Aliases"]
    assert any_cli.out("ps", "--format", "{{.Names}}", "--filter", f"network={node}/{name}").split() == \
        [f"{node}/{name}-web"]
    net_id = _networks_on(lab.engines[1], name)[0].id
    for ref in (name, net_id[:12]):
        assert f"{node}/{name}-web" in any_cli.out("ps", "--format", "{{.Names}}", "--filter", f"network={ref}")
    assert not any_cli.out("ps", "-q", "--filter", f"network={lab.engines[0].name}/{name}").strip()


def test_a_node_network_of_another_node_cannot_hold_the_container(any_cli, lab, node_net):
    node, name = node_net
    other = lab.engines[2].name
    proc = any_cli.run("run", "-d", "-e", f"constraint:node=={other}", "--net", f"{node}/{name}",
                       "busybox", "sleep", "300", check=False)
    assert proc.returncode != 0
    assert "Unable to find a node" in proc.stderr or "unable to find a node" in proc.stderr, proc.stderr
    assert not any_cli.out("ps", "-aq").strip()


def test_connect_and_disconnect_by_node_name(any_cli, lab, node_net):
    node, name = node_net
    any_cli.run("run", "-d", "--name", f"{name}-db", "-e", f"constraint:node=={node}", "busybox", "sleep", "300")
    any_cli.run("network", "connect", "--alias", "database", f"{node}/{name}", f"{name}-db")
    nets = lab.engines[1].client().containers.get(f"{name}-db").attrs["NetworkSettings"]["Networks"]
    assert "database" in nets[name]["Aliases"]
    assert f"{node}/{name}-db" in any_cli.out("ps", "--format", "{{.Names}}", "--filter", f"network={node}/{name}")
    any_cli.run("network", "disconnect", f"{node}/{name}", f"{name}-db")
    assert name not in lab.engines[1].client().containers.get(f"{name}-db").attrs["NetworkSettings"]["Networks"]
    proc = any_cli.run("network", "connect", f"{lab.engines[0].name}/bridge", f"{name}-db", check=False)
    assert proc.returncode != 0 and f"not found on node {node}" in proc.stderr


def test_network_ls_filters_as_classic_and_the_engine(any_cli, lab, node_net):
    node, name = node_net
    ls = lambda *f: any_cli.out("network", "ls", "--format", "{{.Name}}", *[a for x in f for a in ("--filter", x)]).split()
    assert ls(f"node={node}", f"name={name}") == [f"{node}/{name}"]
    assert ls(f"node={lab.engines[0].name}", f"name={name}") == []
    assert ls(f"name={node}/{name}") == [f"{node}/{name}"]
    assert f"{node}/{name}" in ls("type=custom") and f"{node}/bridge" not in ls("type=custom")
    assert f"{node}/bridge" in ls("type=builtin") and f"{node}/{name}" not in ls("type=builtin")
    assert f"{node}/{name}" in ls("driver=bridge", "scope=local", "dangling=true")
    net_id = _networks_on(lab.engines[1], name)[0].id
    assert ls(f"id={net_id[:10]}") == [f"{node}/{name}"]
    engine = _engine_cli(any_cli, lab.engines[0])
    for bad in ("type=foo", "dangling=maybe", "nosuchfilter=1"):
        ours = any_cli.run("network", "ls", "--filter", bad, check=False)
        theirs = engine.run("network", "ls", "--filter", bad, check=False)
        assert ours.returncode == theirs.returncode == 1
        assert ours.stderr == theirs.stderr and ours.stderr.startswith("Error response from daemon: ")


def test_a_name_several_nodes_hold_is_ambiguous_unless_made_cluster_wide(any_cli, lab, node_net):
    node, name = node_net
    first = lab.engines[0].name
    any_cli.run("network", "create", f"{first}/{name}")
    proc = any_cli.run("network", "inspect", name, check=False)
    assert proc.returncode == 1
    assert (f"network {name} is ambiguous (2 matches found on name): {first}/{name}, {node}/{name}"
            in proc.stderr), proc.stderr
    assert json.loads(any_cli.out("network", "inspect", f"{node}/{name}"))[0]["Node"]["Name"] == node
    proc = any_cli.run("network", "rm", name, check=False)
    assert proc.returncode == 1 and "is ambiguous" in proc.stderr
    assert _networks_on(lab.engines[0], name) and _networks_on(lab.engines[1], name)

    shared = f"{name}-all"
    any_cli.run("network", "create", shared)      # a plain name: one network, on every node
    try:
        doc = json.loads(any_cli.out("network", "inspect", shared))[0]
        assert doc["Name"] == shared
        any_cli.run("run", "-d", "--net", shared, "busybox", "sleep", "300")
    finally:
        any_cli.run("rm", "-f", *any_cli.out("ps", "-aq").split(), check=False)
        any_cli.run("network", "rm", shared)
    assert not any(_networks_on(e, shared) for e in lab.engines)


def test_engine_errors_keep_the_engines_words(any_cli, lab, node_net):
    node, name = node_net
    any_cli.run("run", "-d", "--net", f"{node}/{name}", "busybox", "sleep", "300")
    proc = any_cli.run("network", "rm", f"{node}/{name}", "nosuch", check=False)
    assert proc.returncode == 1
    assert "has active endpoints" in proc.stderr and '{"message"' not in proc.stderr, proc.stderr
    # the missing one is worded as the engine's answer makes this CLI word it
    theirs = _engine_cli(any_cli, lab.engines[0]).run("network", "rm", "nosuch", check=False).stderr
    assert theirs.strip() and theirs.strip() in proc.stderr


def test_volumes_by_node_name_and_filters(any_cli, lab):
    name = f"cv{secrets.token_hex(3)}"
    node = lab.engines[2].name
    any_cli.run("volume", "create", f"{node}/{name}")
    try:
        vols = lambda *f: any_cli.out("volume", "ls", "--format", "{{.Name}}", *[a for x in f for a in ("--filter", x)]).split()
        assert vols(f"name={node}/{name}") == [f"{node}/{name}"]
        assert vols(f"node={node}", f"name={name}") == [f"{node}/{name}"]
        assert vols(f"node={lab.engines[0].name}", f"name={name}") == []
        assert any_cli.out("volume", "inspect", "--format", "{{.Name}}", f"{node}/{name}").strip() == f"{node}/{name}"
        engine = _engine_cli(any_cli, lab.engines[0])
        for bad in ("dangling=maybe", "nosuchfilter=1"):
            ours = any_cli.run("volume", "ls", "--filter", bad, check=False)
            theirs = engine.run("volume", "ls", "--filter", bad, check=False)
            assert ours.returncode == theirs.returncode == 1 and ours.stderr == theirs.stderr
    finally:
        any_cli.run("volume", "rm", f"{node}/{name}")
    assert not [v for v in lab.engines[2].client().volumes.list() if v.name == name]


COMPOSE = textwrap.dedent("""\
    version: "2.4"
    services:
      app:
        image: busybox
        command: sleep 300
        networks:
          pinned:
            aliases: [appalias]
    networks:
      pinned:
        external:
          name: {network}
    """)


def test_compose_service_on_a_node_network(cli, lab, node_net, tmp_path):
    node, name = node_net
    (tmp_path / "docker-compose.yml").write_text(COMPOSE.format(network=f"{node}/{name}"))
    env = {k: v for k, v in cli.env.items() if k != "DOCKER_CONFIG"}
    up = subprocess.run(["docker-compose", "-p", name, "up", "-d"], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    ctr = lab.engines[1].client().containers.get(f"{name}_app_1")
    assert "appalias" in ctr.attrs["NetworkSettings"]["Networks"][name]["Aliases"]
    down = subprocess.run(["docker-compose", "-p", name, "down"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert _networks_on(lab.engines[1], name)     # external: compose leaves it
