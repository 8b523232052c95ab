"""Reading Docker create bodies into ContainerSpec, and moving swarm rules from Env to labels."""
import json

import pytest

from swarmd.manager.scheduler import ContainerSpec, InvalidSpec, normalized_create_body
from swarmd.manager.scheduler.container_spec import AFFINITIES_LABEL, CONSTRAINTS_LABEL, RESCHEDULE_LABEL, Dependency
from swarmd.manager.scheduler.filters.expressions import parse_expression
from swarmd.manager.scheduler.snapshot import PortBinding


def test_minimal_body():
    spec = ContainerSpec.from_create({"Image": "busybox"}, None)
    assert spec.name is None and spec.image == "busybox"
    assert (spec.constraints, spec.affinities, spec.ports, spec.dependencies) == ((), (), (), ())
    assert spec.memory == 0 and spec.cpus == 0.0 and not spec.has_soft_rules
    assert ContainerSpec.from_create({"Image": "x"}, "/web").name == "web"


def test_rules_from_env_and_labels():
    body = {
        "Image": "busybox",
        "Env": ["A=1", "constraint:node==node1", "affinity:container!=~web", "reschedule:on-node-failure",
                "PATH=/usr/bin:/bin"],
        "Labels": {CONSTRAINTS_LABEL: json.dumps(["region==us"]), "tier": "front"},
    }
    spec = ContainerSpec.from_create(body, "c1")
    assert [str(e) for e in spec.constraints] == ["region==us", "node==node1"]
    assert [str(e) for e in spec.affinities] == ["container!=~web"]
    assert spec.has_soft_rules
    assert spec.reschedule_policies == ("on-node-failure",) and spec.reschedule_on_node_failure


def test_resources():
    spec = ContainerSpec.from_create(
        {"Image": "x", "HostConfig": {"Memory": 64 << 20, "NanoCpus": 1_500_000_000, "CpuShares": 512}}, None)
    assert spec.memory == 64 << 20 and spec.cpus == 512   # classic's `-c`: CpuShares are CPUs
    assert ContainerSpec.from_create({"Image": "x", "HostConfig": {"NanoCpus": 1_500_000_000}}, None).cpus == 1.5
    assert ContainerSpec.from_create({"Image": "x", "HostConfig": {"CpuShares": 2}}, None).cpus == 2.0


@pytest.mark.parametrize("hc", [{"Memory": -1}, {"Memory": "1g"}, {"NanoCpus": 1.5}, {"Memory": True}])
def test_bad_resources(hc):
    with pytest.raises(InvalidSpec, match="expected a non-negative integer"):
        ContainerSpec.from_create({"Image": "x", "HostConfig": hc}, None)


def test_port_bindings():
    hc = {"PortBindings": {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": "8081"}],
        "53/udp": [{"HostPort": "53"}],
        "443": [{"HostPort": ""}],                 # ephemeral
        "9000/tcp": [{"HostPort": "9000-9010"}],   # range: the engine picks
        "22/tcp": None,
    }}
    spec = ContainerSpec.from_create({"Image": "x", "HostConfig": hc}, None)
    assert spec.ports == (PortBinding("0.0.0.0", 8080, "tcp"), PortBinding("127.0.0.1", 8081, "tcp"),
                          PortBinding("0.0.0.0", 53, "udp"))


