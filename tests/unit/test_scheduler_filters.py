"""Each filter on synthetic snapshots: what it keeps, and what it says when it keeps nothing."""
import pytest

from swarmd.manager.scheduler import ContainerSpec, NoSuitableNode
from swarmd.manager.scheduler.filters.affinity import AffinityFilter
from swarmd.manager.scheduler.filters.constraint import ConstraintFilter
from swarmd.manager.scheduler.filters.containerslots import ContainerSlotsFilter
from swarmd.manager.scheduler.filters.dependency import DependencyFilter
from swarmd.manager.scheduler.filters.health import HealthFilter
from swarmd.manager.scheduler.filters.port import PortFilter
from swarmd.manager.scheduler.snapshot import PortBinding
from tests.unit.test_scheduler_snapshot import ctr, img, node


def spec(**body):
    env = body.pop("env", None)
    hc = body.pop("hc", {})
    b = {"Image": "busybox", "HostConfig": hc, **body}
    if env:
        b["Env"] = env
    return ContainerSpec.from_create(b, None)


def run(f, s, nodes, soft=True):
    return [n.name for n in f.filter(s, list(nodes), soft=soft, cluster=list(nodes))]


def ports(*items):
    return {"PortBindings": {f"{cport}/{proto}": [{"HostIp": ip, "HostPort": str(hport)}]
                             for cport, (ip, hport, proto) in enumerate(items, start=1)}}


# -- health ---------------------------------------------------------------------------------------

def test_health_keeps_healthy_nodes():
    nodes = [node("a"), node("b", healthy=False), node("c")]
    assert run(HealthFilter(), spec(), nodes) == ["a", "c"]


def test_health_with_no_healthy_node():
    with pytest.raises(NoSuitableNode, match="^no healthy node available in the cluster$") as err:
        run(HealthFilter(), spec(), [node("a", healthy=False)])
    assert err.value.filter == "health"


# -- port -----------------------------------------------------------------------------------------

def test_port_skips_nodes_with_the_port_bound_by_a_live_container():
    nodes = [node("a", containers=[ctr("w", ports=[PortBinding("0.0.0.0", 8080, "tcp")])]),
             node("b", containers=[ctr("x", state="paused", ports=[PortBinding("0.0.0.0", 8080, "tcp")])]),
             node("c", containers=[ctr("y", ports=[PortBinding("0.0.0.0", 8080, "udp")])]),
             node("d", containers=[ctr("z", ports=[PortBinding("127.0.0.1", 8080, "tcp")])])]
    assert run(PortFilter(), spec(hc=ports(("", 8080, "tcp"))), nodes) == ["c"]
    assert run(PortFilter(), spec(hc=ports(("127.0.0.2", 8080, "tcp"))), nodes) == ["c", "d"]
    assert run(PortFilter(), spec(hc=ports(("127.0.0.1", 8080, "tcp"))), nodes) == ["c"]
    assert run(PortFilter(), spec(hc=ports(("0.0.0.0", 8080, "udp"))), nodes) == ["a", "b", "d"]
    assert run(PortFilter(), spec(hc=ports(("0.0.0.0", 9090, "tcp"))), nodes) == ["a", "b", "c", "d"]


def test_stopped_containers_hold_their_ports_as_in_classic():
    nodes = [node("a", containers=[ctr("old", state="exited", ports=[PortBinding("0.0.0.0", 8080, "tcp")])]),
             node("b", containers=[ctr("new", state="created", ports=[PortBinding("0.0.0.0", 8080, "tcp")])]),
             node("c", containers=[ctr("gone", state="removing", ports=[PortBinding("0.0.0.0", 8080, "tcp")])])]
    assert run(PortFilter(), spec(hc=ports(("", 8080, "tcp"))), nodes) == ["c"]


