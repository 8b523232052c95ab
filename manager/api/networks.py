"""`/networks/*` and `/volumes/*`: node-local objects, named `node/name` across the cluster.

A plain name in create means every healthy node (compose's project network must exist wherever
its containers land); `node/name` means that node only. Network references are resolved by
`manager.network_names` as classic swarm did (an ID, `node/name`, a plain name one node holds or
the manager made on every node, an ID prefix); a volume's plain name means every node holding it.
List filters the engine knows go to every engine, which refuses bad ones in its own words; `name`,
`id` and classic's `node` are matched here, against `node/name` as well as the plain name.

Each handler takes the manager context and the request; `manager.api.routes` names the path of each.
"""
from __future__ import annotations

import asyncio
import fnmatch
import json
import urllib.parse

from swarmd.manager import network_names
from swarmd.manager.api import relay
from swarmd.manager.api.context import ManagerContext
from swarmd.manager.api.lookups import container_and_node, healthy_nodes
from swarmd.manager.httpd.errors import ApiError
from swarmd.manager.httpd.request import Request
from swarmd.manager.httpd.response import Response, empty, json_response

# list filters the manager applies itself (the engines do not know `node/name` nor `node`)
_MANAGER_FILTERS = {"networks": ("name", "id", "node"), "volumes": ("name", "node")}


def _engine_message(resp) -> str:
    try:
        return json.loads(resp.body or b"{}").get("message") or ""
    except (ValueError, AttributeError):   # not the engine's JSON error: say what we know
        return f"engine answered {resp.status}"


def _engine_error(resp) -> ApiError:
    """An engine's error answer as the manager's own: the same status and message, JSON-typed."""
    return ApiError(resp.status, _engine_message(resp))


class _NodeObjects:
    """List/create/inspect/remove for one kind of node-local object (networks or volumes)."""

    def __init__(self, ctx: ManagerContext, kind: str):
        self.cluster = ctx.cluster
        self.kind = kind   # "networks" | "volumes"
        self.noun = "network" if kind == "networks" else "volume"

    def healthy(self):
        return self.cluster.healthy_nodes()

    def target_nodes(self, name: str):
        node_name, sep, plain = name.partition("/")
        if sep:
            view = self.cluster.node_by_name(node_name)
            if view is None or not view.healthy:
                raise ApiError(404, f"No such node: {node_name}")
            return [view], plain
        return healthy_nodes(self.cluster, "in the cluster"), name

    async def list_on(self, view, query: str = "") -> list[dict]:
        path = "/networks" if self.kind == "networks" else "/volumes"
        resp = await view.client.engine_call("GET", path, query)
        if query and resp.status >= 400:
            # the client's filters, refused with the engine's own status and words (500 for a bad `type`)
            raise _engine_error(resp)
        if resp.status != 200:
            return []
        doc = json.loads(resp.body or b"null")
        items = doc if self.kind == "networks" else (doc or {}).get("Volumes") or []
        return items or []

    def annotate(self, view, item: dict) -> dict:
        item = dict(item)
        item["Name"] = f"{view.name}/{item.get('Name', '')}"
        item["Node"] = {"ID": view.id, "Name": view.name, "Addr": view.addr, "IP": view.node.info.host_ip}
        return item

    async def list_all(self, query: str = "") -> list[tuple[object, dict]]:
        nodes = self.healthy()
        batches = await asyncio.gather(*(self.list_on(v, query) for v in nodes))
        return [(v, item) for v, batch in zip(nodes, batches) for item in batch]

    async def list_filtered(self, filters: dict[str, list[str]]) -> list[tuple[object, dict]]:
        """Every healthy node's objects that pass `filters` (`GET /networks` or `/volumes`)."""
        ours = _MANAGER_FILTERS[self.kind]
        engine_filters = {k: v for k, v in filters.items() if k not in ours}
        query = urllib.parse.urlencode({"filters": json.dumps(engine_filters)}) if engine_filters else ""
        return [(v, item) for v, item in await self.list_all(query) if self._kept(v, item, filters)]

    @staticmethod
    def _kept(view, item: dict, filters: dict[str, list[str]]) -> bool:
        name = item.get("Name") or ""
        if filters.get("name") and not network_names.name_filter_matches(filters["name"],
                                                                         (name, f"{view.name}/{name}")):
            return False
        if filters.get("id") and not network_names.name_filter_matches(filters["id"], (item.get("Id") or "",)):
            return False
        return not filters.get("node") or any(p == view.id or fnmatch.fnmatchcase(view.name, p)
                                              for p in filters["node"])

    async def find(self, ref: str) -> list[tuple[object, dict]]:
        """Networks as `network_names.resolve` says; volumes by `node/name`, or a plain name on
        every node holding it."""
        held = await self.list_all()
        if self.kind == "networks":
            return resolve_network(ref, held)
        node_name, sep, plain = ref.partition("/")
        found = [(view, item) for view, item in held
                 if (view.name == node_name and item.get("Name") == plain if sep else item.get("Name") == ref)]
        if not found:
            raise ApiError(404, f"get {ref}: no such volume")
        return found


