"""Builds through the manager (what a `POST /build` query asks of the scheduler, how the output
names its node) and classic's image affinity: a create whose node cannot get the image is retried
on a node that holds it, never against a node constraint."""
from __future__ import annotations

import json

import pytest

from swarmd.manager.api.build import BUILDKIT_REFUSED, BuildLines, plan_build
from swarmd.manager.cluster import ClusterView
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.placement import Placement
from swarmd.manager.scheduler import ContainerSpec, Scheduler
from tests.unit.test_placement import add_node


def test_rule_build_args_steer_the_build_and_never_reach_the_engine():
    # the CLI sends `--build-arg constraint:node==node2` as the arg `constraint:node` = `=node2`
    args = {"constraint:node": "=node2", "affinity:image": "=busybox", "VERSION": "1", "EMPTY": None}
    plan = plan_build({"t": ["app:1", "app:latest"], "buildargs": [json.dumps(args)], "memory": ["1048576"],
                       "rm": ["1"]})
    spec = ContainerSpec.from_create(plan.spec_body)
    assert [str(e) for e in spec.constraints] == ["node==node2"]
    assert [str(e) for e in spec.affinities] == ["image==busybox"]
    assert spec.memory == 1 << 20
    query = dict(plan.engine_query)
    assert json.loads(query["buildargs"]) == {"VERSION": "1", "EMPTY": None}
    assert [v for k, v in plan.engine_query if k == "t"] == ["app:1", "app:latest"]
    assert query["rm"] == "1" and query["memory"] == "1048576"


def test_a_build_with_only_rule_args_sends_the_engine_none():
    plan = plan_build({"buildargs": [json.dumps({"constraint:node": "=n1"})]})
    assert "buildargs" not in dict(plan.engine_query)


@pytest.mark.parametrize("query, status, text", [
    ({"version": ["2"]}, 501, BUILDKIT_REFUSED),
    ({"buildargs": ["{not json"]}, 400, "invalid buildargs"),
    ({"buildargs": ['["a"]']}, 400, "invalid buildargs"),
    ({"memory": ["lots"]}, 400, "invalid memory"),
])
def test_malformed_and_buildkit_builds_are_refused(query, status, text):
    with pytest.raises(ApiError) as err:
        plan_build(query)
    assert err.value.status == status and text in err.value.message
    assert "DOCKER_BUILDKIT=0" in BUILDKIT_REFUSED


def test_the_classic_builder_version_is_accepted():
    assert ("version", "1") in plan_build({"version": ["1"]}).engine_query


def test_each_output_line_names_its_node_once():
    lines = BuildLines("node2", quiet=False)
    out = [lines.name(d) for d in ({"stream": "Step 1/2 : FROM busybox"}, {"stream": "\n"},
                                   {"stream": " ---> 713d70fc466b\n"},
                                   {"status": "Downloading", "id": "abc123", "progressDetail": {}},
                                   {"aux": {"ID": "sha256:1"}},
                                   {"error": "boom", "errorDetail": {"message": "boom"}})]
    assert [d.get("id") for d in out] == ["node2", None, "node2", "node2: abc123", None, None]
    assert out[-1]["error"] == "boom"


def test_a_quiet_build_prints_the_bare_image_id():
    assert BuildLines("node2", quiet=True).name({"stream": "sha256:1\n"}) == {"stream": "sha256:1\n"}


def _holding(view, ref: str) -> None:
    view.images = [{"Id": "sha256:" + "ab" * 32, "RepoTags": [ref]}]
    view.changed()


async def _cluster_with_a_built_image():
    cluster = ClusterView(client_factory=lambda n: None)
    n1, n2 = add_node(cluster, "n1"), add_node(cluster, "n2")
    placement = Placement(cluster, Scheduler())
    await placement.create("", {"Image": "busybox", "Env": ["constraint:node==n2"]})  # spread now prefers n1
    _holding(n2, "built:1")
    n1.client.fail = ApiError(500, "pull access denied for built")
    return cluster, placement, n1, n2


async def test_a_create_the_chosen_node_cannot_get_the_image_for_lands_where_the_image_is():
    cluster, placement, n1, n2 = await _cluster_with_a_built_image()
    placed = await placement.create("web", {"Image": "built:1"})
    assert n1.client.creating.is_set()        # tried first where spread put it
    assert placed.node is n2
    assert "com.docker.swarm.affinities" not in cluster.find_container("web").doc["Config"]["Labels"]
    assert not placement.names_in_flight and not n1.pending and not n2.pending


async def test_a_node_constraint_or_an_image_nowhere_keeps_the_first_error():
    _, placement, n1, _ = await _cluster_with_a_built_image()
    with pytest.raises(ApiError) as err:
        await placement.create("", {"Image": "built:1", "Env": ["constraint:node==n1"]})
    assert err.value.message == "pull access denied for built"
    with pytest.raises(ApiError) as err:
        await placement.create("", {"Image": "nowhere:1", "Env": ["affinity:container!=nothing"]})
    assert err.value.message == "pull access denied for built"