def test_a_stopped_container_named_by_a_hard_affinity_gives_its_ports_to_its_replacement():
    old_id = "ab" * 32
    nodes = [node("a", containers=[ctr("old", id=old_id, state="exited", ports=[PortBinding("0.0.0.0", 8080, "tcp")])]),
             node("b", containers=[ctr("up", state="running", ports=[PortBinding("0.0.0.0", 8080, "tcp")])])]
    wanted = ports(("", 8080, "tcp"))
    for ref in (old_id, "old"):      # docker-compose's recreate names the old container by its ID
        assert run(PortFilter(), spec(env=[f"affinity:container=={ref}"], hc=wanted), nodes) == ["a"]
    # a running container keeps its ports, named or not; soft and negated rules name nothing
    for rule in ("container==up", "container==~old", "container!=old"):
        with pytest.raises(NoSuitableNode):
            run(PortFilter(), spec(env=[f"affinity:{rule}"], hc=wanted), nodes)
    nodes[0] = node("a", containers=[ctr("old", id=old_id, state="running", ports=[PortBinding("0.0.0.0", 8080, "tcp")])])
    with pytest.raises(NoSuitableNode):
        run(PortFilter(), spec(env=[f"affinity:container=={old_id}"], hc=wanted), nodes)


def test_port_message_names_the_port_in_classic_words():
    nodes = [node("a", containers=[ctr("w", ports=[PortBinding("0.0.0.0", 8080, "tcp")])])]
    with pytest.raises(NoSuitableNode) as err:
        run(PortFilter(), spec(hc=ports(("", 8080, "tcp"))), nodes)
    assert str(err.value) == "Unable to find a node that satisfies the following conditions \n[port 8080 (Bridge mode)]"
    assert err.value.filter == "port"
    with pytest.raises(NoSuitableNode, match=r"\[port 127.0.0.1:8080 \(Bridge mode\)\]"):
        run(PortFilter(), spec(hc=ports(("127.0.0.1", 8080, "tcp"))), nodes)


def test_port_combination_message_lists_ports_applied_so_far():
    nodes = [node("a", containers=[ctr("w", ports=[PortBinding("0.0.0.0", 80, "tcp")])]),
             node("b", containers=[ctr("w", ports=[PortBinding("0.0.0.0", 53, "udp")])])]
    with pytest.raises(NoSuitableNode) as err:
        run(PortFilter(), spec(hc=ports(("", 80, "tcp"), ("", 53, "udp"))), nodes)
    assert err.value.conditions == ("port 80 (Bridge mode)", "port 53/udp (Bridge mode)")


def test_port_in_host_network_mode():
    nodes = [node("a", containers=[ctr("w", ports=[PortBinding("0.0.0.0", 80, "tcp")])]), node("b")]
    s = spec(ExposedPorts={"80/tcp": {}}, hc={"NetworkMode": "host"})
    assert run(PortFilter(), s, nodes) == ["b"]
    with pytest.raises(NoSuitableNode, match=r"\[port 80/tcp \(Host mode\)\]"):
        run(PortFilter(), s, nodes[:1])


def test_port_without_fixed_ports_keeps_everything():
    nodes = [node("a", containers=[ctr("w", ports=[PortBinding("0.0.0.0", 80, "tcp")])])]
    assert run(PortFilter(), spec(hc={"PortBindings": {"80/tcp": [{"HostPort": ""}]}}), nodes) == ["a"]


# -- containerslots -------------------------------------------------------------------------------

def test_containerslots():
    nodes = [node("full", labels={"containerslots": "2"}, n_containers=2),
             node("room", labels={"containerslots": "3"}, n_containers=2),
             node("bad", labels={"containerslots": "many"}, n_containers=9),
             node("free", n_containers=50)]
    assert run(ContainerSlotsFilter(), spec(), nodes) == ["room", "bad", "free"]
    with pytest.raises(NoSuitableNode) as err:
        run(ContainerSlotsFilter(), spec(), nodes[:1])
    assert str(err.value) == "Unable to find a node that satisfies the following conditions \n[available container slots]"


def test_containerslots_counts_stopped_containers():
    n = node("a", labels={"containerslots": "1"}, containers=[ctr("old", state="exited")])
    with pytest.raises(NoSuitableNode):
        run(ContainerSlotsFilter(), spec(), [n])


# -- dependency -----------------------------------------------------------------------------------

DB_ID = "d0" * 32


