"""Classic swarm's image behaviours across nodes, through the real docker CLIs (28.x with its legacy
builder, Debian's 20.10) and docker-compose v1: build on one node chosen by the scheduler, runs of
that image landing where it is, import on every node, tag/rmi on every holder, the node filter."""
from __future__ import annotations

import json
import subprocess
import tarfile
import textwrap
import urllib.error
import urllib.request

import pytest

from tests.integration.conftest import DockerCLI

pytestmark = pytest.mark.usefixtures("clean_containers")

DOCKERFILE = textwrap.dedent("""\
    FROM busybox
    ENV GREETING=hello
    COPY note.txt /note.txt
    RUN echo "built $GREETING" > /built.txt
    """)


def _classic_builder(cli: DockerCLI) -> DockerCLI:
    """The same CLI with BuildKit off (the 28.x CLI then uses the classic builder, as 20.10 does)."""
    out = DockerCLI(cli.env["DOCKER_HOST"], cli.env["DOCKER_CONFIG"], cli.binary)
    out.env["DOCKER_BUILDKIT"] = "0"
    return out


def _context(tmp_path, dockerfile: str = DOCKERFILE):
    (tmp_path / "Dockerfile").write_text(dockerfile)
    (tmp_path / "note.txt").write_text("a note\n")
    return str(tmp_path)


def _holders(lab, ref: str) -> list[str]:
    return [e.name for e in lab.engines if any(ref in i.tags for i in e.client().images.list())]


def _remove_everywhere(lab, *refs: str) -> None:
    for engine in lab.engines:
        for ref in refs:
            try:
                engine.client().images.remove(ref, force=True)
            except Exception:       # not on this engine: nothing to clean
                pass


def test_build_runs_on_the_constrained_node_and_runs_of_its_image_land_there(any_cli, lab, tmp_path):
    cli, node = _classic_builder(any_cli), lab.engines[1].name
    ref = f"swarmd/built-{any_cli.binary.rsplit('/', 1)[-1]}-{id(any_cli) % 1000}:1"
    try:
        out = cli.out("build", "--build-arg", f"constraint:node=={node}", "--build-arg", "UNUSED=1",
                      "-t", ref, _context(tmp_path))
        assert f"{node}: Step 1/4 : FROM busybox" in out and f"{node}: Successfully tagged {ref}" in out
        assert _holders(lab, ref) == [node]
        assert json.loads(cli.out("image", "inspect", ref))[0]["Nodes"] == [node]
        for i in range(3):          # spread would put the second and third elsewhere
            assert cli.out("run", "--name", f"built-run-{i}", ref, "cat", "/built.txt").strip() == "built hello"
        names = cli.out("ps", "-a", "--format", "{{.Names}}").split()
        assert sorted(n for n in names if "built-run-" in n) == [f"{node}/built-run-{i}" for i in range(3)]
        listed = cli.out("images", "--filter", f"node={node}", "--format", "{{.Repository}}:{{.Tag}}").split()
        assert ref in listed and "busybox:latest" in listed
        other = lab.engines[0].name
        assert ref not in cli.out("images", "--filter", f"node={other}", "--format", "{{.Repository}}:{{.Tag}}")
    finally:
        lab.engines[1].client().containers.prune()
        _remove_everywhere(lab, ref)


def test_quiet_and_failing_builds(any_cli, lab, tmp_path):
    cli, node = _classic_builder(any_cli), lab.engines[2].name
    ref = "swarmd/quiet:1"
    try:
        image_id = cli.out("build", "-q", "--build-arg", f"constraint:node=={node}", "-t", ref,
                           _context(tmp_path)).strip()
        assert image_id == lab.engines[2].client().images.get(ref).id     # bare: scripts read it
        failed = cli.run("build", "--force-rm", "-", input="FROM busybox\nRUN exit 3\n", check=False)
        assert failed.returncode != 0 and "returned a non-zero code: 3" in failed.stdout + failed.stderr
        nowhere = cli.run("build", "--build-arg", "constraint:node==no-such-node", _context(tmp_path), check=False)
        assert nowhere.returncode != 0 and "node==no-such-node" in nowhere.stderr
    finally:
        _remove_everywhere(lab, ref)


