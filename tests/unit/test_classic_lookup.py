"""Classic swarm's container lookup and listing as pure policy and on a live view with in-memory
agents: the `com.docker.swarm.id` label (made, kept, looked up), `limit` implying `all`, the
ancestor and before/since filters, the 64-hex image refusal and the unhealthy-node answers."""
from __future__ import annotations

import json
import re

import pytest

from swarmd.manager import container_filters
from swarmd.manager.api import containers, execs
from swarmd.manager.api.context import ManagerContext
from swarmd.manager.api.lookups import container_and_node, exec_node, on_container_node, refuse_hex_image
from swarmd.manager.cluster import ClusterView
from swarmd.manager.container_records import SWARM_ID_LABEL, ContainerRecord
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.request import Headers, Request
from swarmd.manager.placement import Placement, with_swarm_id
from swarmd.manager.rescheduler import Rescheduler
from swarmd.manager.scheduler import Scheduler
from swarmd.proto.swarm.v1 import types_pb2
from tests.unit.test_placement import POLICY, add_node

HEX64 = "0123456789abcdef" * 4


def _request(params: dict[str, str] | None = None, **query: str) -> Request:
    return Request("GET", "/containers/json", {k: [v] for k, v in query.items()}, Headers([]), b"", "1.41",
                   params or {})


# -- the swarm ID label ------------------------------------------------------------------------

def test_a_create_body_gets_a_new_random_swarm_id_unless_it_has_one():
    body = {"Image": "busybox", "Labels": {"tier": "web"}}
    out = with_swarm_id(body, lambda sid: False)
    assert re.fullmatch(r"[0-9a-f]{64}", out["Labels"][SWARM_ID_LABEL]) and out["Labels"]["tier"] == "web"
    assert SWARM_ID_LABEL not in body["Labels"]                          # the caller's body is left alone
    assert with_swarm_id({"Image": "busybox"}, lambda sid: False)["Labels"][SWARM_ID_LABEL] != \
        with_swarm_id({"Image": "busybox"}, lambda sid: False)["Labels"][SWARM_ID_LABEL]
    given = {"Image": "busybox", "Labels": {SWARM_ID_LABEL: "mine"}}
    assert with_swarm_id(given, lambda sid: True) is given
    malformed = {"Image": "busybox", "Labels": ["not", "a", "map"]}
    assert with_swarm_id(malformed, lambda sid: False) is malformed     # refused later, as it is


def test_a_swarm_id_already_held_is_never_made_again():
    seen = []

    def taken(sid: str) -> bool:
        seen.append(sid)
        return len(seen) < 3
    out = with_swarm_id({"Image": "busybox"}, taken)
    assert len(seen) == 3 and out["Labels"][SWARM_ID_LABEL] == seen[-1]


async def test_placed_containers_are_found_by_swarm_id_and_a_rescheduled_one_keeps_it():
    cluster = ClusterView(client_factory=lambda n: None)
    lost, other = add_node(cluster, "n1"), add_node(cluster, "n2")
    placement = Placement(cluster, Scheduler())
    placed = await placement.create("web", {"Image": "busybox", "Labels": dict(POLICY)})
    rec = cluster.find_container("web")
    sid = rec.swarm_id
    assert re.fullmatch(r"[0-9a-f]{64}", sid)
    assert cluster.find_container(sid) is rec and cluster.find_container(sid[:12]) is rec
    assert cluster.by_swarm_id(sid) is rec

    home = cluster.nodes[rec.node_id]
    away = other if home is lost else lost
    home.node.state, home.connected = types_pb2.NODE_STATE_UNHEALTHY, False
    new_id, node_name = await Rescheduler(cluster, placement).recreate(rec)
    assert node_name == away.name and new_id != placed.id
    copy = cluster.find_container(new_id)
    assert copy.swarm_id == sid
    assert cluster.find_container(sid) is copy                      # the copy on a healthy node
    cluster.forget(away, new_id)
    assert cluster.find_container(sid) is rec                       # the stale one is all that is left
    cluster.forget(home, rec.id)
    with pytest.raises(ApiError) as err:
        cluster.find_container(sid)
    assert (err.value.status, err.value.message) == (404, f"No such container: {sid}")