@pytest.mark.parametrize("port, message", [("http", "expected a number or a range"), ("70000", "expected 1-65535")])
def test_bad_host_port(port, message):
    with pytest.raises(InvalidSpec, match=message):
        ContainerSpec.from_create({"Image": "x", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": port}]}}}, None)


def test_host_network_uses_exposed_ports():
    body = {"Image": "x", "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "HostConfig": {"NetworkMode": "host", "PortBindings": {"80/tcp": [{"HostPort": "1234"}]}}}
    spec = ContainerSpec.from_create(body, None)
    assert spec.network_mode == "host"
    assert set(spec.ports) == {PortBinding("0.0.0.0", 80, "tcp"), PortBinding("0.0.0.0", 53, "udp")}


def test_dependencies():
    hc = {"VolumesFrom": ["data:ro", "/logs"], "Links": ["/db:/web/db", "cache:c"], "NetworkMode": "container:proxy"}
    spec = ContainerSpec.from_create({"Image": "x", "HostConfig": hc}, None)
    assert spec.dependencies == (
        Dependency("volumes-from", "data", "--volumes-from=data:ro"),
        Dependency("volumes-from", "logs", "--volumes-from=/logs"),
        Dependency("link", "db", "--link=/db:/web/db"),
        Dependency("link", "cache", "--link=cache:c"),
        Dependency("net", "proxy", "--net=container:proxy"),
    )
    with pytest.raises(InvalidSpec, match="expected container:NAME"):
        ContainerSpec.from_create({"Image": "x", "HostConfig": {"NetworkMode": "container:"}}, None)


@pytest.mark.parametrize("env, message", [
    ("constraint:foo", 'invalid constraint "foo": expected KEY==VALUE or KEY!=VALUE'),
    ("constraint:node==", 'invalid constraint "node==": expected a value after "=="'),
    ("affinity:9x==y", 'invalid affinity "9x==y": key "9x" must start with a letter'),
    ("affinity:image==/[/", 'invalid affinity "image==/\\[/": bad regular expression'),
    ("reschedule:always", 'invalid reschedule policy "always": expected one of off, on-node-failure'),
])
def test_malformed_env_rules(env, message):
    with pytest.raises(InvalidSpec, match=message):
        ContainerSpec.from_create({"Image": "x", "Env": [env]}, None)


def test_too_many_reschedule_policies():
    with pytest.raises(InvalidSpec, match="too many reschedule policies"):
        ContainerSpec.from_create({"Image": "x", "Env": ["reschedule:off", "reschedule:on-node-failure"]}, None)


@pytest.mark.parametrize("raw", ["node==node1", '{"a": 1}', "[1, 2]", "[nope"])
def test_malformed_rule_labels(raw):
    with pytest.raises(InvalidSpec, match=f"invalid label {CONSTRAINTS_LABEL}=.*expected a JSON list of strings"):
        ContainerSpec.from_create({"Image": "x", "Labels": {CONSTRAINTS_LABEL: raw}}, None)


@pytest.mark.parametrize("body, message", [
    ({"Image": "x", "Env": "A=1"}, "invalid Env"),
    ({"Image": "x", "Labels": ["a=b"]}, "invalid Labels"),
    ({"Image": "x", "HostConfig": []}, "invalid HostConfig"),
    ({"Image": "x", "HostConfig": {"PortBindings": [1]}}, "invalid HostConfig.PortBindings"),
])
def test_malformed_sections(body, message):
    with pytest.raises(InvalidSpec, match=message):
        ContainerSpec.from_create(body, None)


def test_normalized_body_moves_env_rules_into_labels_without_touching_the_input():
    body = {"Image": "busybox", "Cmd": ["true"],
            "Env": ["A=1", "constraint:node==node1", "affinity:image==busybox", "reschedule:on-node-failure"],
            "Labels": {CONSTRAINTS_LABEL: '["region==us"]', "tier": "front"}}
    before = json.loads(json.dumps(body))
    out = normalized_create_body(body)
    assert body == before
    assert out["Env"] == ["A=1"] and out["Cmd"] == ["true"] and out["Image"] == "busybox"
    assert json.loads(out["Labels"][CONSTRAINTS_LABEL]) == ["region==us", "node==node1"]
    assert json.loads(out["Labels"][AFFINITIES_LABEL]) == ["image==busybox"]
    assert json.loads(out["Labels"][RESCHEDULE_LABEL]) == ["on-node-failure"]
    assert out["Labels"]["tier"] == "front"
    spec = ContainerSpec.from_create(body, "x")
    assert spec.normalized_create_body(body) == out


def test_normalization_is_idempotent_and_keeps_the_spec():
    body = {"Image": "x", "Env": ["constraint:node==n1", "constraint:node==n1", "affinity:container==~db"]}
    once = normalized_create_body(body)
    assert normalized_create_body(once) == once
    assert json.loads(once["Labels"][CONSTRAINTS_LABEL]) == ["node==n1"]
    assert ContainerSpec.from_create(once, None) == ContainerSpec.from_create(body, None)


def test_normalization_leaves_plain_bodies_alone():
    assert normalized_create_body({"Image": "x"}) == {"Image": "x"}
    assert normalized_create_body({"Image": "x", "Env": None, "Labels": None}) == {"Image": "x", "Env": None, "Labels": {}}
    assert normalized_create_body({"Image": "x", "Env": ["A=1"]}) == {"Image": "x", "Env": ["A=1"]}


def test_expression_parsing():
    e = parse_expression("constraint", " Region == ~us-* ")
    assert (e.key, e.operator, e.value, e.soft, e.is_plain) == ("region", "==", "us-*", True, False)
    assert str(e) == "region==~us-*"
    e = parse_expression("constraint", "node!=/node[12]/")
    assert e.operator == "!=" and e.matches_one("xnode1") and not e.matches_one("node3")
    # the first operator in the text splits it
    assert parse_expression("affinity", "a!=b==c").value == "b==c"
    assert parse_expression("affinity", "com.example.tier==db").key == "com.example.tier"


def test_expression_matching():
    glob = parse_expression("constraint", "node==node.*")
    assert glob.matches_one("node.1") and not glob.matches_one("nodex1")   # only * is special
    assert parse_expression("constraint", "k==a*b*").matches_one("axxbyy")
    plain = parse_expression("constraint", "k==Node1")
    assert plain.matches_one("Node1") and not plain.matches_one("node1")
    assert parse_expression("constraint", "k==/(?i)node1/").matches_one("NODE1")
    ne = parse_expression("constraint", "k!=a")
    assert ne.accepts(["b"]) and not ne.accepts(["b", "a"]) and ne.accepts([])


@pytest.mark.parametrize("hc", [{"Links": "db:db"}, {"VolumesFrom": [1]}])
def test_malformed_dependency_lists(hc):
    with pytest.raises(InvalidSpec, match="expected a list of strings"):
        ContainerSpec.from_create({"Image": "x", "HostConfig": hc}, None)
