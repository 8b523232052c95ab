"""Container listing and lookup as classic swarm (and the engine) answered them, through both CLIs:
`ps -l`/`ps -n`, the 64-hex image refusal, classic's `com.docker.swarm.id`, filters, and calls on
a container whose node is unhealthy."""
from __future__ import annotations

import json
import re
import uuid

import pytest

from swarmd.localcluster.processes import wait_until
from swarmd.localcluster.swarm import SwarmCluster
from tests.integration.conftest import DockerCLI, docker_cli_binary, own_cluster, push_to_lab_registry

pytestmark = pytest.mark.usefixtures("clean_containers")

SWARM_ID = "com.docker.swarm.id"
HEX64 = "0123456789abcdef" * 4


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _swarm_id(cli: DockerCLI, ref: str) -> str:
    return cli.out("inspect", "-f", f'{{{{index .Config.Labels "{SWARM_ID}"}}}}', ref).strip()


def test_ps_last_and_limit_list_created_containers_too(any_cli):
    t = _tag()
    any_cli.run("run", "-d", "--name", f"up-{t}", "busybox", "sleep", "300")
    any_cli.run("create", "--name", f"made-{t}", "busybox", "true")
    last = any_cli.out("ps", "-l", "--format", "{{.Names}} {{.Status}}").splitlines()
    assert len(last) == 1 and last[0].endswith(f"/made-{t} Created"), last
    two = any_cli.out("ps", "-n", "2", "--format", "{{.Names}}").split()
    assert [n.split("/")[1] for n in two] == [f"made-{t}", f"up-{t}"]
    running = any_cli.out("ps", "--format", "{{.Names}}").split()     # without a limit: running only
    assert [n.split("/")[1] for n in running] == [f"up-{t}"]


def test_a_64_hex_image_is_refused_in_the_engines_words(any_cli):
    for verb in ("run", "create"):
        proc = any_cli.run(verb, HEX64, check=False)
        assert proc.returncode != 0
        assert f"invalid repository name ({HEX64}), cannot specify 64-byte hexadecimal strings" in proc.stderr
        assert "No such image" not in proc.stderr
    assert any_cli.out("ps", "-aq") == ""


def test_every_container_carries_a_swarm_id_that_any_call_takes(any_cli):
    t = _tag()
    any_cli.run("run", "-d", "--name", f"sid-{t}", "busybox", "sh", "-c", "echo hello-sid; sleep 300")
    sid = _swarm_id(any_cli, f"sid-{t}")
    assert re.fullmatch(r"[0-9a-f]{64}", sid), sid
    cid = any_cli.out("inspect", "-f", "{{.Id}}", f"sid-{t}").strip()
    assert sid != cid
    for ref in (sid, sid[:12]):
        assert any_cli.out("inspect", "-f", "{{.Id}}", ref).strip() == cid
    assert "hello-sid" in any_cli.out("logs", sid)
    assert any_cli.out("exec", sid[:12], "echo", "in-exec").strip() == "in-exec"
    listed = any_cli.out("ps", "--filter", f"label={SWARM_ID}={sid}", "--format", "{{.ID}} {{.Names}}").split()
    assert listed == [cid[:12], listed[1]] and listed[1].endswith(f"/sid-{t}")
    any_cli.run("stop", "-t", "1", sid)
    assert any_cli.out("inspect", "-f", "{{.State.Running}}", f"sid-{t}").strip() == "false"
    any_cli.run("rm", sid[:12])
    assert any_cli.out("ps", "-aq") == ""


def test_a_swarm_id_given_by_the_client_is_kept_and_new_ones_differ(cli):
    t = _tag()
    given = uuid.uuid4().hex * 2
    cli.run("create", "--name", f"given-{t}", "--label", f"{SWARM_ID}={given}", "busybox", "true")
    assert _swarm_id(cli, f"given-{t}") == given
    assert cli.out("inspect", "-f", "{{.Name}}", given).strip() == f"/given-{t}"
    cli.run("create", "--name", f"other-{t}", "busybox", "true")
    cli.run("create", "--name", f"third-{t}", "busybox", "true")
    ids = {_swarm_id(cli, f"{n}-{t}") for n in ("given", "other", "third")}
    assert len(ids) == 3


def test_ancestor_and_since_filters_as_the_engine(any_cli, lab):
    t = _tag()
    for i in range(3):                       # created within the same second, mostly
        any_cli.run("run", "-d", "--name", f"f{i}-{t}", "busybox", "sleep", "300")
    names = lambda *args: sorted(n.split("/")[1] for n in any_cli.out("ps", *args, "--format", "{{.Names}}").split())
    mine = sorted(f"f{i}-{t}" for i in range(3))
    assert names("--filter", "ancestor=busybox:latest") == mine
    assert names("--filter", "ancestor=busybox") == mine
    image_id = lab.engines[0].client().images.get("busybox").id.removeprefix("sha256:")
    assert names("--filter", f"ancestor={image_id[:12]}") == mine
    assert names("--filter", "ancestor=hello-world") == []
    assert names("--filter", f"since=f0-{t}") == [f"f1-{t}", f"f2-{t}"]
    assert names("--filter", f"before=f2-{t}") == [f"f0-{t}", f"f1-{t}"]


