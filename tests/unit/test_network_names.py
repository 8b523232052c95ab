"""Node-local network references: classic swarm's lookup order, ambiguity, and `--net node/name`."""
import pytest

from swarmd.manager import network_names as nn

A = "a" * 64
HELD = [
    ("node1", "ID1", {"Id": "1" + A[1:], "Name": "mynet"}),
    ("node2", "ID2", {"Id": "2" + A[1:], "Name": "mynet"}),
    ("node1", "ID1", {"Id": "3" + "b" * 63, "Name": "bridge"}),
    ("node2", "ID2", {"Id": "4" + "b" * 63, "Name": "bridge"}),
    ("node1", "ID1", {"Id": "5" + "c" * 63, "Name": "proj_default", "Labels": {nn.CLUSTER_LABEL: "true"}}),
    ("node2", "ID2", {"Id": "5" + "e" * 63, "Name": "proj_default", "Labels": {nn.CLUSTER_LABEL: "true"}}),
    ("node3", "ID3", {"Id": "7" + "d" * 63, "Name": "solo"}),
]


def resolve(ref):
    return [(node, item["Name"]) for node, _, item in nn.resolve(ref, HELD, lambda x: x)]


def test_node_name_node_id_and_ids_name_one_network():
    assert resolve("node2/mynet") == [("node2", "mynet")]
    assert resolve("ID1/mynet") == [("node1", "mynet")]
    assert resolve("2" + A[1:]) == [("node2", "mynet")]
    assert resolve(("2" + A[1:])[:12]) == [("node2", "mynet")]
    assert resolve("7dd") == [("node3", "solo")]
    assert resolve("solo") == [("node3", "solo")]


def test_a_plain_name_on_several_nodes_is_ambiguous_unless_one_cluster_wide_network():
    with pytest.raises(nn.AmbiguousNetwork) as err:
        resolve("mynet")
    assert str(err.value) == "network mynet is ambiguous (2 matches found on name): node1/mynet, node2/mynet"
    assert err.value.status == 400
    assert resolve("proj_default") == [("node1", "proj_default"), ("node2", "proj_default")]
    assert resolve("bridge") == [("node1", "bridge"), ("node2", "bridge")]


def test_an_id_prefix_of_several_is_ambiguous_and_nothing_is_not_found():
    with pytest.raises(nn.AmbiguousNetwork, match=r"\(2 matches found based on ID prefix\): node1/proj_default"):
        resolve("5")
    with pytest.raises(nn.NoSuchNetwork, match="^network node3/mynet not found$") as err:
        resolve("node3/mynet")
    assert err.value.status == 404


NODES = {"node1", "node2"}.__contains__


def test_net_node_name_pins_the_container_and_the_engine_gets_the_plain_name():
    body = {"Image": "busybox", "Env": ["A=1"], "HostConfig": {"NetworkMode": "node2/mynet", "Memory": 5},
            "NetworkingConfig": {"EndpointsConfig": {"node2/mynet": {"Aliases": ["web"]}}}}
    out = nn.pinned_to_network_node(body, NODES)
    assert out["HostConfig"] == {"NetworkMode": "mynet", "Memory": 5}
    assert out["NetworkingConfig"] == {"EndpointsConfig": {"mynet": {"Aliases": ["web"]}}}
    assert out["Env"] == ["A=1", "constraint:node==node2"]
    assert body["HostConfig"]["NetworkMode"] == "node2/mynet"    # the caller's body is left alone
    assert nn.pinned_to_network_node({"HostConfig": {"NetworkMode": "node1/n"}}, NODES)["Env"] == \
        ["constraint:node==node1"]


@pytest.mark.parametrize("mode", ["mynet", "bridge", "container:node1/db", "node9/mynet", "node1/", "/x", "a/b/c"])
def test_other_network_modes_are_left_as_they_are(mode):
    body = {"Image": "busybox", "HostConfig": {"NetworkMode": mode}}
    assert nn.pinned_to_network_node(body, NODES) is body


def test_malformed_bodies_are_left_to_the_create_checks():
    for body in ({"HostConfig": "x"}, {"HostConfig": None}, {}):
        assert nn.pinned_to_network_node(body, NODES) is body


def test_name_filters_match_exactly_or_as_a_regular_expression():
    assert nn.name_filter_matches(["node1/"], ["mynet", "node1/mynet"])
    assert nn.name_filter_matches(["^my"], ["mynet"]) and not nn.name_filter_matches(["^net"], ["mynet"])
    assert not nn.name_filter_matches(["("], ["x("]) and nn.name_filter_matches(["("], ["("])   # invalid: exact only
