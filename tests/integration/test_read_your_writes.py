"""Read-your-writes through the real docker CLIs: right after `docker run`, `create`, `start` and
`stop` answer, `docker ps` and `docker inspect` through the manager show the container as its
engine has it (the agent answers a change with the container read right after it)."""
from __future__ import annotations

import json
import uuid

import pytest

pytestmark = pytest.mark.usefixtures("clean_containers")


def _engine_doc(lab, node: str, cid: str) -> dict:
    engine = next(e for e in lab.engines if e.name == node)
    return engine.client().api.inspect_container(cid)


def _same_state(shown: dict, engine: dict) -> None:
    for key in ("Status", "Running", "Pid", "StartedAt", "FinishedAt", "ExitCode"):
        assert shown["State"][key] == engine["State"][key], key
    assert shown["NetworkSettings"]["IPAddress"] == engine["NetworkSettings"]["IPAddress"]
    assert shown["NetworkSettings"]["Ports"] == engine["NetworkSettings"]["Ports"]


def test_ps_and_inspect_right_after_run_show_the_running_container(any_cli, lab):
    name = f"ryw-{uuid.uuid4().hex[:8]}"
    cid = any_cli.out("run", "-d", "--name", name, "-p", "80", "busybox", "sleep", "300").strip()
    listed = any_cli.out("ps", "--no-trunc", "--filter", f"name={name}", "--format", "{{.ID}} {{.Status}} {{.Ports}}")
    assert listed.startswith(f"{cid} Up "), listed
    assert "->80/tcp" in listed
    shown = json.loads(any_cli.out("inspect", name))[0]
    assert shown["Id"] == cid and shown["State"]["Running"] and shown["State"]["Pid"] > 0
    assert shown["NetworkSettings"]["IPAddress"]
    _same_state(shown, _engine_doc(lab, shown["Node"]["Name"], cid))


def test_create_start_and_stop_each_show_right_after_they_answer(any_cli, lab):
    name = f"ryw-{uuid.uuid4().hex[:8]}"
    cid = any_cli.out("create", "--name", name, "busybox", "sleep", "300").strip()
    shown = json.loads(any_cli.out("inspect", cid))[0]
    assert shown["State"]["Status"] == "created" and shown["Name"] == f"/{name}"
    node = shown["Node"]["Name"]
    assert any_cli.out("ps", "-a", "--filter", f"id={cid}", "--format", "{{.State}}").strip() == "created"
    any_cli.out("start", name)
    shown = json.loads(any_cli.out("inspect", name))[0]
    assert shown["State"]["Status"] == "running"
    _same_state(shown, _engine_doc(lab, node, cid))
    assert any_cli.out("ps", "--filter", f"id={cid}", "--format", "{{.State}}").strip() == "running"
    any_cli.out("stop", "-t", "0", name)
    shown = json.loads(any_cli.out("inspect", name))[0]
    assert shown["State"]["Status"] == "exited" and not shown["State"]["Running"]
    _same_state(shown, _engine_doc(lab, node, cid))
    assert any_cli.out("ps", "--filter", f"id={cid}", "--format", "{{.ID}}").strip() == ""