def resolve_network(ref: str, held: list[tuple[object, dict]]) -> list[tuple[object, dict]]:
    """The (node, network) pairs `ref` names among `held`; 404 or 400 in the engine's words."""
    try:
        return network_names.resolve(ref, held, lambda pair: (pair[0].name, pair[0].id, pair[1]))
    except network_names.NetworkRefError as exc:
        raise ApiError(exc.status, str(exc)) from None


def _networks(ctx: ManagerContext) -> _NodeObjects:
    return _NodeObjects(ctx, "networks")


def _volumes(ctx: ManagerContext) -> _NodeObjects:
    return _NodeObjects(ctx, "volumes")


# -- networks ---------------------------------------------------------------------------------

async def list_networks(ctx: ManagerContext, req: Request) -> Response:
    nets = _networks(ctx)
    return json_response([nets.annotate(v, item) for v, item in await nets.list_filtered(req.filters())])


async def create_network(ctx: ManagerContext, req: Request) -> Response:
    """On `node/…`'s node or on every healthy node; other nodes' failures come back as a Warning."""
    body = req.json(default=None)
    if not isinstance(body, dict) or not body.get("Name"):
        raise ApiError(400, "network name is required")
    if not isinstance(body["Name"], str):
        raise ApiError(400, "invalid network name: Name must be a string")
    nodes, plain = _networks(ctx).target_nodes(body["Name"])
    if plain in network_names.PREDEFINED:
        raise ApiError(403, f"operation is not permitted on predefined {plain} network ")
    labels = body.get("Labels")
    if "/" not in body["Name"] and isinstance(labels, (dict, type(None))):
        # one network under its plain name on every node (see network_names.is_cluster_wide)
        body = {**body, "Labels": {**(labels or {}), network_names.CLUSTER_LABEL: "true"}}
    payload = json.dumps({**body, "Name": plain}).encode()
    results = await asyncio.gather(*(v.client.engine_call(
        "POST", "/networks/create", "", payload, {"Content-Type": "application/json"}) for v in nodes))
    created = [(v, r) for v, r in zip(nodes, results) if r.status == 201]
    failed = [(v, r) for v, r in zip(nodes, results) if r.status != 201]
    if not created or (failed and len(nodes) == 1):
        v, r = failed[0]
        raise _engine_error(r)
    warnings = [f"{v.name}: {json.loads(r.body or b'{}').get('message', '')}" for v, r in failed]
    doc = json.loads(created[0][1].body)
    return json_response({"Id": doc.get("Id"), "Warning": "; ".join(w for w in [doc.get("Warning")] + warnings if w)},
                         201)


async def inspect_network(ctx: ManagerContext, req: Request) -> Response:
    nets = _networks(ctx)
    view, item = (await nets.find(req.params["id"]))[0]
    resp = await view.client.engine_call("GET", f"/networks/{item['Id']}", "")
    if resp.status != 200:
        raise _engine_error(resp)
    return json_response(nets.annotate(view, json.loads(resp.body)) | {"Name": json.loads(resp.body)["Name"]})