def dep_nodes():
    return [node("a", containers=[ctr("db", id=DB_ID)]),
            node("b", containers=[ctr("cache"), ctr("data")]),
            node("c", containers=[ctr("cache2")])]


@pytest.mark.parametrize("hc, where", [
    ({"VolumesFrom": ["db:ro"]}, ["a"]),
    ({"Links": ["/cache:/x/c"]}, ["b"]),
    ({"NetworkMode": "container:db"}, ["a"]),
    ({"NetworkMode": f"container:{DB_ID}"}, ["a"]),
    ({"VolumesFrom": ["d0d0d0"]}, ["a"]),        # ID prefix
    ({"VolumesFrom": ["data"], "Links": ["cache:c"]}, ["b"]),
    ({"VolumesFrom": ["b/data"]}, ["b"]),
    ({}, ["a", "b", "c"]),
])
def test_dependency_goes_to_the_node_holding_the_container(hc, where):
    assert run(DependencyFilter(), spec(hc=hc), dep_nodes()) == where


def test_dependency_not_in_the_cluster():
    with pytest.raises(NoSuitableNode) as err:
        run(DependencyFilter(), spec(hc={"Links": ["cache:c", "nosuch:n"]}), dep_nodes())
    assert str(err.value) == ('Unable to find a node that satisfies the following conditions '
                              '\n[--link=cache:c --link=nosuch:n]\nno container "nosuch" in the cluster (--link=nosuch:n)')
    assert err.value.filter == "dependency"


def test_dependencies_split_over_nodes():
    with pytest.raises(NoSuitableNode, match=r"\n\[--volumes-from=db --link=cache:c\]\nno eligible node holds all of them$"):
        run(DependencyFilter(), spec(hc={"VolumesFrom": ["db"], "Links": ["cache:c"]}), dep_nodes())


def test_dependency_on_a_node_that_was_filtered_out():
    nodes = dep_nodes()
    s = spec(hc={"VolumesFrom": ["db"]})
    with pytest.raises(NoSuitableNode, match="the node holding it cannot take the container"):
        DependencyFilter().filter(s, nodes[1:], soft=True, cluster=nodes)


# -- affinity -------------------------------------------------------------------------------------

def aff_nodes():
    return [node("a", containers=[ctr("web1", id="aa" * 32, labels={"com.example.tier": "front"})],
                 images=[img("1" * 64, "busybox:latest"), img("2" * 64, "docker.io/library/redis:7")]),
            node("b", containers=[ctr("db", id="bb" * 32, labels={"com.example.tier": "back"})],
                 images=[img("3" * 64, "localhost:5000/app:1.0")]),
            node("c", images=[img("1" * 64, "busybox:latest")])]


@pytest.mark.parametrize("rule, where", [
    ("container==web1", ["a"]),
    ("container==/web1", ["a"]),
    ("container==" + "bb" * 32, ["b"]),
    ("container==bbbb", ["b"]),
    ("container==web*", ["a"]),
    ("container==/^d/", ["b"]),
    ("container!=web1", ["b", "c"]),
    ("container!=/./", ["c"]),
    ("image==busybox", ["a", "c"]),
    ("image==busybox:latest", ["a", "c"]),
    ("image==docker.io/library/busybox", ["a", "c"]),
    ("image==redis:7", ["a"]),
    ("image==localhost:5000/app", ["b"]),
    ("image==sha256:3333", ["b"]),
    ("image==1111", ["a", "c"]),
    ("image==local*", ["b"]),
    ("image!=busybox", ["b"]),
    ("com.example.tier==front", ["a"]),
    ("com.example.tier==/^(front|back)$/", ["a", "b"]),
    ("com.example.tier!=back", ["a", "c"]),
])
def test_affinity(rule, where):
    assert run(AffinityFilter(), spec(env=[f"affinity:{rule}"]), aff_nodes()) == where


def test_affinities_combine():
    s = spec(env=["affinity:image==busybox", "affinity:container!=web1"])
    assert run(AffinityFilter(), s, aff_nodes()) == ["c"]


