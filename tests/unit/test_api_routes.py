"""The manager's route table: every endpoint once, each a named handler taking (ctx, req) that can be
imported and called alone; image and container lookups answer 404 as the engine words them."""
from __future__ import annotations

import asyncio
import inspect
from functools import partial

import pytest

from swarmd.manager.api import build_router, containers, execs, images, routes, system
from swarmd.manager.api.context import ManagerContext
from swarmd.manager.api.lookups import image_matches
from swarmd.manager.cluster import ClusterView
from swarmd.manager.container_actions import ACTIONS
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.request import Headers, Request
from swarmd.manager.scheduler import Scheduler


def _empty_cluster() -> ManagerContext:
    return ManagerContext(cluster=ClusterView(client_factory=lambda n: None), scheduler=Scheduler())


def _request(method: str, path: str, params: dict[str, str] | None = None, **query: str) -> Request:
    return Request(method, path, {k: [v] for k, v in query.items()}, Headers([]), b"", "1.41", params or {})


def _named_function(handler):
    while isinstance(handler, partial):
        handler = handler.func
    return handler


def test_every_route_is_listed_once():
    keys = [(method, pattern) for method, pattern, _ in routes.ROUTES]
    assert len(keys) == len(set(keys))


def test_every_handler_is_a_module_level_function_of_ctx_and_req():
    for method, pattern, handler in routes.ROUTES:
        func = _named_function(handler)
        assert inspect.iscoroutinefunction(func), (method, pattern)
        assert "<locals>" not in func.__qualname__, (method, pattern)
        assert list(inspect.signature(func).parameters)[:2] == ["ctx", "req"], (method, pattern)


def test_the_router_serves_the_table_in_its_order():
    router = build_router(_empty_cluster())
    assert router.patterns() == [(m, p) for m, p, _ in routes.ROUTES]


def test_each_container_action_but_remove_has_its_own_route():
    routed = {(pattern, handler.keywords["action"]) for _, pattern, handler in routes.ROUTES
              if isinstance(handler, partial) and handler.func is containers.container_action}
    assert routed == {(f"/containers/{{id:path}}/{name}", name) for name in ACTIONS if name != "remove"}


def test_ping_answers_alone():
    resp = asyncio.run(system.ping(_empty_cluster(), _request("GET", "/_ping")))
    assert (resp.status, resp.body) == (200, b"OK")


@pytest.mark.parametrize("handler", [images.inspect_image, images.remove_image, images.tag_image,
                                     images.image_history, images.push_image, images.save_image])
def test_an_image_no_node_holds_is_no_such_image(handler):
    with pytest.raises(ApiError) as err:
        asyncio.run(handler(_empty_cluster(), _request("GET", "/images/x", {"name": "busybox"}, tag="1")))
    assert (err.value.status, err.value.message) == (404, "No such image: busybox")


def test_an_unknown_container_and_exec_are_404():
    with pytest.raises(ApiError) as err:
        asyncio.run(containers.inspect_container(_empty_cluster(), _request("GET", "/", {"id": "web"})))
    assert (err.value.status, err.value.message) == (404, "No such container: web")
    with pytest.raises(ApiError) as err:
        asyncio.run(execs.inspect_exec(_empty_cluster(), _request("GET", "/", {"id": "e1"})))
    assert (err.value.status, err.value.message) == (404, "No such exec instance: e1")


def test_calls_needing_a_healthy_node_say_so_when_there_is_none():
    for handler, why in ((images.search_images, "to search from"), (images.load_images, "to load on"),
                         (system.auth, "to check the credentials with")):
        with pytest.raises(ApiError) as err:
            asyncio.run(handler(_empty_cluster(), _request("POST", "/")))
        assert (err.value.status, err.value.message) == (500, f"no healthy node {why}")


def test_images_are_named_by_id_prefix_or_tag():
    img = {"Id": "sha256:0123456789ab", "RepoTags": ["busybox:latest", "registry:5000/app:1"]}
    assert image_matches(img, "busybox")
    assert image_matches(img, "busybox:latest")
    assert image_matches(img, "registry:5000/app:1")
    assert not image_matches(img, "registry:5000/app")        # a port is not a tag: means app:latest
    assert image_matches(img, "0123")
    assert image_matches(img, "sha256:0123456789ab")
    assert not image_matches(img, "012")                      # too short to be an ID prefix
    assert not image_matches(img, "alpine")