async def test_a_short_swarm_id_yields_to_a_container_id_prefix():
    cluster = ClusterView(client_factory=lambda n: None)
    add_node(cluster, "n1")
    placement = Placement(cluster, Scheduler())
    first = await placement.create("aa", {"Image": "busybox"})
    await placement.create("bb", {"Image": "busybox", "Labels": {SWARM_ID_LABEL: first.id[:12] + "0" * 52}})
    assert cluster.find_container(first.id[:12]).name == "aa"
    assert cluster.find_container(first.id[:12] + "0" * 52).name == "bb"


# -- listing ------------------------------------------------------------------------------------

async def test_a_limit_lists_containers_in_every_state_as_the_engine():
    cluster = ClusterView(client_factory=lambda n: None)
    view = add_node(cluster, "n1")
    ctx = ManagerContext(cluster=cluster, scheduler=Scheduler())
    for name, created in (("two", "2024-01-01T00:00:03.9Z"), ("one", "2024-01-01T00:00:03.1Z")):
        placed = await ctx.placement.create(name, {"Image": "busybox"})   # within one second
        view.client.docs[placed.id]["Created"] = created
        await cluster.refresh_container(view, placed.id)

    async def names(**query) -> list[str]:
        resp = await containers.list_containers(ctx, _request(**query))
        return [row["Names"][0] for row in json.loads(resp.body)]
    assert await names() == []                                      # none running
    assert await names(limit="1") == ["/n1/two"]
    assert await names(limit="5") == ["/n1/two", "/n1/one"]
    assert await names(all="1") == ["/n1/two", "/n1/one"]


def _record(name: str, created: str, image: str = "busybox", image_id: str = "sha256:" + "ab" * 32) -> ContainerRecord:
    doc = {"Id": (name.encode().hex() * 64)[:64], "Name": f"/{name}", "Created": created, "Image": image_id,
           "State": {"Status": "running", "Running": True}, "Config": {"Image": image, "Labels": {}}}
    return ContainerRecord(node_id="n1", node_name="node1", doc=doc)


def test_before_and_since_order_containers_made_within_one_second():
    first = _record("first", "2026-01-01T10:00:00.100000Z")
    second = _record("second", "2026-01-01T10:00:00.900000Z")
    by_name = {"first": first, "second": second}

    def match(rec, **filters):
        return container_filters.matches(rec, rec.summary(), filters, by_name.__getitem__)
    assert first.summary()["Created"] == second.summary()["Created"]
    assert match(second, since=["first"]) and not match(first, since=["first"])
    assert match(first, before=["second"]) and not match(second, before=["second"])


@pytest.mark.parametrize("value,image,expected", [
    ("busybox", "busybox", True), ("busybox:latest", "busybox", True), ("busybox", "busybox:latest", True),
    ("docker.io/library/busybox", "busybox", True), ("busybox:1.36", "busybox", False),
    ("registry:5000/app", "registry:5000/app:latest", True), ("registry:5000/app", "registry:5000/app:2", False),
    ("abab", "busybox", True), ("sha256:abababab", "busybox", True), ("abac", "busybox", False),
    ("busy", "busybox", False), ("", "busybox", False),
])
def test_ancestor_names_the_image_in_any_spelling_or_by_id(value, image, expected):
    assert container_filters.is_ancestor(value, image, "sha256:" + "ab" * 32) is expected


# -- refusals -----------------------------------------------------------------------------------

