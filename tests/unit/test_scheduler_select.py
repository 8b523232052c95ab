"""The scheduler end to end on snapshots: configuration, filter order, soft rules, errors."""
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarmd.manager.scheduler import ContainerSpec, NoSuitableNode, Scheduler
from swarmd.manager.scheduler.snapshot import PortBinding
from tests.unit.test_scheduler_snapshot import GiB, ctr, img, node


def spec(env=(), hc=None, **extra):
    return ContainerSpec.from_create({"Image": "busybox", "Env": list(env), "HostConfig": hc or {}, **extra}, None)


def test_defaults():
    s = Scheduler()
    assert s.strategy_name == "spread"
    assert s.filter_names == ["health", "port", "containerslots", "dependency", "affinity", "constraint"]


def test_chosen_filters_keep_their_order_and_accept_comma_lists():
    s = Scheduler("binpack", ["constraint", "health,port", "health"])
    assert s.strategy_name == "binpack" and s.filter_names == ["constraint", "health", "port"]
    assert Scheduler("random", []).filter_names == []


def test_unknown_names_are_rejected_with_the_valid_ones():
    with pytest.raises(ValueError, match='unknown scheduling strategy "fastest": valid strategies are spread, binpack, random'):
        Scheduler("fastest")
    with pytest.raises(ValueError, match='unknown scheduler filter "ports": valid filters are health, port, '
                                         'containerslots, dependency, affinity, constraint'):
        Scheduler("spread", ["ports"])


def test_no_nodes_at_all():
    with pytest.raises(NoSuitableNode, match="^no healthy node available in the cluster$"):
        Scheduler().select(spec(), [])
    with pytest.raises(NoSuitableNode, match="^no healthy node available in the cluster$"):
        Scheduler(filters=[]).select(spec(), [])


def test_only_unhealthy_nodes():
    with pytest.raises(NoSuitableNode, match="^no healthy node available in the cluster$"):
        Scheduler().select(spec(), [node("a", healthy=False)])


def test_unhealthy_node_is_skipped_even_if_emptiest():
    nodes = [node("a", healthy=False), node("b", n_containers=4)]
    assert Scheduler().select(spec(), nodes).name == "b"
    assert Scheduler(filters=["constraint"]).select(spec(), nodes).name == "a"


def test_constraint_pins_the_node():
    nodes = [node("node1"), node("node2", n_containers=3)]
    assert Scheduler().select(spec(["constraint:node==node2"]), nodes).name == "node2"
    with pytest.raises(NoSuitableNode) as err:
        Scheduler().select(spec(["constraint:node==node9"]), nodes)
    assert str(err.value) == "Unable to find a node that satisfies the following conditions \n[available container slots]\n[node==node9]"


def test_message_names_the_filter_that_emptied_the_list():
    nodes = [node("node1", labels={"containerslots": "1"}, n_containers=1),
             node("node2", containers=[ctr("w", ports=[PortBinding("0.0.0.0", 8080, "tcp")])])]
    with pytest.raises(NoSuitableNode, match=r"\[available container slots\]$"):
        Scheduler().select(spec(hc={"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}), nodes)
    with pytest.raises(NoSuitableNode, match=r"\[port 8080 \(Bridge mode\)\]$"):
        Scheduler().select(spec(hc={"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}), nodes[1:])


def test_soft_rule_is_retried_away_when_a_later_rule_fails_with_it():
    nodes = [node("node1", images=[img("1" * 64, "redis:7")]), node("node2")]
    s = spec(["affinity:image==~redis", "constraint:node==node2"])
    assert Scheduler().select(s, nodes).name == "node2"
    assert Scheduler().select(spec(["affinity:image==~redis"]), nodes).name == "node1"


def test_soft_rule_is_retried_away_when_resources_fail_with_it():
    nodes = [node("node1", memory=GiB, images=[img("1" * 64, "redis:7")]), node("node2", memory=8 * GiB)]
    s = spec(["affinity:image==~redis"], {"Memory": 2 * GiB})
    assert Scheduler().select(s, nodes).name == "node2"
    assert [n.name for n in Scheduler().rank(s, nodes)] == ["node2"]


def test_hard_failure_stays_a_failure_after_the_soft_retry():
    nodes = [node("node1", images=[img("1" * 64, "redis:7")])]
    with pytest.raises(NoSuitableNode, match=r"\[node==node2\]"):
        Scheduler().select(spec(["affinity:image==~redis", "constraint:node==node2"]), nodes)


def test_dependency_and_affinity_follow_the_container():
    nodes = [node("node1", containers=[ctr("db")]), node("node2"), node("node3")]
    assert Scheduler().select(spec(hc={"Links": ["db:db"]}), nodes).name == "node1"
    assert Scheduler().select(spec(["affinity:container==db"]), nodes).name == "node1"
    assert Scheduler().select(spec(["affinity:container!=db"]), nodes).name == "node2"
    with pytest.raises(NoSuitableNode, match='no container "web" in the cluster'):
        Scheduler().select(spec(hc={"VolumesFrom": ["web"]}), nodes)


def test_resources_exhausted():
    nodes = [node("node1", cpus=1, containers=[ctr("x", cpus=1.0)])]
    with pytest.raises(NoSuitableNode, match="^no resources available to schedule container"):
        Scheduler().select(spec(hc={"NanoCpus": 500_000_000}), nodes)


def test_random_scheduler_is_seedable():
    nodes = [node(f"n{i}") for i in range(8)]
    a = Scheduler("random", rng=random.Random(5))
    b = Scheduler("random", rng=random.Random(5))
    assert [a.select(spec(), nodes).name for _ in range(10)] == [b.select(spec(), nodes).name for _ in range(10)]


def test_large_cluster_picks_the_emptiest_eligible_node_first_by_name():
    nodes = [node(f"node{i:04d}", labels={"region": "eu" if i % 2 else "us"}, n_containers=30 - (i % 30))
             for i in range(1000)]
    s = Scheduler()
    chosen = s.select(spec(["constraint:region==us"]), nodes)
    assert chosen.name == "node0028"        # 2 containers; node0058, node0088, … tie and sort later
    assert s.select(spec(["constraint:region==eu"]), nodes).name == "node0029"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 4), st.sampled_from(["us", "eu"])), min_size=1, max_size=8))
def test_the_chosen_node_satisfies_every_hard_rule(desc):
    nodes = [node(f"n{i}", healthy=h, labels={"region": r, "containerslots": "3"}, n_containers=c)
             for i, (h, c, r) in enumerate(desc)]
    eligible = [n for n in nodes if n.healthy and n.index.count < 3 and n.labels["region"] == "us"]
    s = spec(["constraint:region==us"])
    if eligible:
        chosen = Scheduler().select(s, nodes)
        assert chosen in eligible
        assert chosen.index.count == min(n.index.count for n in eligible)
    else:
        with pytest.raises(NoSuitableNode):
            Scheduler().select(s, nodes)