def test_hard_affinity_that_matches_nothing():
    with pytest.raises(NoSuitableNode) as err:
        run(AffinityFilter(), spec(env=["affinity:image==busybox", "affinity:container==nosuch"]), aff_nodes())
    assert str(err.value) == ("Unable to find a node that satisfies the following conditions "
                              "\n[image==busybox (soft=false) container==nosuch (soft=false)]")
    assert err.value.filter == "affinity"


def test_soft_affinity_is_dropped_when_it_would_leave_nothing():
    s = spec(env=["affinity:container==~nosuch", "affinity:image==~busybox"])
    assert run(AffinityFilter(), s, aff_nodes()) == ["a", "c"]
    assert run(AffinityFilter(), s, aff_nodes(), soft=False) == ["a", "b", "c"]


# -- constraint -----------------------------------------------------------------------------------

def con_nodes():
    return [node("node1", id="ID1", labels={"region": "us-east", "storage": "ssd", "storagedriver": "overlay2"}),
            node("node2", id="ID2", labels={"region": "us-west", "Storage": "disk"}),
            node("other", id="ID3", labels={"region": "eu"})]


@pytest.mark.parametrize("rule, where", [
    ("node==node1", ["node1"]),
    ("node==ID2", ["node2"]),
    ("node!=node1", ["node2", "other"]),
    ("node==node*", ["node1", "node2"]),
    ("node==/^node[2-9]$/", ["node2"]),
    ("region==us-*", ["node1", "node2"]),
    ("region!=us-east", ["node2", "other"]),
    ("storage==disk", ["node2"]),                 # label keys compare case-insensitively
    ("storage!=ssd", ["node2", "other"]),         # a node without the label is not "ssd"
    ("storagedriver==overlay2", ["node1"]),
    ("architecture==x86_64", ["node1", "node2", "other"]),   # engine facts when not in the labels
    ("kernelversion==6.*", ["node1", "node2", "other"]),
    ("ostype==linux", ["node1", "node2", "other"]),
    ("REGION==eu", ["other"]),
])
def test_constraint(rule, where):
    assert run(ConstraintFilter(), spec(env=[f"constraint:{rule}"]), con_nodes()) == where


def test_constraint_plain_values_are_exact():
    with pytest.raises(NoSuitableNode):
        run(ConstraintFilter(), spec(env=["constraint:region==US-EAST"]), con_nodes())
    with pytest.raises(NoSuitableNode):
        run(ConstraintFilter(), spec(env=["constraint:region==us"]), con_nodes())


def test_constraint_message_names_the_rule():
    with pytest.raises(NoSuitableNode) as err:
        run(ConstraintFilter(), spec(env=["constraint:node==node9"]), con_nodes())
    assert str(err.value) == "Unable to find a node that satisfies the following conditions \n[node==node9]"
    assert err.value.filter == "constraint" and err.value.conditions == ("node==node9",)


def test_soft_constraint():
    s = spec(env=["constraint:region==~eu", "constraint:node==~node9"])
    assert run(ConstraintFilter(), s, con_nodes()) == ["other"]
    assert run(ConstraintFilter(), s, con_nodes(), soft=False) == ["node1", "node2", "other"]


def test_a_stopped_container_of_the_same_compose_service_and_number_gives_its_ports_to_its_replacement():
    ident = {"com.docker.compose.project": "p", "com.docker.compose.service": "web",
             "com.docker.compose.container-number": "1"}
    busy = [PortBinding("0.0.0.0", 8080, "tcp")]
    nodes = [node("a", containers=[ctr("old", state="exited", labels=ident, ports=busy)]),
             node("b", containers=[ctr("other", state="exited", labels={**ident, "com.docker.compose.container-number": "2"},
                                       ports=busy)])]
    wanted = ports(("", 8080, "tcp"))
    assert run(PortFilter(), spec(Labels=ident, hc=wanted), nodes) == ["a"]
    with pytest.raises(NoSuitableNode):      # a new container of another number, or none of compose's
        run(PortFilter(), spec(Labels={**ident, "com.docker.compose.container-number": "3"}, hc=wanted), nodes)
    with pytest.raises(NoSuitableNode):
        run(PortFilter(), spec(hc=wanted), nodes)