def test_buildkit_requests_name_the_classic_builder(swarm):
    for path in ("/v1.41/build?version=2", "/v1.41/session", "/grpc"):
        req = urllib.request.Request(f"http://{swarm.manager_addrs[0]}{path}", data=b"", method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=30)
        assert err.value.code == 501 and "DOCKER_BUILDKIT=0" in json.loads(err.value.read())["message"]


def test_import_on_every_node_then_tag_and_rmi_on_every_holder(any_cli, lab, tmp_path):
    archive = tmp_path / "rootfs.tar"
    (tmp_path / "hello.txt").write_text("imported\n")
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "hello.txt", arcname="hello.txt")
    ref, tagged = "swarmd/imported:1", "swarmd/imported-tag:2"
    try:
        out = any_cli.out("import", "-c", "ENV FROM_IMPORT=yes", "-m", "from a tar", str(archive), ref)
        assert sorted(line.split(":", 1)[0] for line in out.splitlines()) == sorted(e.name for e in lab.engines)
        assert sorted(_holders(lab, ref)) == sorted(e.name for e in lab.engines)
        doc = lab.engines[0].client().images.get(ref).attrs
        assert doc["Comment"] == "from a tar" and "FROM_IMPORT=yes" in doc["Config"]["Env"]

        any_cli.run("tag", ref, tagged)
        assert sorted(_holders(lab, tagged)) == sorted(e.name for e in lab.engines)
        missing = any_cli.run("tag", "swarmd/never-made:1", "swarmd/x:1", check=False)
        assert missing.returncode != 0 and "No such image: swarmd/never-made:1" in missing.stderr

        any_cli.run("rmi", tagged)
        assert _holders(lab, tagged) == [] and len(_holders(lab, ref)) == 3
        holder = lab.engines[0].name         # a container holds the image on one node only
        any_cli.run("create", "--name", "imported-user", "-e", f"constraint:node=={holder}", ref, "/hello.txt")
        refused = any_cli.run("rmi", ref, check=False)
        assert refused.returncode != 0 and f"{holder}: conflict" in refused.stderr
        assert _holders(lab, ref) == [holder]   # the other nodes removed theirs, as classic did
    finally:
        lab.engines[0].client().containers.prune()
        _remove_everywhere(lab, ref, tagged)


def test_saving_images_no_single_node_holds(cli, lab, tmp_path):
    node = lab.engines[0].name
    ref = "swarmd/only-on-one:1"
    try:
        _classic_builder(cli).out("build", "-q", "--build-arg", f"constraint:node=={node}", "-t", ref,
                                  _context(tmp_path))
        cli.run("save", "-o", str(tmp_path / "both.tar"), ref, "busybox")     # node1 holds both
        assert tarfile.open(tmp_path / "both.tar").getnames()
        lab.engines[1].client().images.get("busybox").tag("swarmd/elsewhere:1")
        try:
            failed = cli.run("save", "-o", str(tmp_path / "x.tar"), ref, "swarmd/elsewhere:1", check=False)
            assert failed.returncode != 0
            assert "Unable to find a healthy engine containing all images: [" in failed.stderr
        finally:
            lab.engines[1].client().images.remove("swarmd/elsewhere:1")
    finally:
        _remove_everywhere(lab, ref)


def test_compose_build_then_up_runs_on_the_building_node(cli, lab, tmp_path):
    node = lab.engines[2].name
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text(
        'FROM busybox\nARG MSG=none\nRUN echo "$MSG" > /msg.txt\nCMD ["sh", "-c", "cat /msg.txt; sleep 300"]\n')
    (tmp_path / "docker-compose.yml").write_text(textwrap.dedent(f"""\
        version: "2.4"
        services:
          app:
            build:
              context: ./app
              args:
                - MSG=composed
                - constraint:node=={node}
            image: swarmd/composed:1
        """))
    env = {k: v for k, v in cli.env.items() if k != "DOCKER_CONFIG"}

    def compose(*args):
        proc = subprocess.run(["docker-compose", "-p", "swarmdbuild", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"docker-compose {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout + proc.stderr

    try:
        assert f"{node}: Successfully tagged swarmd/composed:1" in compose("build")
        assert _holders(lab, "swarmd/composed:1") == [node]
        compose("up", "-d")
        assert cli.out("inspect", "--format", "{{.Node.Name}}", "swarmdbuild_app_1").strip() == node
        assert "composed" in cli.out("logs", "swarmdbuild_app_1")
    finally:
        compose("down")
        _remove_everywhere(lab, "swarmd/composed:1")
