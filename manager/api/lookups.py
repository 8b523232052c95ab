"""How handlers find what a request names: a container and its node, the nodes holding an image,
the node of an exec instance, the healthy nodes to ask. Each raises the ApiError the engine would."""
from __future__ import annotations

from swarmd.manager.cluster import ClusterView, NodeView
from swarmd.manager.container_records import ContainerRecord
from swarmd.manager.httpd.errors import ApiError


def container_and_node(cluster: ClusterView, ref: str) -> tuple[ContainerRecord, NodeView]:
    """By ID, name, `node/name` or ID prefix; 404 `No such container` as the engine words it."""
    rec = cluster.find_container(ref)
    return rec, cluster.node_of(rec)


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
    """The node an exec instance was created on; 404 as the engine words it."""
    node_id = cluster.execs.get(exec_id)
    view = cluster.nodes.get(node_id) if node_id else None
    if view is None:
        raise ApiError(404, f"No such exec instance: {exec_id}")
    return view


def healthy_nodes(cluster: ClusterView, purpose: str) -> list[NodeView]:
    """The healthy nodes, by name; 500 `no healthy node {purpose}` when there is none."""
    nodes = cluster.healthy_nodes()
    if not nodes:
        raise ApiError(500, f"no healthy node {purpose}")
    return nodes