async def remove_network(ctx: ManagerContext, req: Request) -> Response:
    for view, item in await _networks(ctx).find(req.params["id"]):
        if item.get("Name") in network_names.PREDEFINED:
            raise ApiError(403, f"{item['Name']} is a pre-defined network and cannot be removed")
        resp = await view.client.engine_call("DELETE", f"/networks/{item['Id']}", "")
        if resp.status >= 400:
            raise _engine_error(resp)
    return empty(204)


async def connect_network(ctx: ManagerContext, req: Request) -> Response:
    return await _change_membership(ctx, req, "connect")


async def disconnect_network(ctx: ManagerContext, req: Request) -> Response:
    return await _change_membership(ctx, req, "disconnect")


async def _change_membership(ctx: ManagerContext, req: Request, action: str) -> Response:
    """connect/disconnect on the container's node, to that node's network of the given name."""
    body = req.json(default={}) or {}
    ref = body.get("Container")
    if not ref:
        raise ApiError(400, "container is required")
    rec, view = container_and_node(ctx.cluster, ref)
    # the container's node decides which node's network a plain name means
    on_node = [(view, item) for item in await _networks(ctx).list_on(view)]
    try:
        matches = resolve_network(req.params["id"], on_node)
    except ApiError as exc:
        if exc.status != 404:
            raise
        raise ApiError(404, f"network {req.params['id']} not found on node {view.name}") from None
    payload = json.dumps({**body, "Container": rec.id}).encode()
    resp = await view.client.engine_call("POST", f"/networks/{matches[0][1]['Id']}/{action}", "",
                                         payload, {"Content-Type": "application/json"})
    await ctx.cluster.refresh_container(view, rec.id)
    return Response(resp.status, resp.body, content_type="application/json" if resp.body else None)


async def prune_networks(ctx: ManagerContext, req: Request) -> Response:
    return await relay.prune_everywhere(req, ctx.cluster.healthy_nodes(), "/networks/prune", "NetworksDeleted",
                                        node_prefixed=True)


# -- volumes ----------------------------------------------------------------------------------

async def list_volumes(ctx: ManagerContext, req: Request) -> Response:
    vols = _volumes(ctx)
    rows = await vols.list_filtered(req.filters())
    return json_response({"Volumes": [vols.annotate(v, i) for v, i in rows], "Warnings": []})


async def create_volume(ctx: ManagerContext, req: Request) -> Response:
    """On `node/…`'s node or on every healthy node; an anonymous volume on one node."""
    vols = _volumes(ctx)
    body = req.json(default={})
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ApiError(400, "invalid volume options: a JSON object is required")
    if body.get("Name") is not None and not isinstance(body["Name"], str):
        raise ApiError(400, "invalid volume name: Name must be a string")
    nodes, plain = vols.target_nodes(body.get("Name") or "")
    if not plain:
        nodes = nodes[:1]   # an anonymous volume: one node, chosen like a container would be
    payload = json.dumps({**body, "Name": plain}).encode()
    results = await asyncio.gather(*(v.client.engine_call(
        "POST", "/volumes/create", "", payload, {"Content-Type": "application/json"}) for v in nodes))
    for r in results:
        if r.status != 201:
            raise _engine_error(r)
    return json_response(vols.annotate(nodes[0], json.loads(results[0].body)), 201)


async def inspect_volume(ctx: ManagerContext, req: Request) -> Response:
    vols = _volumes(ctx)
    view, item = (await vols.find(req.params["name"]))[0]
    return json_response(vols.annotate(view, item))


async def remove_volume(ctx: ManagerContext, req: Request) -> Response:
    force = "force=1" if req.flag("force") else ""
    for view, item in await _volumes(ctx).find(req.params["name"]):
        resp = await view.client.engine_call("DELETE", f"/volumes/{urllib.parse.quote(item['Name'], safe='')}", force)
        if resp.status >= 400:
            raise _engine_error(resp)
    return empty(204)


async def prune_volumes(ctx: ManagerContext, req: Request) -> Response:
    return await relay.prune_everywhere(req, ctx.cluster.healthy_nodes(), "/volumes/prune", "VolumesDeleted",
                                        node_prefixed=True)
