"""docker-compose v1 (Debian's docker-compose) against the manager: up, ps, scale, logs, recreate, down."""
from __future__ import annotations

import subprocess
import textwrap

import pytest

from swarmd.localcluster.processes import wait_until

pytestmark = pytest.mark.usefixtures("clean_containers")

COMPOSE = textwrap.dedent("""\
    version: "2.4"
    services:
      web:
        image: busybox
        command: sh -c "echo web-{generation}; exec httpd -f -p 80"
        ports:
          - "18090:80"
        labels:
          com.docker.swarm.constraints: '["node==node2"]'
      worker:
        image: busybox
        command: sh -c "echo worker-$$HOSTNAME; sleep 300"
    """)


def _compose(cli, project_dir, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in cli.env.items() if k != "DOCKER_CONFIG"}
    proc = subprocess.run(["docker-compose", "-p", "swarmdtest", *args], cwd=project_dir, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"docker-compose {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_compose_project_lifecycle(cli, lab, tmp_path):
    (tmp_path / "docker-compose.yml").write_text(COMPOSE.format(generation=1))
    try:
        _compose(cli, tmp_path, "up", "-d")
        ps = _compose(cli, tmp_path, "ps").stdout
        assert "swarmdtest_web_1" in ps and "swarmdtest_worker_1" in ps and ps.count(" Up ") == 2
        names = cli.out("ps", "--format", "{{.Names}}").split()
        assert "node2/swarmdtest_web_1" in names          # the constraint label held
        # the project network was created on the nodes, as a node-local bridge
        assert lab.engines[1].client().networks.list(names=["swarmdtest_default"])

        _compose(cli, tmp_path, "up", "-d", "--scale", "worker=3")
        workers = [n for n in cli.out("ps", "--format", "{{.Names}}").split() if "_worker_" in n]
        assert len(workers) == 3
        project = [n for n in cli.out("ps", "--format", "{{.Names}}").split() if "swarmdtest_" in n]
        per_node = [sum(n.startswith(f"{e.name}/") for n in project) for e in lab.engines]
        assert sorted(per_node) == [1, 1, 2]                   # 4 containers spread over 3 nodes

        logs = _compose(cli, tmp_path, "logs", "--no-color", "worker").stdout
        assert logs.count("worker-") == 3

        web_id = cli.out("inspect", "--format", "{{.Id}}", "swarmdtest_web_1").strip()
        (tmp_path / "docker-compose.yml").write_text(COMPOSE.format(generation=2))
        _compose(cli, tmp_path, "up", "-d", "--scale", "worker=3")
        new_id = cli.out("inspect", "--format", "{{.Id}}", "swarmdtest_web_1").strip()
        assert new_id != web_id                              # recreated with the new command …
        assert cli.out("inspect", "--format", "{{.Node.Name}}", "swarmdtest_web_1").strip() == "node2"
        assert "web-2" in cli.out("logs", "swarmdtest_web_1")
    finally:
        _compose(cli, tmp_path, "down")
    assert [n for n in cli.out("ps", "-a", "--format", "{{.Names}}").split() if "swarmdtest" in n] == []
    for engine in lab.engines:
        assert not engine.client().networks.list(names=["swarmdtest_default"])


RICH = textwrap.dedent("""\
    version: "2.4"
    services:
      db:
        image: busybox
        command: sh -c "echo db-ready > /data/ready; exec httpd -f -p 5432 -h /data"
        volumes: [dbdata:/data]
        networks: [backend]
      app:
        image: busybox
        command: sh -c "sleep 1; wget -qO- http://db:5432/ready; sleep 300"
        depends_on: [db]
        links: [db]
        networks: [backend, front]
    volumes:
      dbdata: {}
    networks:
      backend: {}
      front: {}
    """)


def test_compose_volumes_networks_and_links(cli, lab, tmp_path):
    (tmp_path / "docker-compose.yml").write_text(RICH)
    try:
        _compose(cli, tmp_path, "up", "-d")
        nodes = {cli.out("inspect", "--format", "{{.Node.Name}}", f"swarmdtest_{s}_1").strip() for s in ("db", "app")}
        assert len(nodes) == 1                         # a link keeps them together
        engine = next(e for e in lab.engines if e.name in nodes)
        assert engine.client().volumes.get("swarmdtest_dbdata")
        wait_until(lambda: "db-ready" in _compose(cli, tmp_path, "logs", "--no-color", "app").stdout, 20,
             "app to read from db over the project network")
    finally:
        _compose(cli, tmp_path, "down", "-v")
    for engine in lab.engines:
        assert not [v for v in engine.client().volumes.list() if v.name == "swarmdtest_dbdata"]
        assert not engine.client().networks.list(names=["swarmdtest_backend"])
