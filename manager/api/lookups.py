"""How handlers find what a request names: a container and its node, the nodes holding an image,
the node of an exec instance, the healthy nodes to ask. Each raises the ApiError the engine would."""
from __future__ import annotations

import functools
import re

from swarmd.manager.cluster import ClusterView, NodeView
from swarmd.manager.container_records import ContainerRecord
from swarmd.manager.httpd.errors import ApiError

# what an agent answers when it (or its engine) cannot be reached: its text names agent internals
# (the engine's socket, the agent's address), so a container call says what classic said instead
_UNREACHABLE = (503, 504)
_HEX64 = re.compile(r"^[a-f0-9]{64}$")


def unhealthy_node_error(ref: str, node_name: str) -> ApiError:
    # classic's text and status: api/utils.go getContainerFromVars, api/handlers.go getContainerJSON
    return ApiError(500, f"Container {ref} running on unhealthy node {node_name}")


def container_and_node(cluster: ClusterView, ref: str) -> tuple[ContainerRecord, NodeView]:
    """By ID, name, swarm ID, `node/name` or ID prefix; 404 `No such container` as the engine words
    it, 500 as classic swarm when the container's node is unhealthy."""
    rec = cluster.find_container(ref)
    view = cluster.node_of(rec)
    if not view.healthy:
        raise unhealthy_node_error(ref, view.name)
    return rec, view


async def settled_container_and_node(cluster: ClusterView, ref: str) -> tuple[ContainerRecord, NodeView]:
    """container_and_node for a handler that does not wait for answered changes to be stored
    first: when `ref` is not found while one is being stored, it waits for that and looks again
    (a `docker start` right after the create it follows)."""
    try:
        return container_and_node(cluster, ref)
    except ApiError as err:
        if err.status != 404 or not cluster.settling:
            raise
    await cluster.settled_container(ref)
    return container_and_node(cluster, ref)


def _unreachable_as_unhealthy(error_for):
    """A decorator for handlers of one resource: a node found unreachable during the call answers
    as an unhealthy one does (`error_for(ctx, ref)`), without the agent's own words."""
    def wrap(handler):
        @functools.wraps(handler)
        async def call(ctx, req, *args, **kwargs):
            try:
                return await handler(ctx, req, *args, **kwargs)
            except ApiError as err:
                if err.status not in _UNREACHABLE:
                    raise
                raise error_for(ctx, req.params.get("id", "")) from None
        return call
    return wrap


def _container_unreachable(ctx, ref: str) -> ApiError:
    return unhealthy_node_error(ref, ctx.cluster.find_container(ref).node_name)


def _exec_unreachable(ctx, exec_id: str) -> ApiError:
    view = ctx.cluster.nodes.get(ctx.cluster.execs.get(exec_id, ""))
    return unhealthy_exec_error(exec_id, view.name if view else "(gone)")


# `/containers/{id}/…` handlers
on_container_node = _unreachable_as_unhealthy(_container_unreachable)


def refuse_hex_image(cluster: ClusterView, image: object) -> None:
    """A 64-hex image reference names an image ID, never a repository: unless a node holds that
    image, refuse it in the engine's words (reference validation, as its pull answers) rather
    than try to pull it (400)."""
    if isinstance(image, str) and _HEX64.match(image) and not image_holders(cluster, f"sha256:{image}"):
        raise ApiError(400, f"invalid repository name ({image}), cannot specify 64-byte hexadecimal strings")


def image_matches(img: dict, ref: str) -> bool:
    """Whether an engine image row is the one `ref` names: by ID (4 characters at least) or tag."""
    if img.get("Id") == ref or img.get("Id", "").removeprefix("sha256:").startswith(ref.removeprefix("sha256:")):
        return len(ref.removeprefix("sha256:")) >= 4
    tags = img.get("RepoTags") or []
    return ref in tags or (":" not in ref.rsplit("/", 1)[-1] and f"{ref}:latest" in tags)


def image_holders(cluster: ClusterView, ref: str) -> list[NodeView]:
    """The healthy nodes holding the image `ref` names; none is not an error here."""
    return [v for v in cluster.nodes.values() if v.healthy and any(image_matches(i, ref) for i in v.images)]


def nodes_with_image(cluster: ClusterView, name: str, tag: str | None = None) -> list[NodeView]:
    """The healthy nodes holding `name` (those holding `name:tag` when any do); 404 `No such image`."""
    nodes = (image_holders(cluster, f"{name}:{tag}") if tag else []) or image_holders(cluster, name)
    if not nodes:
        raise ApiError(404, f"No such image: {name}")
    return nodes


def exec_node(cluster: ClusterView, exec_id: str) -> NodeView:
    """The node an exec instance was created on; 404 as the engine words it, 500 in classic's
    words when that node is unhealthy."""
    node_id = cluster.execs.get(exec_id)
    view = cluster.nodes.get(node_id) if node_id else None
    if view is None:
        raise ApiError(404, f"No such exec instance: {exec_id}")
    if not view.healthy:
        raise unhealthy_exec_error(exec_id, view.name)
    return view


def unhealthy_exec_error(exec_id: str, node_name: str) -> ApiError:
    return ApiError(500, f"Exec instance {exec_id} running on unhealthy node {node_name}")


# `/exec/{id}/…` handlers
on_exec_node = _unreachable_as_unhealthy(_exec_unreachable)


def healthy_nodes(cluster: ClusterView, purpose: str) -> list[NodeView]:
    """The healthy nodes, by name; 500 `no healthy node {purpose}` when there is none."""
    nodes = cluster.healthy_nodes()
    if not nodes:
        raise ApiError(500, f"no healthy node {purpose}")
    return nodes
