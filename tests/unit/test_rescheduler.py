"""Rescheduling decisions: which containers move when a node is lost, which copies are stale."""
from __future__ import annotations

import json

from swarmd.manager.container_records import ContainerRecord
from swarmd.manager.rescheduler import (NodeState, create_body, reschedule_policies, reschedules_on_node_failure,
                                 stale_copies, to_reschedule)
from swarmd.manager.scheduler import ContainerSpec
from swarmd.manager.scheduler.container_spec import RESCHEDULE_LABEL

POLICY = {RESCHEDULE_LABEL: json.dumps(["on-node-failure"])}


def doc(cid: str, name: str, labels: dict | None = None, created: str = "2024-01-01T00:00:00Z",
        running: bool = True, **config) -> dict:
    return {
        "Id": cid.ljust(64, "0"), "Name": f"/{name}", "Created": created,
        "State": {"Status": "running" if running else "exited", "Running": running},
        "Config": {"Image": "busybox", "Cmd": ["sleep", "600"], "Hostname": cid[:12], "Labels": labels or {},
                   **config},
        "HostConfig": {"NetworkMode": "default", "Memory": 0, "RestartPolicy": {"Name": "no"}},
        "NetworkSettings": {"Networks": {"bridge": {"Aliases": None}}},
    }


def rec(node: str, d: dict) -> ContainerRecord:
    return ContainerRecord(node_id=node, node_name=node, doc=d)


def node(name: str, *docs: dict, lost: bool = False, healthy: bool | None = None) -> NodeState:
    return NodeState(id=name, name=name, lost=lost, healthy=(not lost) if healthy is None else healthy,
                     containers=tuple(rec(name, d) for d in docs))


def test_policy_from_label_or_env():
    assert reschedules_on_node_failure(doc("a", "web", POLICY))
    assert reschedules_on_node_failure(doc("a", "web", Env=["A=1", "reschedule:on-node-failure"]))
    assert not reschedules_on_node_failure(doc("a", "web"))
    assert not reschedules_on_node_failure(doc("a", "web", {RESCHEDULE_LABEL: '["off"]'}))
    assert reschedule_policies(doc("a", "web", {RESCHEDULE_LABEL: "on-node-failure"})) == ["on-node-failure"]


def test_lost_node_containers_with_the_policy_are_rescheduled_once():
    nodes = [
        node("n1", doc("a1", "web", POLICY), doc("a2", "db"), lost=True),
        node("n2", doc("b1", "cache")),
    ]
    assert [r.name for r in to_reschedule(nodes)] == ["web"]


def test_nothing_moves_while_the_node_is_only_unreachable():
    nodes = [node("n1", doc("a1", "web", POLICY), healthy=False), node("n2")]
    assert to_reschedule(nodes) == []


def test_a_name_already_running_elsewhere_is_not_created_again():
    nodes = [
        node("n1", doc("a1", "web", POLICY), lost=True),
        node("n2", doc("b1", "web", POLICY, created="2024-01-02T00:00:00Z")),
    ]
    assert to_reschedule(nodes) == []


def test_stale_copy_is_the_older_one_on_the_returned_node():
    old = doc("a1", "web", POLICY, created="2024-01-01T00:00:00Z")
    new = doc("b1", "web", POLICY, created="2024-01-01T00:05:00Z")
    nodes = [node("n1", old), node("n2", new)]
    pairs = stale_copies(nodes)
    assert [(s.id[:2], k.id[:2]) for s, k in pairs] == [("a1", "b1")]
    # while the old node is still away there is nothing to remove yet
    assert stale_copies([node("n1", old, lost=True), node("n2", new)]) == []


def test_same_names_without_the_policy_are_left_alone():
    nodes = [node("n1", doc("a1", "web")), node("n2", doc("b1", "web", created="2024-02-01T00:00:00Z"))]
    assert stale_copies(nodes) == []


def test_create_body_recreates_the_container():
    d = doc("a1", "web", POLICY, Env=["A=1"], WorkingDir="/srv", ExposedPorts={"80/tcp": {}})
    d["HostConfig"]["PortBindings"] = {"80/tcp": [{"HostPort": "8080"}]}
    d["NetworkSettings"]["Networks"]["appnet"] = {"Aliases": ["web", "a10000000000"], "IPAMConfig": None}
    body = create_body(d)
    assert body["Image"] == "busybox" and body["Cmd"] == ["sleep", "600"] and body["Env"] == ["A=1"]
    assert body["Labels"] == POLICY and body["WorkingDir"] == "/srv"
    assert "Hostname" not in body                        # the engine's default: the old ID
    assert body["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostPort": "8080"}]}
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"appnet": {"Aliases": ["web"]}}}
    spec = ContainerSpec.from_create(body, "web")
    assert spec.reschedule_on_node_failure and spec.ports[0].host_port == 8080


def test_create_body_keeps_a_hostname_the_user_chose():
    d = doc("a1", "web")
    d["Config"]["Hostname"] = "web-host"
    assert create_body(d)["Hostname"] == "web-host"


def test_stale_copies_are_looked_for_among_the_names_the_appeared_nodes_hold():
    old = doc("a1", "web", POLICY, created="2024-01-01T00:00:00Z")
    new = doc("b1", "web", POLICY, created="2024-01-01T00:05:00Z")
    other = doc("c1", "db", POLICY)
    nodes = [node("n1", old), node("n2", new), node("n3", other)]
    # n1 came back holding "web": the older copy there goes
    assert [(s.id[:2], k.id[:2]) for s, k in stale_copies(nodes, appeared={"n1"})] == [("a1", "b1")]
    # only n3 appeared: no name it holds has a copy elsewhere, and nothing else is looked at
    assert stale_copies(nodes, appeared={"n3"}) == []
    assert stale_copies([node("n1", doc("a1", "web")), node("n2", doc("b1", "web"))], appeared={"n1"}) == []
