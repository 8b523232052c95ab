"""Node intent policy: the availability filter, node labels in constraints, the drain decision,
the intent records, and the `/nodes` lookup, document and spec checks."""
from __future__ import annotations

import dataclasses

import pytest

from swarmd.manager.api.nodes import find_node, matches, updated_intent
from swarmd.manager.drain import DrainNode, to_drain
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.intent import NodeIntent
from swarmd.manager.scheduler import ContainerSpec, NoSuitableNode, Scheduler
from swarmd.manager.scheduler.filters.health import HealthFilter
from swarmd.common.membership.etcd_store import is_removed
from tests.unit.test_rescheduler import doc, rec
from tests.unit.test_scheduler_snapshot import node


def with_availability(n, availability):
    return dataclasses.replace(n, availability=availability)


def spec(*env: str) -> ContainerSpec:
    return ContainerSpec.from_create({"Image": "busybox", "Env": list(env)}, None)


def test_paused_and_drained_nodes_take_no_new_container():
    nodes = [with_availability(node("n1"), "pause"), with_availability(node("n2"), "drain"), node("n3")]
    kept = HealthFilter().filter(spec(), nodes, soft=True, cluster=nodes)
    assert [n.name for n in kept] == ["n3"]
    assert Scheduler().select(spec(), nodes).name == "n3"


def test_no_active_node_says_so():
    nodes = [with_availability(node("n1"), "pause"), with_availability(node("n2"), "drain")]
    with pytest.raises(NoSuitableNode) as err:
        Scheduler().select(spec(), nodes)
    assert "paused or drained" in str(err.value)


def test_node_labels_match_in_classic_and_swarm_syntax():
    nodes = [node("n1", labels={"zone": "east"}), node("n2", labels={"zone": "west"})]
    assert Scheduler().select(spec("constraint:zone==east"), nodes).name == "n1"
    assert Scheduler().select(spec("constraint:node.labels.zone==west"), nodes).name == "n2"
    assert Scheduler().select(spec("constraint:node.labels.zone!=east"), nodes).name == "n2"


def policy_doc(cid: str, name: str, moves: bool) -> dict:
    labels = {"com.docker.swarm.reschedule-policies": '["on-node-failure"]'} if moves else {}
    return doc(cid, name, labels)


def test_drain_moves_only_containers_with_a_reschedule_policy_once():
    moving, staying = rec("a", policy_doc("1" * 64, "web", True)), rec("a", policy_doc("2" * 64, "db", False))
    nodes = [DrainNode("a", "drain", True, (moving, staying)), DrainNode("b", "active", True, ())]
    assert [r.name for r in to_drain(nodes)] == ["web"]
    moved = rec("b", policy_doc("3" * 64, "web", True))
    nodes[1] = DrainNode("b", "active", True, (moved,))
    assert to_drain(nodes) == []                         # a copy elsewhere: already moved
    assert to_drain([DrainNode("a", "pause", True, (moving,))]) == []
    assert to_drain([DrainNode("a", "drain", False, (moving,))]) == []    # a down node is the rescheduler's


def test_intent_records_round_trip_and_count_versions():
    intent = NodeIntent().updated(availability="drain", labels={"zone": "east"})
    back = NodeIntent.from_json(intent.to_json())
    assert back == intent and back.version == 2
    assert NodeIntent.from_json(b"not json") == NodeIntent()
    assert not is_removed(intent.to_json()) and is_removed(intent.updated(removed=True).to_json())


class View:
    def __init__(self, id, name):
        self.id, self.name = id, name


def test_nodes_are_found_by_id_name_or_unique_prefix():
    views = [View("abc123", "node1"), View("abd456", "node2")]
    assert find_node(views, "abc123").name == "node1"
    assert find_node(views, "node2").id == "abd456"
    assert find_node(views, "abc").name == "node1"
    with pytest.raises(ApiError) as err:
        find_node(views, "ab")
    assert err.value.status == 400 and "ambiguous" in err.value.message
    with pytest.raises(ApiError) as err:
        find_node(views, "zzz")
    assert err.value.status == 404 and err.value.message == "node zzz not found"


def test_a_node_spec_sets_availability_and_labels_and_refuses_the_rest():
    current = NodeIntent()
    new = updated_intent(current, {"Availability": "pause", "Labels": {"a": "b"}, "Role": "worker"})
    assert (new.availability, new.labels, new.version) == ("pause", {"a": "b"}, 2)
    for bad in ({"Availability": "gone"}, {"Role": "manager"}, {"Labels": {"a": 1}}, []):
        with pytest.raises(ApiError) as err:
            updated_intent(current, bad)
        assert err.value.status == 400


def test_node_list_filters():
    d = {"ID": "abc", "Description": {"Hostname": "node1"}, "Spec": {"Labels": {"zone": "east"}}}
    assert matches(d, {"name": ["node"], "role": ["worker"], "node.label": ["zone=east"]})
    assert not matches(d, {"node.label": ["zone=west"]})
    with pytest.raises(ApiError):
        matches(d, {"bogus": ["x"]})
