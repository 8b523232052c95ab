"""Classic swarm's scheduling behaviours as pure policy: the shell-escaped `\\!=`, the no-fit error
in classic's words, `--cpu-shares` as CPUs, and the `swarm.overcommit` ratio."""
import json

import pytest

from swarmd.manager.config import ClusterOpts, check_cluster_opts
from swarmd.manager.scheduler import ContainerSpec, NoSuitableNode, Scheduler, normalized_create_body
from swarmd.manager.scheduler.container_spec import RESERVED_CPUS_LABEL, engine_cpu_shares, reserved_cpus
from swarmd.manager.scheduler.snapshot import PortBinding
from swarmd.common.config import ConfigError
from tests.unit.test_scheduler_snapshot import GiB, ctr, node

UNSATISFIED = "Unable to find a node that satisfies the following conditions "


def spec(env=(), hc=None, labels=None):
    body = {"Image": "busybox", "Env": list(env), "HostConfig": hc or {}}
    if labels is not None:
        body["Labels"] = labels
    return ContainerSpec.from_create(body, None)


# -- the shell-escaped `\!=` ----------------------------------------------------------------------

@pytest.mark.parametrize("env", [["constraint:node\\!=node1"], ["constraint:node!=node1"]])
def test_escaped_not_equal_in_env(env):
    s = spec(env)
    assert [str(e) for e in s.constraints] == ["node!=node1"]
    assert Scheduler().select(s, [node("node1"), node("node2", n_containers=3)]).name == "node2"


def test_escaped_not_equal_in_the_json_label_is_read_and_stored_as_valid_json():
    raw = '["node\\!=node1","node\\!=node2"]'      # what `--label 'com.docker.swarm.constraints=["node\!=node1",…]'` sends
    with pytest.raises(ValueError):
        json.loads(raw)
    s = spec(labels={"com.docker.swarm.constraints": raw})
    assert [str(e) for e in s.constraints] == ["node!=node1", "node!=node2"]
    nodes = [node("node1"), node("node2"), node("node3", n_containers=5)]
    assert Scheduler().select(s, nodes).name == "node3"
    body = normalized_create_body({"Image": "busybox", "Labels": {"com.docker.swarm.constraints": raw},
                                   "Env": ["affinity:container\\!=web"]})
    assert json.loads(body["Labels"]["com.docker.swarm.constraints"]) == ["node!=node1", "node!=node2"]
    assert json.loads(body["Labels"]["com.docker.swarm.affinities"]) == ["container!=web"]


def test_a_label_that_is_not_json_for_another_reason_is_still_refused():
    with pytest.raises(Exception, match="invalid label com.docker.swarm.constraints"):
        spec(labels={"com.docker.swarm.constraints": '["node\\!=node1"'})


# -- the no-fit error -----------------------------------------------------------------------------

def test_no_fit_lists_every_filter_applied_a_line_each_as_classic():
    busy = [PortBinding("0.0.0.0", 80, "tcp")]
    nodes = [node("node1", containers=[ctr("a", ports=busy)]), node("node2", containers=[ctr("b", state="exited", ports=busy)])]
    hc = {"PortBindings": {"80/tcp": [{"HostPort": "80"}]}}
    with pytest.raises(NoSuitableNode) as err:
        Scheduler().select(spec(hc=hc), nodes)
    assert str(err.value) == UNSATISFIED + "\n[port 80 (Bridge mode)]"
    with pytest.raises(NoSuitableNode) as err:
        Scheduler().select(spec(["affinity:container==~a", "constraint:node==node9"], hc={}), nodes)
    assert str(err.value) == (UNSATISFIED + "\n[available container slots]\n[container==a (soft=true)]\n[node==node9]")
    host = {"NetworkMode": "host"}
    with pytest.raises(NoSuitableNode) as err:
        Scheduler().select(ContainerSpec.from_create({"Image": "b", "ExposedPorts": {"80/tcp": {}}, "HostConfig": host},
                                                     None), nodes)
    assert str(err.value) == UNSATISFIED + "\n[port 80/tcp (Host mode)]"


# -- CPUs as classic's `-c` -----------------------------------------------------------------------

def test_cpu_shares_reserve_cpus_and_become_the_nodes_share():
    s = spec(hc={"CpuShares": 1})
    assert s.cpus == 1.0
    body = s.normalized_create_body({"Image": "busybox", "HostConfig": {"CpuShares": 1}}, node_cpus=2)
    assert body["HostConfig"]["CpuShares"] == 512 and body["Labels"][RESERVED_CPUS_LABEL] == "1"
    assert engine_cpu_shares(1, 3) == 342 and engine_cpu_shares(0.001, 64) == 2
    # read back from the engine-held document, and asked again by a rescheduled copy
    assert reserved_cpus(body, body["HostConfig"]) == 1.0
    assert spec(hc=body["HostConfig"], labels=body["Labels"]).cpus == 1.0
    assert reserved_cpus({}, {"CpuShares": 1024}) == 0.0      # not asked through the manager
    assert reserved_cpus({"Labels": {RESERVED_CPUS_LABEL: "nan"}}, {"NanoCpus": 5e8}) == 0.5


def test_cpu_shares_beyond_every_node_have_no_resources():
    nodes = [node("a", cpus=2.0), node("b", cpus=2.0, containers=[ctr("x", cpus=1.0)])]
    assert Scheduler().select(spec(hc={"CpuShares": 2}), nodes).name == "a"
    with pytest.raises(NoSuitableNode, match="^no resources available to schedule container"):
        Scheduler().select(spec(hc={"CpuShares": 3}), nodes)


# -- swarm.overcommit -----------------------------------------------------------------------------

def test_overcommit_enlarges_what_may_be_reserved():
    nodes = [node("a", cpus=2.0, memory=GiB)]
    wants = spec(hc={"Memory": GiB + GiB // 20})
    with pytest.raises(NoSuitableNode, match="no resources available"):
        Scheduler().select(wants, nodes)
    assert Scheduler(overcommit=0.05).select(wants, nodes).name == "a"
    with pytest.raises(NoSuitableNode, match="no resources available"):
        Scheduler(overcommit=-0.5).select(spec(hc={"CpuShares": 2}), nodes)
    with pytest.raises(ValueError):
        Scheduler(overcommit=-1)


@pytest.mark.parametrize("values, opts", [
    (None, ClusterOpts()),
    (["swarm.overcommit=0.05"], ClusterOpts(overcommit=0.05)),
    (["swarm.overcommit=-0.5", "swarm.createretry=2"], ClusterOpts(overcommit=-0.5, create_retry=2)),
    (["swarm.createretry=1", "swarm.createretry=3"], ClusterOpts(create_retry=3)),
])
def test_cluster_opts(values, opts):
    assert check_cluster_opts(values) == opts


@pytest.mark.parametrize("value, words", [
    ("swarm.nosuch=1", "unknown option 'swarm.nosuch'"), ("overcommit", "use KEY=VALUE"),
    ("swarm.overcommit=-1", "larger than -1"), ("swarm.overcommit=lots", "larger than -1"),
    ("swarm.overcommit=inf", "larger than -1"), ("swarm.createretry=-1", "0 or more"),
    ("swarm.createretry=1.5", "0 or more"),
])
def test_cluster_opts_refused(value, words):
    with pytest.raises(ConfigError, match=words):
        check_cluster_opts([value])
