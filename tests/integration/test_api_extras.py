"""Images, networks, volumes, events, stats, cp/commit/export/diff and unsupported endpoints."""
from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
import urllib.error
import urllib.request

import pytest

from tests.integration.conftest import push_to_lab_registry

pytestmark = pytest.mark.usefixtures("clean_containers")


def _api(swarm, method: str, path: str, body: bytes | None = None) -> tuple[int, dict | list | None]:
    req = urllib.request.Request(f"http://{swarm.manager_addrs[0]}{path}", data=body, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def test_images_are_listed_once_with_the_nodes_that_hold_them(cli, lab):
    rows = [line.split() for line in cli.out("images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}").splitlines()]
    repos = sorted(r[0] for r in rows)
    assert repos == ["busybox", "hello-world"]
    assert cli.out("images", "--format", "{{.Repository}}", "busybox").split() == ["busybox"]
    assert cli.out("images", "-q", "--filter", "reference=hello*").split() == \
        [lab.engines[0].client().images.get("hello-world").short_id.removeprefix("sha256:")]
    doc = json.loads(cli.out("image", "inspect", "busybox"))
    assert sorted(doc[0]["Nodes"]) == sorted(e.name for e in lab.engines)


def test_pull_through_the_manager_from_the_local_registry(cli, lab):
    ref = f"{lab.registry.address}/swarmd/pulled:1"
    image_id = push_to_lab_registry(lab, ref)
    out = cli.out("pull", ref)
    assert ref in out
    for engine in lab.engines:
        assert engine.client().images.get(ref).id == image_id
    cli.run("tag", ref, "swarmd/retagged:1")
    assert "swarmd/retagged" in cli.out("images", "--format", "{{.Repository}}")
    cli.run("rmi", "swarmd/retagged:1", ref)
    assert ref not in cli.out("images", "--format", "{{.Repository}}:{{.Tag}}")
    missing = cli.run("image", "inspect", "no-such-image:42", check=False)
    assert missing.returncode == 1 and "No such image" in missing.stderr
    failed = cli.run("pull", f"{lab.registry.address}/swarmd/never-pushed:1", check=False)
    assert failed.returncode == 1 and "never-pushed" in failed.stderr


def test_pull_on_one_node(swarm, lab):
    ref = f"{lab.registry.address}/swarmd/one-node"
    push_to_lab_registry(lab, f"{ref}:1")
    req = urllib.request.Request(f"http://{swarm.manager_addrs[0]}/v1.41/images/create?fromImage={ref}&tag=1"
                                 f"&node={lab.engines[1].name}", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=60) as r:
        lines = [json.loads(line) for line in r.read().splitlines() if line.strip()]
    assert lines and all(str(d.get("id") or d.get("status")).startswith(lab.engines[1].name) for d in lines)
    held = [e.name for e in lab.engines if any(f"{ref}:1" in i.tags for i in e.client().images.list())]
    assert held == [lab.engines[1].name]
    lab.engines[1].client().images.remove(f"{ref}:1")


def test_run_pulls_an_image_missing_on_the_chosen_node(cli, lab):
    ref = f"{lab.registry.address}/swarmd/only-in-registry:1"
    push_to_lab_registry(lab, ref)
    target = lab.engines[2].name
    out = cli.out("run", "--rm", "-e", f"constraint:node=={target}", ref, "echo", "pulled-and-ran")
    assert "pulled-and-ran" in out
    assert lab.engines[2].client().images.get(ref)


def test_networks_and_volumes_per_node(cli, lab):
    node = lab.engines[1].name
    cli.run("network", "create", f"{node}/backend")
    names = cli.out("network", "ls", "--format", "{{.Name}}").split()
    assert f"{node}/backend" in names and f"{lab.engines[0].name}/backend" not in names
    assert [n.name for n in lab.engines[1].client().networks.list(names=["backend"])] == ["backend"]
    doc = json.loads(cli.out("network", "inspect", f"{node}/backend"))
    assert doc[0]["Node"]["Name"] == node
    cli.run("network", "rm", f"{node}/backend")
    assert not lab.engines[1].client().networks.list(names=["backend"])

    cli.run("volume", "create", "shared-data")   # a plain name: on every node
    for engine in lab.engines:
        assert engine.client().volumes.get("shared-data")
    vols = cli.out("volume", "ls", "--format", "{{.Name}}").split()
    assert sorted(v for v in vols if v.endswith("/shared-data")) == sorted(f"{e.name}/shared-data" for e in lab.engines)
    cli.run("volume", "rm", "shared-data")
    for engine in lab.engines:
        assert not [v for v in engine.client().volumes.list() if v.name == "shared-data"]


def test_events_merge_all_nodes_and_carry_the_node(cli, lab):
    since = str(int(time.time()) - 1)
    for engine in lab.engines:
        cli.run("run", "--rm", "-e", f"constraint:node=={engine.name}", "busybox", "true")
    until = str(int(time.time()) + 1)
    out = cli.out("events", "--since", since, "--until", until, "--filter", "type=container",
                  "--filter", "event=start", "--format", "{{json .}}")
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert {e["Actor"]["Attributes"]["node.name"] for e in events} == {e.name for e in lab.engines}
    assert all(e["Action"] == "start" for e in events)


def test_live_events_stream(cli, swarm):
    proc = subprocess.Popen(["docker", "events", "--filter", "event=create", "--format", "{{.Actor.Attributes.name}}"],
                            env=cli.env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        cli.run("create", "--name", "evented", "busybox", "true")
        line = proc.stdout.readline().strip()
        assert line == "evented"
    finally:
        proc.kill()
        proc.wait()


def test_stats_cp_commit_export_diff(cli, lab, tmp_path):
    cli.run("run", "-d", "--name", "worker", "busybox", "sh", "-c", "echo data > /made-here; sleep 300")
    stats = json.loads(cli.out("stats", "--no-stream", "--format", "{{json .}}", "worker"))
    assert stats["Name"].endswith("worker") and "MemUsage" in stats
    src = tmp_path / "in.txt"
    src.write_text("copied in\n")
    cli.run("cp", str(src), "worker:/in.txt")
    assert cli.out("exec", "worker", "cat", "/in.txt") == "copied in\n"
    cli.run("cp", "worker:/made-here", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == "data\n"
    diff = cli.out("diff", "worker")
    assert "A /made-here" in diff and "A /in.txt" in diff
    exported = subprocess.run(["docker", "export", "worker"], env=cli.env, capture_output=True, timeout=60)
    assert exported.returncode == 0
    names = tarfile.open(fileobj=io.BytesIO(exported.stdout)).getnames()
    assert "made-here" in names and "in.txt" in names
    node = cli.out("inspect", "--format", "{{.Node.Name}}", "worker").strip()
    image_id = cli.out("commit", "worker", "swarmd/committed:1").strip()
    assert image_id.startswith("sha256:")
    engine = next(e for e in lab.engines if e.name == node)
    assert engine.client().images.get("swarmd/committed:1").id == image_id
    engine.client().images.remove("swarmd/committed:1", force=True)


def test_unsupported_and_unknown_endpoints_answer_clearly(swarm):
    status, doc = _api(swarm, "GET", "/v1.41/services")
    assert status == 501 and "not supported" in doc["message"]
    status, doc = _api(swarm, "GET", "/v1.41/secrets")
    assert status == 501
    status, doc = _api(swarm, "GET", "/v1.41/no/such/thing")
    assert status == 404 and doc == {"message": "page not found"}
    status, doc = _api(swarm, "POST", "/v1.41/containers/create", b"{not json")
    assert status == 400 and "invalid JSON" in doc["message"]
    status, doc = _api(swarm, "POST", "/v1.41/containers/create?name=../../etc", b'{"Image":"busybox"}')
    assert status == 400 and "Invalid container name" in doc["message"]


def test_sdk_images_networks_volumes_events(sdk, lab):
    assert {t for img in sdk.images.list() for t in img.tags} >= {"busybox:latest", "hello-world:latest"}
    ref = f"{lab.registry.address}/swarmd/sdk-pulled"
    image_id = push_to_lab_registry(lab, f"{ref}:1", image="hello-world")
    pulled = sdk.images.pull(ref, tag="1")
    assert pulled.id == image_id
    sdk.images.remove(f"{ref}:1")
    net = sdk.networks.create(f"{lab.engines[0].name}/sdknet")
    try:
        assert any(n.name == f"{lab.engines[0].name}/sdknet" for n in sdk.networks.list())
    finally:
        net.remove()
    vol = sdk.volumes.create(f"{lab.engines[0].name}/sdkvol")
    assert any(v.name == f"{lab.engines[0].name}/sdkvol" for v in sdk.volumes.list())
    vol.remove()
    since = int(time.time()) - 1
    sdk.containers.run("busybox", ["true"], remove=True, name="sdk-events")
    events = sdk.events(since=since, until=int(time.time()) + 1, decode=True,
                        filters={"type": "container", "container": "sdk-events"})
    actions = {e["Action"] for e in events}
    assert {"create", "start", "die"} <= actions


def test_system_df_save_load_and_login(cli, lab, tmp_path):
    cli.run("run", "-d", "--name", "df-box", "busybox", "sleep", "300")
    df = cli.out("system", "df", "-v")
    assert "df-box" in df and "busybox" in df
    archive = tmp_path / "hello.tar"
    cli.run("save", "-o", str(archive), "hello-world")
    assert tarfile.open(archive).getnames()
    cli.run("tag", "hello-world", "swarmd/to-save:1")
    cli.run("save", "-o", str(tmp_path / "tagged.tar"), "swarmd/to-save:1")
    cli.run("rmi", "swarmd/to-save:1")
    out = cli.out("load", "-i", str(tmp_path / "tagged.tar"))
    assert "swarmd/to-save:1" in out
    for engine in lab.engines:
        assert engine.client().images.get("swarmd/to-save:1")
    cli.run("rmi", "swarmd/to-save:1")
    login = cli.run("login", "-u", "someone", "--password-stdin", lab.registry.address, input="secret\n", check=False)
    assert login.returncode == 0 and "Login Succeeded" in login.stdout


def test_system_prune_across_nodes(cli, lab):
    for engine in lab.engines:
        cli.run("run", "-e", f"constraint:node=={engine.name}", "--name", f"prune-me-{engine.name}", "busybox", "true")
    out = cli.out("system", "prune", "-f")
    assert "Total reclaimed space" in out
    assert [n for n in cli.out("ps", "-a", "--format", "{{.Names}}").split() if "prune-me" in n] == []
    for engine in lab.engines:
        assert not engine.client().containers.list(all=True, filters={"name": "prune-me"})