# -- a node lost: its own cluster (heartbeat 1 s, TTL 3 s), as tests/integration/test_rescheduling.py

LOST = "node2"


@pytest.fixture(scope="module")
def cluster(lab, tmp_path_factory):
    with own_cluster(lab, tmp_path_factory.mktemp("classic-listing")) as c:
        yield c


def _node_status(cluster: SwarmCluster, node: str) -> str:
    status = cluster.info(0)["SystemStatus"]
    for i, (k, _) in enumerate(status):
        if k.strip() == node:
            return next(val for key, val in status[i + 1:] if key == "  └ Status")
    return ""


def test_calls_on_an_unhealthy_node_say_so_and_a_rescheduled_container_keeps_its_swarm_id(cluster, lab, tmp_path):
    t = _tag()
    lost_index = next(i for i, e in enumerate(lab.engines) if e.name == LOST)
    clis = [DockerCLI(cluster.docker_host, str(tmp_path / "cfg"), docker_cli_binary("28")),
            DockerCLI(cluster.docker_host, str(tmp_path / "cfg-2010"), docker_cli_binary("20.10"))]
    cli = clis[0]
    moved, stays = f"moved-{t}", f"stays-{t}"
    try:
        cli.run("run", "-d", "--name", moved, "-e", f"constraint:node==~{LOST}", "-e", "reschedule:on-node-failure",
                "busybox", "sleep", "600")
        cli.run("run", "-d", "--name", stays, "-e", f"constraint:node=={LOST}", "busybox", "sleep", "600")
        sid, old_id = _swarm_id(cli, moved), cli.out("inspect", "-f", "{{.Id}}", moved).strip()
        stays_sid = _swarm_id(cli, stays)

        cluster.agents[LOST].kill9()
        wait_until(lambda: _node_status(cluster, LOST) == "Unhealthy", 10, f"{LOST} unhealthy")
        def rescheduled_and_running():
            out = cli.run("inspect", "-f", "{{.Id}} {{.State.Running}}", sid, check=False).stdout.split()
            return out and out[0] != old_id and out[1] == "true"
        wait_until(rescheduled_and_running, 20, "the container rescheduled and running")
        doc = json.loads(cli.out("inspect", sid))[0]
        assert doc["Name"] == f"/{moved}" and doc["Node"]["Name"] != LOST
        assert doc["Config"]["Labels"][SWARM_ID] == sid
        assert cli.out("ps", "--filter", f"label={SWARM_ID}={sid}", "--format", "{{.Names}}").split() == \
            [f"{doc['Node']['Name']}/{moved}"]

        for c in clis:
            for args in (("logs", stays), ("start", stays), ("inspect", stays), ("rm", "-f", stays),
                         ("exec", stays, "true"), ("logs", stays_sid)):
                proc = c.run(*args, check=False)
                ref = args[-1] if args[0] != "exec" else stays
                assert proc.returncode != 0, args
                assert f"Container {ref} running on unhealthy node {LOST}" in proc.stderr, (args, proc.stderr)
                assert ".sock" not in proc.stderr and "unix://" not in proc.stderr, proc.stderr
    finally:
        if not cluster.agents[LOST].running():
            cluster.start_agent(lost_index)
        wait_until(lambda: _node_status(cluster, LOST) == "Healthy", 20, f"{LOST} healthy again")


def test_an_engine_that_does_not_answer_shows_no_agent_path(swarm, cli, lab):
    engine = lab.engines[0]
    cli.run("run", "-d", "--name", "quiet-engine", "-e", f"constraint:node=={engine.name}", "busybox", "sleep", "300")
    # an image the other nodes pull from the lab's registry, so that the one error shown is this
    # node's (a pull from the default registry fails on every node, and the CLI shows the first)
    ref = f"{lab.registry.address}/swarmd/quiet-engine:{uuid.uuid4().hex[:8]}"
    push_to_lab_registry(lab, ref)
    hidden = engine.socket_path.with_name("docker.sock.hidden")
    engine.socket_path.rename(hidden)            # the agent's new connections fail; its engine lives on
    try:
        for args in (("pull", ref), ("exec", "quiet-engine", "true"), ("logs", "quiet-engine")):
            proc = cli.run(*args, check=False)
            assert ".sock" not in proc.stdout + proc.stderr, (args, proc.stdout, proc.stderr)
            assert str(engine.root) not in proc.stdout + proc.stderr
        pulled = cli.run("pull", ref, check=False)
        assert pulled.returncode != 0
        assert f"{engine.name}: its Docker engine does not answer" in pulled.stdout + pulled.stderr
    finally:
        hidden.rename(engine.socket_path)
        for other in lab.engines[1:]:
            client = other.client()
            try:
                client.images.remove(ref)
            except Exception:      # not pulled there: nothing to remove
                pass
            client.close()