def test_a_64_hex_image_no_node_holds_is_refused_in_the_engines_words():
    cluster = ClusterView(client_factory=lambda n: None)
    view = add_node(cluster, "n1")
    with pytest.raises(ApiError) as err:
        refuse_hex_image(cluster, HEX64)
    assert (err.value.status, err.value.message) == (
        400, f"invalid repository name ({HEX64}), cannot specify 64-byte hexadecimal strings")
    for fine in ("busybox", HEX64[:63], HEX64.upper() + ":1", None):
        refuse_hex_image(cluster, fine)
    view.images = [{"Id": f"sha256:{HEX64}", "RepoTags": []}]
    refuse_hex_image(cluster, HEX64)                                # an image ID a node holds: it runs


async def test_calls_on_an_unhealthy_node_answer_in_classic_words():
    cluster = ClusterView(client_factory=lambda n: None)
    view = add_node(cluster, "n1")
    ctx = ManagerContext(cluster=cluster, scheduler=Scheduler())
    placed = await ctx.placement.create("web", {"Image": "busybox"})
    cluster.execs["exec1"] = view.id
    assert container_and_node(cluster, "web")[1] is view
    view.connected = False
    with pytest.raises(ApiError) as err:
        container_and_node(cluster, "web")
    assert (err.value.status, err.value.message) == (500, "Container web running on unhealthy node n1")
    with pytest.raises(ApiError) as err:
        await containers.inspect_container(ctx, _request({"id": placed.id[:6]}))
    assert err.value.message == f"Container {placed.id[:6]} running on unhealthy node n1"
    with pytest.raises(ApiError) as err:
        exec_node(cluster, "exec1")
    assert (err.value.status, err.value.message) == (500, "Exec instance exec1 running on unhealthy node n1")
    with pytest.raises(ApiError) as err:
        await execs.inspect_exec(ctx, _request({"id": "exec1"}))
    assert err.value.status == 500


async def test_a_node_found_unreachable_during_a_call_answers_as_an_unhealthy_one():
    cluster = ClusterView(client_factory=lambda n: None)
    add_node(cluster, "n1")
    ctx = ManagerContext(cluster=cluster, scheduler=Scheduler())
    await ctx.placement.create("web", {"Image": "busybox"})

    @on_container_node
    async def handler(ctx, req, status):
        raise ApiError(status, "node n1 (n1:4100) is unreachable: Cannot connect to unix:///run/docker.sock")
    with pytest.raises(ApiError) as err:
        await handler(ctx, _request({"id": "web"}), status=503)
    assert (err.value.status, err.value.message) == (500, "Container web running on unhealthy node n1")
    with pytest.raises(ApiError) as err:
        await handler(ctx, _request({"id": "web"}), status=409)     # the engine's own answers pass
    assert err.value.status == 409


async def test_id_prefixes_are_found_as_the_engine_finds_them():
    cluster = ClusterView(client_factory=lambda n: None)
    view = add_node(cluster, "n1")
    twin_a, twin_b = "ab" * 6 + "0" * 52, "ab" * 6 + "1" * 52      # the same first 12 characters
    for cid, name in ((HEX64, "one"), (twin_a, "twin-a"), (twin_b, "twin-b")):
        cluster.took_read(view, {"Id": cid, "Name": "/" + name, "Config": {"Image": "busybox"},
                                 "State": {"Running": False}}, 0)
    assert cluster.find_container(HEX64[:5]).name == "one"              # short: every ID is looked at
    assert cluster.find_container(HEX64[:12]).name == "one"
    assert cluster.find_container(HEX64[:40]).name == "one"
    assert cluster.find_container(twin_a[:13]).name == "twin-a"         # past the 12 shared characters
    with pytest.raises(ApiError) as err:
        cluster.find_container(twin_a[:12])
    assert err.value.status == 400 and "multiple IDs found with provided prefix" in err.value.message
    for missing in ("f" * 64, HEX64 + "0", HEX64[:12] + "x"):
        with pytest.raises(ApiError) as err:
            cluster.find_container(missing)
        assert err.value.status == 404 and err.value.message == f"No such container: {missing}"
    cluster.forget(view, twin_b)                                        # removed: no longer ambiguous
    assert cluster.find_container(twin_a[:12]).name == "twin-a"
