"""`/nodes` handlers: swarm mode's node endpoints (API v1.41) over swarmd's nodes.

`docker node ls|inspect|update|rm` work unchanged: every node is a worker; Status.State is observed
(ready while the node is healthy, down otherwise); Spec.Availability and Spec.Labels are intent,
written to the intent store (see manager.intent) and applied when the store's watch brings them
back to the cluster view (at once in memory too, so the next call reads its own write).
Version.Index counts the node's intent writes; an update naming another version is refused as
the engine refuses it. The pure parts (lookup, the Node document, the spec check) are functions
the unit tests call directly.
"""
from __future__ import annotations

from datetime import timezone

from swarmd.manager.api.context import ManagerContext
from swarmd.manager.cluster import ClusterView, NodeView
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.request import Request
from swarmd.manager.httpd.response import Response, empty, json_response
from swarmd.manager.intent import AVAILABILITIES, NodeIntent, node_key

# the engine's texts (moby daemon/cluster/helpers.go getNode; swarmkit store.ErrSequenceConflict)
OUT_OF_SEQUENCE = "rpc error: code = Unknown desc = update out of sequence"
_FILTERS = ("id", "name", "role", "membership", "node.label")


def find_node(nodes: list[NodeView], ref: str) -> NodeView:
    """By full ID, then exact name, then unique ID prefix (the engine's order); 404/400 as it words them."""
    for v in nodes:
        if v.id == ref:
            return v
    named = [v for v in nodes if v.name == ref]
    if len(named) == 1:
        return named[0]
    prefixed = [v for v in nodes if ref and v.id.startswith(ref)]
    if len(prefixed) == 1:
        return prefixed[0]
    if len(named) + len(prefixed) > 1:
        raise ApiError(400, f"node {ref} is ambiguous ({len(named) + len(prefixed)} matches found)")
    raise ApiError(404, f"node {ref} not found")


def _time(view: NodeView) -> str:
    return view.updated_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_document(view: NodeView) -> dict:
    """The Node object of API v1.41 for one swarmd node."""
    snap = view.snapshot()
    info = view.node.info
    engine_labels = {k: v for k, v in view.labels().items() if k not in view.intent.labels}
    return {
        "ID": view.id,
        "Version": {"Index": view.intent.version},
        "CreatedAt": _time(view),
        "UpdatedAt": _time(view),
        "Spec": {"Labels": dict(view.intent.labels), "Role": "worker", "Availability": view.availability},
        "Description": {
            "Hostname": view.name,
            "Platform": {"Architecture": snap.architecture, "OS": snap.os},
            "Resources": {"NanoCPUs": int(snap.total_cpus * 1e9), "MemoryBytes": snap.total_memory},
            "Engine": {"EngineVersion": snap.engine_version, "Labels": engine_labels, "Plugins": []},
        },
        "Status": {"State": "ready" if view.healthy else "down", "Message": view.error,
                   "Addr": info.host_ip or view.addr.rsplit(":", 1)[0]},
    }


def matches(doc: dict, filters: dict[str, list[str]]) -> bool:
    """The engine's node list filters (id and name by prefix/exact, role, membership, node.label)."""
    for key, values in filters.items():
        if key not in _FILTERS:
            raise ApiError(400, f"invalid filter '{key}'")
        if key == "id" and not any(doc["ID"].startswith(v) for v in values):
            return False
        if key == "name" and not any(doc["Description"]["Hostname"].startswith(v) for v in values):
            return False
        if key == "role" and "worker" not in values:
            return False
        if key == "membership" and "accepted" not in values:
            return False
        if key == "node.label":
            labels = doc["Spec"]["Labels"]
            for v in values:
                k, eq, want = v.partition("=")
                if k not in labels or (eq and labels[k] != want):
                    return False
    return True


def updated_intent(current: NodeIntent, spec: dict) -> NodeIntent:
    """The intent a NodeSpec asks for; 400 for what a swarmd node cannot be."""
    if not isinstance(spec, dict):
        raise ApiError(400, "invalid node spec: expected a JSON object")
    availability = (spec.get("Availability") or current.availability).lower()
    if availability not in AVAILABILITIES:
        raise ApiError(400, f"invalid availability {spec.get('Availability')!r}: must be one of "
                            f"{', '.join(AVAILABILITIES)}")
    role = (spec.get("Role") or "worker").lower()
    if role != "worker":
        raise ApiError(400, f"invalid role {spec.get('Role')!r}: swarmd nodes are workers "
                            "(managers are `swarm manage` processes)")
    labels = spec.get("Labels") if spec.get("Labels") is not None else {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise ApiError(400, "invalid node labels: expected an object of strings")
    return current.updated(availability=availability, labels=dict(labels))


def _views(cluster: ClusterView) -> list[NodeView]:
    return sorted(cluster.nodes.values(), key=lambda v: v.name)


async def list_nodes(ctx: ManagerContext, req: Request) -> Response:
    filters = req.filters()
    docs = [node_document(v) for v in _views(ctx.cluster)]
    return json_response([d for d in docs if matches(d, filters)])


async def inspect_node(ctx: ManagerContext, req: Request) -> Response:
    return json_response(node_document(find_node(_views(ctx.cluster), req.params["id"])))


async def _write(cluster: ClusterView, node_id: str, intent: NodeIntent) -> None:
    store = cluster.intent_store
    if store is None:
        raise ApiError(503, "the intent store is not open yet")
    try:
        await store.put(node_key(node_id), intent.to_json())
    except ConnectionError as exc:
        raise ApiError(503, f"cannot record the change: {exc}") from None
    cluster.apply_intent(node_id, intent)     # read-your-writes, before the watch brings it back


async def update_node(ctx: ManagerContext, req: Request) -> Response:
    view = find_node(_views(ctx.cluster), req.params["id"])
    raw = req.arg("version")
    try:
        version = int(raw) if raw is not None else None
    except ValueError:
        raise ApiError(400, f"invalid node version {raw!r}: expected a number") from None
    if version is None:
        raise ApiError(400, "invalid node version: the version parameter is required")
    if version != view.intent.version:
        raise ApiError(500, OUT_OF_SEQUENCE)
    await _write(ctx.cluster, view.id, updated_intent(view.intent, req.json()))
    return empty(200)


async def remove_node(ctx: ManagerContext, req: Request) -> Response:
    """A down node goes at once; a ready one only with `force` (its registration is ended too).
    Either way its ID is retired: the agent's registrations are refused from then on."""
    view = find_node(_views(ctx.cluster), req.params["id"])
    if view.healthy and not req.flag("force"):
        raise ApiError(400, f"node {view.name} is not down and can't be removed: stop its agent first "
                            "(`swarm leave` takes it out for good), or use --force to remove it anyway")
    await _write(ctx.cluster, view.id, view.intent.updated(removed=True))
    if view.healthy:
        try:
            await ctx.cluster.intent_store.evict(view.id)
        except Exception as exc:  # the removal record stands: the agent is refused at its next registration
            raise ApiError(503, f"node {view.name} was removed but its registration could not be ended: {exc}") from None
    return empty(200)
